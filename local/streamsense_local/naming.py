"""Physical names and ARNs of the local stack: ``streamsense-local-<name>`` in moto's default
account. Bucket names may not contain underscores, so those become hyphens (only there)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["stream", "table", "bucket", "queue"]

ACCOUNT = "123456789012"  # moto's default account
REGION = "us-east-1"


@dataclass(frozen=True)
class Naming:
    prefix: str = "streamsense-local"
    region: str = REGION
    account: str = ACCOUNT

    def physical(self, kind: str, name: str) -> str:
        base = f"{self.prefix}-{name}"
        return base.replace("_", "-").lower() if kind == "bucket" else base

    def arn(self, kind: str, name: str) -> str:
        return self.arn_of_physical(kind, self.physical(kind, name))

    def arn_of_physical(self, kind: str, physical: str) -> str:
        if kind == "table":
            return f"arn:aws:dynamodb:{self.region}:{self.account}:table/{physical}"
        if kind == "stream":
            return f"arn:aws:kinesis:{self.region}:{self.account}:stream/{physical}"
        if kind == "queue":
            return f"arn:aws:sqs:{self.region}:{self.account}:{physical}"
        if kind == "bucket":
            return f"arn:aws:s3:::{physical}"
        raise ValueError(f"unknown resource kind {kind!r}")

    def function_name(self, fn: str) -> str:
        return f"{self.prefix}-{fn}"

    def function_arn(self, fn: str) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account}:function:{self.function_name(fn)}"

    def role_name(self, fn: str) -> str:
        return f"{self.prefix}-{fn}-role"

    def role_arn(self, fn: str) -> str:
        return f"arn:aws:iam::{self.account}:role/{self.role_name(fn)}"

    def rule_arn(self, fn: str, index: int) -> str:
        return f"arn:aws:events:{self.region}:{self.account}:rule/{self.prefix}-{fn}-schedule-{index}"

    def internal_queue(self, purpose: str) -> str:
        """Queues the runtime itself uses (never declared in the system, never shown to functions)."""
        return f"{self.prefix}--{purpose}"
