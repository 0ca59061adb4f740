"""Plays per region and title in fill windows, from playback starts on Kinesis, idempotently.

A play is one ``playback_start`` (one session), counted in the window of its ``occurred_at``
(event time, so a late batch lands where it belongs) and the region of the edge that resolved
the member's network (``payload.network.country``).

Exactly once, with batched I/O only (one BatchGetItem round, one BatchWriteItem round):
- **Kinesis replays** (a retried batch, a restarted shard iterator) carry the same sequence
  numbers. Counts live in per-shard items (``store.plays_key``), each with ``seq``, the highest
  sequence number applied to it; a record at or below that watermark is skipped. Lambda runs
  one batch per shard at a time, in order (the playback trigger's parallelization factor is
  1), so every item has a single writer and needs no conditional write.
- **Producer re-sends** (the same session's start written twice, new sequence number) are
  recognized by a session marker (``store.session_key``, TTL 1 day), written *after* the
  count items: a crash in between replays the batch, the watermark skips the counted
  records, and the markers are written on that pass.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from streamsense.caching.store import (
    DEFAULT_WINDOW_S,
    expires,
    plays_key,
    session_key,
    title_bucket,
    window_id,
    window_start,
)
from streamsense.events import Event, PlaybackStart
from streamsense.storage import Item, Key, Table

PLAY_TYPES = frozenset({"playback_start"})
SESSION_TTL = timedelta(days=1)
PLAYS_TTL = timedelta(days=15)


@dataclass(frozen=True)
class PlayRecord:
    """A playback start with its place in the stream."""

    event: PlaybackStart
    shard: str
    sequence: int


def as_play_records(items: Iterable[tuple[Event, Mapping[str, Any]]]) -> list[PlayRecord]:
    out = []
    for event, source in items:
        if isinstance(event, PlaybackStart):
            out.append(PlayRecord(event, str(source.get("shard") or "shard"), int(source.get("sequence_number") or 0)))
    return out


@dataclass
class AggregateReport:
    applied: int = 0
    replayed: int = 0  # skipped by a shard watermark
    duplicates: int = 0  # producer re-sends (session already counted)
    touched: set[tuple[str, str]] = field(default_factory=set)  # (region, window)


def marker(key: Key, record: PlayRecord) -> Item:
    # TTLs follow event time, not the clock: a replay writes exactly the same item.
    return {"pk": key[0], "sk": key[1], "expires_at": expires(record.event.occurred_at, SESSION_TTL)}


def aggregate(table: Table, records: Iterable[PlayRecord], window_s: int = DEFAULT_WINDOW_S) -> AggregateReport:
    recs = sorted(records, key=lambda r: (r.shard, r.sequence))
    report = AggregateReport()
    if not recs:
        return report
    item_of: dict[int, Key] = {}
    for i, r in enumerate(recs):
        p = r.event.payload
        win = window_id(window_start(r.event.occurred_at, window_s))
        item_of[i] = plays_key(p.network.country, win, r.shard, title_bucket(p.title_id))
    sessions = {session_key(r.event.payload.session_id) for r in recs}
    found = table.get_many(list(set(item_of.values())) + list(sessions))
    items: dict[Key, Item] = {}
    for key in set(item_of.values()):
        items[key] = found.get(key) or {"pk": key[0], "sk": key[1], "plays": {}, "seq": "0"}
    counted_sessions = {k for k in sessions if k in found}
    changed: set[Key] = set()
    new_markers: dict[Key, Item] = {}
    for i, r in enumerate(recs):
        key = item_of[i]
        item = items[key]
        skey = session_key(r.event.payload.session_id)
        if r.sequence <= int(item["seq"]):
            # Counted on an earlier pass; its marker may not have been written (a crash
            # between the two writes), so write it now.
            report.replayed += 1
            new_markers[skey] = marker(skey, r)
            continue
        item["seq"] = str(r.sequence)  # strings: sequence numbers exceed 2**64
        changed.add(key)
        if skey in counted_sessions:
            report.duplicates += 1
            continue
        counted_sessions.add(skey)
        new_markers[skey] = marker(skey, r)
        title = r.event.payload.title_id
        item["plays"][title] = int(item["plays"].get(title, 0)) + 1
        item["expires_at"] = expires(window_start(r.event.occurred_at, window_s), PLAYS_TTL)
        report.applied += 1
        region, win = key[0].split("#")[1:3]
        report.touched.add((region, win))
    if changed:
        table.put_many([items[k] for k in sorted(changed)])
    if new_markers:
        table.put_many(list(new_markers.values()))
    return report


def window_plays(table: Table, region: str, window: str) -> dict[str, int]:
    """All shards' and buckets' counts of one region and window, summed."""
    totals: dict[str, int] = defaultdict(int)
    for item in table.query(f"plays#{region}#{window}"):
        for title, n in item.get("plays", {}).items():
            totals[str(title)] += int(n)
    return dict(totals)
