"""Read functions over what ``qoe_hints`` wrote (the ``qoe`` table), for the ``query`` command
after a run: the ABR hint a segment's players fetch (through ``streamsense.qoe.read_hint``, with
its fallback to coarser segments) and the busiest segments.

Segments are region (ISO country) x network type x device class; none of these identifies a
person, so they are used as typed (upper-cased country, lower-cased network and device).
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any, get_args

from streamsense.events import NetworkType
from streamsense.qoe.hints import read_hint
from streamsense.qoe.segments import DEVICE_CLASS, LEVEL_NAMES, Segment
from streamsense.storage import DynamoTable

if TYPE_CHECKING:
    from streamsense_local.stack import LocalStack


NETWORK_TYPES = frozenset(get_args(NetworkType))


def _table(stack: LocalStack) -> DynamoTable:
    return DynamoTable(stack.physical("table", "qoe"), client=stack.client("dynamodb"))


def parse_segment(region: str, network: str, device: str) -> Segment:
    """The segment named by a query, or ValueError saying which part is unknown (checked before
    a saved run is restored, which takes seconds)."""
    if not (len(region.strip()) == 2 and region.strip().isascii() and region.strip().isalpha()):
        raise ValueError(f"unknown region {region!r}: an ISO country code of two letters (e.g. US)")
    if network.strip().lower() not in NETWORK_TYPES:
        raise ValueError(f"unknown network {network!r}: one of {sorted(NETWORK_TYPES)}")
    seg = Segment.of(region.strip().upper(), network.strip().lower(), device.strip().lower())
    if seg.device not in set(DEVICE_CLASS.values()):
        raise ValueError(f"unknown device {device!r}: one of {sorted(DEVICE_CLASS)}")
    return seg


def segment(stack: LocalStack, region: str, network: str, device: str) -> dict[str, Any]:
    """The hint a player of ``region`` x ``network`` x ``device`` fetches at session start.

    ``device`` is a device type (tv, console, mobile, tablet, web) or class (tv, mobile, web).
    ``served_from`` names the segment level of the document served: ``rnd`` when the segment
    itself was seen, else the most specific coarser one published (``rn``, ``n``, ``all``);
    inside the document each part (startup, throughput, prediction, buffer) names the level its
    data came from, with sample size and age. ``found`` is False when nothing was published."""
    seg = parse_segment(region, network, device)
    hint = read_hint(_table(stack), seg)
    # found: the run published a hint for this very segment; a fallback answer is what a player
    # of a segment the run never saw fetches (served_from names the coarser level)
    out: dict[str, Any] = {"segment": seg.as_dict(), "found": hint is not None and hint["level"] == "rnd"}
    if hint is None:
        return out
    level = str(hint["level"])
    out["served_from"] = level
    out["served_from_name"] = LEVEL_NAMES[level]  # type: ignore[index]
    out["fallback"] = level != "rnd"
    out["hint"] = hint
    return out


def segments(stack: LocalStack, top: int = 20) -> list[dict[str, Any]]:
    """The ``top`` segments by playback starts seen (all days kept), each with its heartbeats,
    the share of heartbeats that reported a stall and the rebuffering they reported."""
    from boto3.dynamodb.types import TypeDeserializer
    from streamsense.storage import from_dynamo_value

    client = stack.client("dynamodb")
    de = TypeDeserializer()
    kwargs: dict[str, Any] = {
        "TableName": stack.physical("table", "qoe"),
        "FilterExpression": "begins_with(pk, :p)",
        "ExpressionAttributeValues": {":p": {"S": "seg#rnd#"}},
        # the items carry sketches; only the counters are needed here
        "ProjectionExpression": "pk, sessions, heartbeats, stalled, rebuffer_ms",
    }
    totals: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    while True:
        resp = client.scan(**kwargs)
        for raw in resp.get("Items", []):
            item = {k: from_dynamo_value(de.deserialize(v)) for k, v in raw.items()}
            t = totals[str(item["pk"]).removeprefix("seg#rnd#")]
            for name in ("sessions", "heartbeats", "stalled", "rebuffer_ms"):
                t[name] += int(item.get(name, 0))
        if not resp.get("LastEvaluatedKey"):
            break
        kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
    ranked = sorted(totals.items(), key=lambda kv: (-kv[1]["sessions"], -kv[1]["heartbeats"], kv[0]))
    out = []
    for key, t in ranked[:top]:
        region, network, device = key.split("|")
        out.append(
            {
                "segment": {"region": region, "network": network, "device": device},
                "sessions": t["sessions"],
                "heartbeats": t["heartbeats"],
                "stall_share": round(t["stalled"] / t["heartbeats"], 4) if t["heartbeats"] else None,
                "rebuffer_s": round(t["rebuffer_ms"] / 1000, 1),
            }
        )
    return out
