"""QoE telemetry -> per-segment statistics in the qoe table, idempotently.

What one event contributes, to its segment and to every coarser segment of the fallback chain:
- ``playback_heartbeat``: the throughput the player measured since its last report (to the
  ``tput`` sketch, and to ``early`` as well while the playhead is in the first 10 s), the
  *prediction ratio* (that throughput over the harmonic mean of the session's previous five
  measurements, the predictor robustMPC and most players use: its low quantiles say how much
  to discount a prediction in this segment) and its stall counters;
- ``playback_start``: the startup delay (``startup`` sketch, ms), one session, and its QoE
  block if the player sent one (an early throughput sample).

Storage layout (table ``qoe``), one item per segment level x day x Kinesis shard:
``pk = seg#<level>#<segment key>``, ``sk = day#<YYYY-MM-DD>#<shard id>``, holding the encoded
sketches, counters, ``seq`` (the highest sequence number of that shard applied to the item)
and a TTL. Per-shard items have a single writer (Lambda processes one shard's batches in order,
one at a time, with the playback trigger's parallelization factor of 1), so the watermark makes
a replayed record a no-op without conditional writes, and BatchWriteItem stays possible.
Readers merge the shards and days they need (merging sketches is exact).

Session state (``pk = sess#<session id>``, ``sk = tput``): the session's latest measurements
(for the prediction ratio) and short hashes of its recent event ids. A producer that re-sends
an event (same event_id, new sequence number) is recognized there. The state is written after
the segment items, so a crash in between leaves nothing that would skip a record on replay.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from streamsense.events import Event, PlaybackHeartbeat, PlaybackStart
from streamsense.qoe.segments import Level, Segment, segment_of
from streamsense.qoe.sketches import QuantileSketch
from streamsense.storage import Item, Key, Table

#: A heartbeat belongs to the session's early phase while the playhead is before this.
EARLY_POSITION_S = 10.0
#: The predictor whose errors the ratio sketch measures: harmonic mean of the last N samples.
PREDICTOR_WINDOW = 5
#: Measurements and event-id hashes kept per session.
SESSION_SAMPLES = 8
SESSION_EVENT_IDS = 64
SESSION_TTL = timedelta(days=1)
STATS_TTL = timedelta(days=15)
QOE_TYPES = frozenset({"playback_start", "playback_heartbeat"})

_SKETCHES = ("tput", "early", "ratio", "startup")
_COUNTERS = ("sessions", "heartbeats", "stalled", "rebuffer_ms")


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_iso(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


@dataclass
class SegmentStats:
    """Mergeable statistics of one segment over some span of days and shards."""

    tput: QuantileSketch = field(default_factory=QuantileSketch)
    early: QuantileSketch = field(default_factory=QuantileSketch)
    ratio: QuantileSketch = field(default_factory=QuantileSketch)
    startup: QuantileSketch = field(default_factory=QuantileSketch)
    sessions: int = 0
    heartbeats: int = 0
    stalled: int = 0
    rebuffer_ms: int = 0
    first_at: datetime | None = None
    last_at: datetime | None = None

    def merge(self, other: SegmentStats) -> None:
        for name in _SKETCHES:
            getattr(self, name).merge(getattr(other, name))
        for name in _COUNTERS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self._span(other.first_at, other.last_at)

    def _span(self, first: datetime | None, last: datetime | None) -> None:
        if first is not None and (self.first_at is None or first < self.first_at):
            self.first_at = first
        if last is not None and (self.last_at is None or last > self.last_at):
            self.last_at = last

    def add(self, c: Contribution) -> None:
        if c.throughput_kbps is not None:
            self.tput.add(c.throughput_kbps)
            if c.early:
                self.early.add(c.throughput_kbps)
        if c.ratio is not None:
            self.ratio.add(c.ratio)
        if c.startup_ms is not None:
            self.startup.add(float(c.startup_ms))
        self.sessions += int(c.session_start)
        self.heartbeats += int(c.heartbeat)
        self.stalled += int(c.rebuffer_ms > 0)
        self.rebuffer_ms += c.rebuffer_ms
        self._span(c.at, c.at)

    def attributes(self) -> dict[str, Any]:
        attrs: dict[str, Any] = {name: getattr(self, name).to_bytes() for name in _SKETCHES}
        attrs.update({name: getattr(self, name) for name in _COUNTERS})
        if self.first_at is not None and self.last_at is not None:
            attrs["first_at"] = _iso(self.first_at)
            attrs["last_at"] = _iso(self.last_at)
        return attrs

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> SegmentStats:
        stats = cls()
        for name in _SKETCHES:
            setattr(stats, name, QuantileSketch.from_bytes(item[name]))
        for name in _COUNTERS:
            setattr(stats, name, int(item.get(name, 0)))
        if "first_at" in item:
            stats.first_at = _parse_iso(item["first_at"])
            stats.last_at = _parse_iso(item["last_at"])
        return stats


@dataclass(frozen=True)
class Contribution:
    """What one applied event adds to its segments."""

    segment: Segment
    at: datetime
    throughput_kbps: float | None = None
    early: bool = False
    ratio: float | None = None
    startup_ms: int | None = None
    session_start: bool = False
    heartbeat: bool = False
    rebuffer_ms: int = 0


@dataclass(frozen=True)
class QoeRecord:
    """An event with its position in the stream (shard and sequence number)."""

    event: PlaybackStart | PlaybackHeartbeat
    shard: str
    sequence: int


def stats_key(level: Level, segment_key: str, day: str, shard: str) -> Key:
    return (f"seg#{level}#{segment_key}", f"day#{day}#{shard}")


def session_key(session_id: str) -> Key:
    return (f"sess#{session_id}", "tput")


def _event_hash(event_id: str) -> str:
    return hashlib.blake2b(event_id.encode(), digest_size=6).hexdigest()


def harmonic_mean(values: Sequence[float]) -> float:
    return len(values) / sum(1.0 / v for v in values)


@dataclass
class SessionState:
    samples: list[tuple[int, float]]  # (occurred_at epoch ms, throughput kbps), time order
    seen: list[str]  # hashes of applied event ids, oldest first

    @classmethod
    def from_item(cls, item: Mapping[str, Any] | None) -> SessionState:
        if not item:
            return cls([], [])
        return cls(
            [(int(t), float(v)) for t, v in item.get("samples", [])], list(item.get("seen", []))
        )

    def prediction_ratio(self, t_ms: int, kbps: float) -> float | None:
        """Throughput over the harmonic mean of the previous measurements (up to 5)."""
        before = [v for t, v in self.samples if t < t_ms and v > 0][-PREDICTOR_WINDOW:]
        if not before:
            return None
        return kbps / harmonic_mean(before)

    def record(self, t_ms: int, kbps: float | None, event_hash: str) -> None:
        if kbps is not None and all(t != t_ms for t, _ in self.samples):
            self.samples.append((t_ms, kbps))
            self.samples.sort()
            del self.samples[:-SESSION_SAMPLES]
        self.seen.append(event_hash)
        del self.seen[:-SESSION_EVENT_IDS]


@dataclass
class AggregateReport:
    applied: int = 0
    duplicates: int = 0  # producer re-sends recognized by event id
    replayed: int = 0  # segment contributions skipped by a shard watermark
    segments: set[Segment] = field(default_factory=set)
    items_written: int = 0


def _contribution(event: PlaybackStart | PlaybackHeartbeat, ratio: float | None) -> Contribution:
    seg = segment_of(event)
    if isinstance(event, PlaybackStart):
        p = event.payload
        return Contribution(
            seg,
            event.occurred_at,
            throughput_kbps=p.qoe.throughput_kbps if p.qoe else None,
            early=True,
            startup_ms=p.startup_ms,
            session_start=True,
            rebuffer_ms=p.qoe.rebuffer_ms if p.qoe else 0,
        )
    h = event.payload
    return Contribution(
        seg,
        event.occurred_at,
        throughput_kbps=h.qoe.throughput_kbps,
        early=h.position_s < EARLY_POSITION_S,
        ratio=ratio,
        heartbeat=True,
        rebuffer_ms=h.qoe.rebuffer_ms,
    )


def aggregate(table: Table, records: Iterable[QoeRecord], now: datetime) -> AggregateReport:
    """Apply a batch of QoE events to the qoe table (one BatchGetItem round for the session
    states and one for the segment items, then BatchWriteItem for both)."""
    report = AggregateReport()
    ordered = sorted(
        records, key=lambda r: (r.event.payload.session_id, r.event.occurred_at, r.sequence)
    )
    if not ordered:
        return report
    sessions_found = table.get_many([session_key(r.event.payload.session_id) for r in ordered])
    states: dict[str, SessionState] = {}
    touched_sessions: set[str] = set()
    contributions: list[tuple[QoeRecord, Contribution]] = []
    for r in ordered:
        sid = r.event.payload.session_id
        if sid not in states:
            states[sid] = SessionState.from_item(sessions_found.get(session_key(sid)))
        state = states[sid]
        h = _event_hash(r.event.event_id)
        if h in state.seen:
            report.duplicates += 1
            continue
        t_ms = int(r.event.occurred_at.timestamp() * 1000)
        kbps: float | None
        if isinstance(r.event, PlaybackHeartbeat):
            kbps = r.event.payload.qoe.throughput_kbps
            ratio = state.prediction_ratio(t_ms, kbps) if kbps > 0 else None
        else:
            kbps = r.event.payload.qoe.throughput_kbps if r.event.payload.qoe else None
            ratio = None
        state.record(t_ms, kbps if kbps else None, h)
        touched_sessions.add(sid)
        contributions.append((r, _contribution(r.event, ratio)))
        report.applied += 1

    # group by item: every level of each event's segment, its day, its shard
    by_item: dict[Key, list[tuple[int, Contribution]]] = defaultdict(list)
    for r, c in contributions:
        day = c.at.astimezone(UTC).strftime("%Y-%m-%d")
        for level, seg_key in c.segment.chain():
            by_item[stats_key(level, seg_key, day, r.shard)].append((r.sequence, c))
        report.segments.add(c.segment)
    existing = table.get_many(list(by_item))
    expires = int((now + STATS_TTL).timestamp())
    items: list[Item] = []
    for key, contribs in by_item.items():
        old = existing.get(key)
        watermark = int(old["seq"]) if old else -1
        fresh = [(seq, c) for seq, c in contribs if seq > watermark]
        report.replayed += len(contribs) - len(fresh)
        if not fresh:
            continue
        stats = SegmentStats.from_item(old) if old else SegmentStats()
        for _, c in fresh:
            stats.add(c)
        items.append(
            {
                "pk": key[0],
                "sk": key[1],
                **stats.attributes(),
                "seq": str(max(watermark, *(seq for seq, _ in fresh))),
                "expires_at": expires,
            }
        )
    table.put_many(items)
    session_expires = int((now + SESSION_TTL).timestamp())
    table.put_many(
        [
            {
                "pk": session_key(sid)[0],
                "sk": session_key(sid)[1],
                "samples": [[t, v] for t, v in states[sid].samples],
                "seen": states[sid].seen,
                "expires_at": session_expires,
            }
            for sid in sorted(touched_sessions)
        ]
    )
    report.items_written = len(items) + len(touched_sessions)
    return report


def load_stats(table: Table, level: Level, segment_key: str, window_days: int) -> SegmentStats:
    """Merge a segment's items (every shard) over its newest ``window_days`` days of data.

    The window ends at the newest day the segment has data for, not at ``now``: a segment that
    went quiet keeps its last known distribution, and the hint's ``age_s`` says how old it is
    (items expire 15 days after their last write, which bounds how old that can get)."""
    items = table.query(f"seg#{level}#{segment_key}", "day#")
    stats = SegmentStats()
    if not items:
        return stats
    newest = max(item["sk"][4:14] for item in items)
    first_day = (datetime.fromisoformat(newest) - timedelta(days=window_days - 1)).strftime(
        "%Y-%m-%d"
    )
    for item in items:
        if item["sk"][4:14] >= first_day:
            stats.merge(SegmentStats.from_item(item))
    return stats


def as_qoe_records(events: Iterable[tuple[Event, Mapping[str, Any]]]) -> list[QoeRecord]:
    """Pair QoE events with their Kinesis position (``source`` as streamsense.pipeline builds
    it: ``shard`` and ``sequence_number``); other event types are not QoE telemetry."""
    out = []
    for event, source in events:
        if isinstance(event, PlaybackStart | PlaybackHeartbeat):
            out.append(QoeRecord(event, str(source["shard"]), int(source["sequence_number"])))
    return out
