"""Per-stage settings of the CDK app, read from CDK context (``-c stage=prod``) with the
defaults in cdk.json. Everything the system *is* comes from infra/system.py; this module only
holds what differs between a developer's sandbox and production."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from infra.system import System

Stage = Literal["dev", "prod"]
StreamMode = Literal["provisioned", "on_demand"]

_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class StageConfig:
    stage: Stage
    owner: str
    # dev: SYSTEM's shard counts (cheapest for a sandbox); prod: on-demand, so a release-night
    # spike never throttles producers and nobody resizes shards by hand.
    stream_mode: StreamMode
    shard_overrides: Mapping[str, int] = field(default_factory=dict)
    retain_data: bool = False  # prod keeps tables, buckets, streams, queues, key on stack delete
    log_retention_days: int = 14
    log_level: str = "INFO"
    # Alarm when the oldest unprocessed Kinesis record is this old; always below the trigger's
    # max_record_age_s so the alarm fires before records start going to the failures queue.
    iterator_age_alarm_s: int = 600
    alarm_email: str | None = None
    # When true, a missing layer build or function folder is an error instead of a placeholder
    # (deploy sets it: a placeholder asset must never reach an account).
    strict_assets: bool = False

    @property
    def stack_name(self) -> str:
        # One shared prod stack; every developer gets their own dev stack in the same account
        # (physical names are generated, so several stacks never collide).
        return "streamsense-prod" if self.stage == "prod" else f"streamsense-dev-{self.owner}"

    def shards(self, stream: str, declared: int) -> int:
        return int(self.shard_overrides.get(stream, declared))

    @classmethod
    def from_context(
        cls,
        get: Callable[[str], Any],
        system: System,
        environ: Mapping[str, str] | None = None,
    ) -> StageConfig:
        """``get`` is ``node.try_get_context``; ``environ`` defaults to os.environ ($USER)."""
        env = os.environ if environ is None else environ
        stage = str(get("stage") or "dev")
        if stage not in ("dev", "prod"):
            raise ValueError(f"stage must be dev or prod, got {stage!r}")
        owner = _sanitize_owner(
            str(get("owner") or env.get("USER") or env.get("USERNAME") or "local")
        )
        mode = str(get("stream_mode") or ("on_demand" if stage == "prod" else "provisioned"))
        if mode not in ("provisioned", "on_demand"):
            raise ValueError(f"stream_mode must be provisioned or on_demand, got {mode!r}")
        shard_overrides = _parse_shards(get("shards"))
        stream_names = {s.name for s in system.streams}
        unknown = set(shard_overrides) - stream_names
        if unknown:
            raise ValueError(f"shards context names unknown streams: {sorted(unknown)}")
        prod = stage == "prod"
        return cls(
            stage=stage,  # type: ignore[arg-type]
            owner=owner,
            stream_mode=mode,  # type: ignore[arg-type]
            shard_overrides=shard_overrides,
            retain_data=prod,
            log_retention_days=int(get("log_retention_days") or (90 if prod else 14)),
            log_level=str(get("log_level") or "INFO").upper(),
            iterator_age_alarm_s=int(get("iterator_age_alarm_s") or 600),
            alarm_email=(str(get("alarm_email")) if get("alarm_email") else None),
            strict_assets=_flag(get("strict_assets")),
        )


def _flag(value: Any) -> bool:
    return value is True or str(value).strip().lower() in _TRUE


def _sanitize_owner(raw: str) -> str:
    # CloudFormation stack names: letters, digits, hyphens; keep it short and readable.
    owner = re.sub(r"[^a-z0-9-]+", "-", raw.lower()).strip("-")[:24]
    if not owner or not owner[0].isalpha():
        owner = f"u{owner}"
    return owner


def _parse_shards(value: Any) -> dict[str, int]:
    """``{"playback": 4}`` in cdk.json, or ``-c shards=playback=4,activity=2`` on the CLI."""
    if not value:
        return {}
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):
            value = json.loads(text)
        else:
            value = dict(part.split("=", 1) for part in text.split(",") if part)
    out = {str(k): int(v) for k, v in dict(value).items()}
    bad = {k: v for k, v in out.items() if v < 1}
    if bad:
        raise ValueError(f"shard counts must be >= 1: {bad}")
    return out
