"""Read functions over what recs_trainer and recs_realtime wrote (the ``recs`` table and the
models bucket), for the ``query`` command after a run.

Member ids: the recs functions key a member by the ``profile_id`` of the playback events (an
opaque app id such as ``ml-414`` or ``acc-0000042-p0``; engineering.md's pseudonymized
identifiers are emails, IPs, cards and device ids), so the id is used as typed. Title names come
from the model version serving uses (its artifact, sha256-checked against the manifest)."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from streamsense.delivery.service import defaults_for
from streamsense.delivery.service import member_key as delivery_member_key
from streamsense.delivery.service import region_key as delivery_region_key
from streamsense.recs import artifact
from streamsense.recs.data import GLOBAL_REGION
from streamsense.recs.service import decode_history, member_key
from streamsense.storage import DynamoTable

if TYPE_CHECKING:
    from streamsense_local.stack import LocalStack

RECENT_PLAYS = 10


def _table(stack: LocalStack) -> DynamoTable:
    return DynamoTable(stack.physical("table", "recs"), client=stack.client("dynamodb"))


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _model(stack: LocalStack) -> tuple[str | None, dict[str, str]]:
    """The serving version (``recs/current.json``) and its title names; (None, {}) when no
    version is published or its artifact does not match the manifest's sha256."""
    try:
        pointer = json.loads(stack.get_object("models", artifact.CURRENT_KEY))
        manifest = json.loads(stack.get_object("models", pointer["manifest_key"]))
        body = stack.get_object("models", manifest["model_key"])
    except Exception:  # nothing published (NoSuchKey) or an unreadable pointer
        return None, {}
    if hashlib.sha256(body).hexdigest() != manifest.get("sha256"):
        return str(manifest["version"]), {}
    with np.load(io.BytesIO(body), allow_pickle=False) as z:
        names = {str(t): str(n) for t, n in zip(z["titles"], z["names"], strict=True)}
    return str(manifest["version"]), names


def _ranked(items: list[Mapping[str, Any]], names: Mapping[str, str]) -> list[dict[str, Any]]:
    out = []
    for rank, r in enumerate(items, start=1):
        row: dict[str, Any] = {"rank": rank, "title": str(r["title"]), "name": names.get(str(r["title"])),
                               "score": float(r["score"])}
        if "reason" in r:
            row["reason"] = str(r["reason"])
            row["because"] = r.get("because")
            row["because_name"] = names.get(str(r["because"])) if r.get("because") else None
            row["text"] = str(r.get("text", ""))
        out.append(row)
    return out


def _trending_row(table: DynamoTable, region: str) -> tuple[str | None, Mapping[str, Any] | None]:
    """The region's trending row, else the global one (what serving falls back to)."""
    keys = [(f"region#{region}", "recs#trending"), (f"region#{GLOBAL_REGION}", "recs#trending")]
    found = table.get_many(keys)
    for key in keys:
        if key in found:
            return key[0].removeprefix("region#"), found[key]
    return None, None


def member(stack: LocalStack, member_id: str, top: int = 20, account_id: str | None = None) -> dict[str, Any]:
    """One member's list as serving reads it: the ``top`` titles in order with score, reason
    ("because_you_watched" X, "new_and_similar" to X, "trending_in_region", "popular") and the
    row's caption; the newest plays recs_realtime folded into the stored history; the model
    version that wrote the list and whether it is stale; and the member's audio/subtitle
    defaults from delivery_prefs when it has a row (keyed by account: ``account_id``, else the
    account recs_realtime stored on the member's row, else the member id, which is the account
    id of a MovieLens member). A member with no row gets
    what serving gives a new member: the trending row of the global region."""
    table = _table(stack)
    version, names = _model(stack)
    item = table.get_many([member_key(member_id)]).get(member_key(member_id))
    out: dict[str, Any] = {"member_id": member_id, "model_version_serving": version}
    if item is None:
        region, row = _trending_row(table, GLOBAL_REGION)
        out.update({"found": False, "cold_start_source": f"region#{region}" if region else None,
                    "recommendations": _ranked(list((row or {}).get("items", []))[:top], names)})
    else:
        history = decode_history(str(item.get("history") or ""))
        recent = sorted(history.items(), key=lambda kv: (-kv[1], kv[0]))[:RECENT_PLAYS]
        out.update({
            "found": True,
            "model_version": str(item.get("model_version") or ""),
            "updated_at": item.get("updated_at"),
            "region": item.get("region"),
            "stale": bool(item.get("stale", False)),
            "titles_in_history": len(history),
            "recent_plays": [{"title": t, "name": names.get(t), "at": _iso(ts)} for t, ts in recent],
            "recommendations": _ranked(list(item.get("top") or [])[:top], names),
        })
    account = account_id or str((item or {}).get("account_id") or "") or member_id
    found = table.get_many([delivery_member_key(account)])
    delivery = found.get(delivery_member_key(account))
    if delivery is not None:
        profiles = delivery.get("profiles") or {}
        region_item = table.get_many([delivery_region_key(str(delivery.get("region") or ""))]).get(
            delivery_region_key(str(delivery.get("region") or "")))
        out["delivery"] = {"account_id": account, "region": delivery.get("region"),
                           "defaults": defaults_for(delivery, member_id, region_item).as_dict(),
                           "profile_known": member_id in profiles}
    else:
        out["delivery"] = None
    return out


def title(stack: LocalStack, title_id: str, top: int = 20) -> dict[str, Any]:
    """Titles similar to one title, as recs_trainer wrote them (``title#<id>`` / ``recs#similar``:
    symmetrized EASE weights for titles with plays, genre/tag similarity for the others), with
    names from the serving model."""
    table = _table(stack)
    version, names = _model(stack)
    key = (f"title#{title_id}", "recs#similar")
    item = table.get_many([key]).get(key)
    out: dict[str, Any] = {"title_id": title_id, "name": names.get(title_id), "model_version_serving": version}
    if item is None:
        out.update({"found": False, "in_catalogue": title_id in names})
        return out
    out.update({"found": True, "model_version": item.get("model_version"), "updated_at": item.get("updated_at"),
                "similar": _ranked(list(item.get("items") or [])[:top], names)})
    return out


def region(stack: LocalStack, region: str, top: int = 20) -> dict[str, Any]:
    """A region's trending row (decayed plays in the region at the model's data end), or the
    global one when recs_trainer wrote none for the region (what serving falls back to);
    ``source_region`` says which."""
    if region.upper() != GLOBAL_REGION and not (len(region) == 2 and region.isascii() and region.isalpha()):
        raise ValueError(f"a region is an ISO country code of two letters (e.g. US) or {GLOBAL_REGION}")
    region = region.upper()
    table = _table(stack)
    version, names = _model(stack)
    source, item = _trending_row(table, region)
    if item is None:
        return {"region": region, "found": False, "model_version_serving": version}
    # found: the run has the region's own row; otherwise the answer is the global row a member
    # of a region without one is served
    return {"region": region, "found": source == region, "source_region": source, "model_version": item.get("model_version"),
            "updated_at": item.get("updated_at"), "model_version_serving": version,
            "trending": _ranked(list(item.get("items") or [])[:top], names)}
