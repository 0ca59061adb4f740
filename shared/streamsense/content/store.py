"""The content bandit's state in the ``content`` table, and the one domain call that applies a
batch of ``impression`` events to it exactly once.

Items (string ``pk`` / ``sk``):

- ``title#<title_id>`` / ``stats#<shard_id>``: the title's statistics from one Kinesis shard
  (``variants``: variant id -> integer list, see model.VariantStats) and ``watermark``, the
  sequence number of the last impression of this shard applied to it. One row per shard, so
  each row has a single writer (a shard is processed by one invocation at a time); readers sum
  the rows (exact: integer statistics).
- ``member#<profile_id>`` / ``content``: the member's plays per title and variant (the context
  features ``engaged`` and ``affinity``), a ledger of the member's recent impressions, and
  ``expires_at`` (personal state: TTL, ``member_ttl_days`` after the member's last impression).

Exactly once, under any replay:
- Kinesis redelivery (a retried or bisected batch, or a replay of old records): each row
  applies a record only if its sequence number is above the row's watermark. A row and its
  watermark are written in one item write, so a crash between two rows' writes is repaired by
  the retry without counting anything twice.
- Producer duplicates (the same event_id put twice, so with another sequence number): the
  member ledger maps each recent event id to (a hash of) the stream position it was applied
  at, and the context it was applied with. A known event id at another position is skipped
  everywhere.
- A title row applied on retry uses the context recorded in the ledger, not the member's
  current counts (which already include the retried impression's play), so a retried batch
  gives the same statistics as an uninterrupted one.
The ledger keeps each member's last ``ledger_size`` impressions as short strings (about 25
bytes each, so a member write stays within a couple of write units); producer duplicates
further apart than that are not detected (they arrive seconds apart in practice).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from streamsense.content.features import Context, features
from streamsense.content.model import Choice, PolicyConfig, TitleStats, choose, merge_all
from streamsense.events import Event, Impression
from streamsense.observability import count, logger
from streamsense.pipeline import BatchResult, Parsed
from streamsense.storage import Item, Key, Table

SCHEMA = 1


@dataclass(frozen=True)
class StoreConfig:
    ledger_size: int = 64  # recent impressions remembered per member (duplicate detection)
    max_titles: int = 100  # played titles remembered per member (most recent kept)
    member_ttl_days: int = 90


@dataclass(frozen=True)
class Delivered:
    """An impression as the event source delivered it: the shard and sequence number it sits at."""

    event: Impression
    shard: str
    sequence: int


@dataclass
class ApplyReport:
    applied: int = 0  # impressions added to the statistics for the first time
    plays: int = 0
    duplicates: int = 0  # same event_id seen at another stream position: skipped
    replayed: int = 0  # already applied (redelivered record): skipped
    titles: int = 0
    writes: int = 0  # items written
    requests: int = 0  # DynamoDB requests used


def title_key(title_id: str, shard: str) -> Key:
    return (f"title#{title_id}", f"stats#{shard}")


def member_key(profile_id: str) -> Key:
    return (f"member#{profile_id}", "content")


def event_key(event_id: str) -> str:
    """A fixed-size ledger key (event ids may be up to 128 characters); 48 bits, so two of a
    member's last few dozen impressions colliding is a ~1e-11 event."""
    return hashlib.sha256(event_id.encode()).hexdigest()[:12]


def position_key(shard: str, sequence: int) -> str:
    """Where a record sat in the stream, hashed: tells a redelivery from a producer duplicate."""
    return hashlib.sha256(f"{shard}:{sequence}".encode()).hexdigest()[:8]


def _context_code(engaged: bool, affinity: int) -> int:
    # The features only use engaged, affinity >= 1 and affinity >= 2: one digit keeps them all.
    return 3 * int(engaged) + min(affinity, 2)


@dataclass
class _TitleRow:
    title_id: str
    shard: str
    stats: TitleStats
    watermark: int
    last_event_at: str
    dirty: bool = False
    pending: list[tuple[str, tuple[int, ...], bool]] = field(default_factory=list)

    @classmethod
    def load(cls, title_id: str, shard: str, item: Item | None) -> _TitleRow:
        if item is None:
            return cls(title_id, shard, TitleStats(), -1, "")
        return cls(title_id, shard, TitleStats.from_dict(item.get("variants", {})), int(item["watermark"]), str(item.get("last_event_at", "")))

    def item(self) -> Item:
        pk, sk = title_key(self.title_id, self.shard)
        return {
            "pk": pk,
            "sk": sk,
            "schema": SCHEMA,
            "title_id": self.title_id,
            "shard": self.shard,
            "variants": self.stats.to_dict(),
            "impressions": self.stats.impressions,
            "plays": self.stats.plays,
            "watermark": str(self.watermark),
            "last_event_at": self.last_event_at,
        }


@dataclass
class _MemberRow:
    profile_id: str
    titles: dict[str, dict[str, Any]]  # played titles: {"v": {variant: plays}, "at": epoch s}
    ledger: dict[str, tuple[str, int]]  # event key -> (position key, context code), oldest first
    watermarks: dict[str, str]  # shard -> last sequence number applied to this row
    last_epoch: int
    dirty: bool = False

    @classmethod
    def load(cls, profile_id: str, item: Item | None) -> _MemberRow:
        if item is None:
            return cls(profile_id, {}, {}, {}, 0)
        return cls(
            profile_id,
            dict(item.get("titles", {})),
            {k: (pos, int(code)) for k, pos, code in (str(e).split(":") for e in item.get("ledger", []))},
            dict(item.get("watermarks", {})),
            int(item.get("last_epoch", 0)),
        )

    def applied_before(self, shard: str, sequence: int) -> bool:
        return sequence <= int(self.watermarks.get(shard, "-1"))

    def context_parts(self, title_id: str, variant_id: str) -> tuple[bool, int]:
        plays = self.titles.get(title_id, {}).get("v", {})
        return sum(int(n) for n in plays.values()) > 0, int(plays.get(variant_id, 0))

    def item(self, config: StoreConfig) -> Item:
        pk, sk = member_key(self.profile_id)
        # Bounded state: the most recent impressions and titles only.
        ledger = [f"{k}:{pos}:{code}" for k, (pos, code) in list(self.ledger.items())[-config.ledger_size :]]
        titles = dict(sorted(self.titles.items(), key=lambda kv: (int(kv[1]["at"]), kv[0]))[-config.max_titles :])
        return {
            "pk": pk,
            "sk": sk,
            "schema": SCHEMA,
            "titles": titles,
            "ledger": ledger,
            "watermarks": self.watermarks,
            "last_epoch": self.last_epoch,
            "expires_at": self.last_epoch + config.member_ttl_days * 86400,
        }


def apply_impressions(batch: Sequence[Delivered], table: Table, config: StoreConfig | None = None) -> ApplyReport:
    """Apply a batch (in stream order) of impressions: one BatchGetItem pass for every row the
    batch touches, then one BatchWriteItem pass for the rows that changed."""
    config = config or StoreConfig()
    report = ApplyReport()
    if not batch:
        return report
    requests_before = table.requests
    t_keys = list(dict.fromkeys(title_key(d.event.payload.title_id, d.shard) for d in batch))
    m_keys = list(dict.fromkeys(member_key(d.event.payload.profile_id) for d in batch))
    found = table.get_many([*t_keys, *m_keys])
    titles = {
        (d.event.payload.title_id, d.shard): _TitleRow.load(d.event.payload.title_id, d.shard, found.get(title_key(d.event.payload.title_id, d.shard)))
        for d in batch
    }
    members = {d.event.payload.profile_id: _MemberRow.load(d.event.payload.profile_id, found.get(member_key(d.event.payload.profile_id))) for d in batch}

    for d in batch:
        p = d.event.payload
        member = members[p.profile_id]
        ekey = event_key(d.event.event_id)
        epoch_ms = int(d.event.occurred_at.timestamp() * 1000)
        entry = member.ledger.get(ekey)
        if entry is not None and entry[0] != position_key(d.shard, d.sequence):
            report.duplicates += 1
            continue
        if entry is not None:
            engaged, affinity = bool(entry[1] // 3), entry[1] % 3  # the member row already has it
        elif member.applied_before(d.shard, d.sequence):
            # Applied so long ago that it left the ledger: every row has it already.
            report.replayed += 1
            continue
        else:
            engaged, affinity = member.context_parts(p.title_id, p.variant_id)
            if p.played:
                seen = member.titles.setdefault(p.title_id, {"v": {}, "at": 0})
                seen["at"] = max(int(seen["at"]), epoch_ms // 1000)
                seen["v"][p.variant_id] = int(seen["v"].get(p.variant_id, 0)) + 1
            member.ledger[ekey] = (position_key(d.shard, d.sequence), _context_code(engaged, affinity))
            member.watermarks[d.shard] = str(d.sequence)
            member.last_epoch = max(member.last_epoch, epoch_ms // 1000)
            member.dirty = True
        row = titles[(p.title_id, d.shard)]
        if d.sequence <= row.watermark:
            report.replayed += 1
            continue
        row.pending.append((p.variant_id, features(p.position, engaged, affinity), p.played))
        row.watermark = d.sequence
        row.last_event_at = max(row.last_event_at, d.event.occurred_at.isoformat().replace("+00:00", "Z"))
        row.dirty = True
        report.applied += 1
        report.plays += int(p.played)

    for row in titles.values():
        if row.pending:  # one vectorized update per row
            names, zs, played = zip(*row.pending, strict=True)
            row.stats.add_batch(names, np.array(zs), np.array(played))
    writes = [r.item() for r in titles.values() if r.dirty] + [m.item(config) for m in members.values() if m.dirty]
    if writes:
        table.put_many(writes)
    report.titles = len({t for t, _ in titles})
    report.writes = len(writes)
    report.requests = table.requests - requests_before
    return report


# ---- reading: what the serving path (and the benchmark) use ---------------------------------


def load_title_stats(table: Table, title_ids: Iterable[str]) -> dict[str, TitleStats]:
    """Each title's statistics, summed over its per-shard rows (one Query per title)."""
    out: dict[str, TitleStats] = {}
    for title_id in dict.fromkeys(title_ids):
        rows = table.query(f"title#{title_id}", "stats#")
        out[title_id] = merge_all([TitleStats.from_dict(r.get("variants", {})) for r in rows])
    return out


def member_contexts(table: Table, requests: Sequence[tuple[str, str, int]]) -> list[Context]:
    """Contexts for (profile_id, title_id, position) requests, from one BatchGetItem pass."""
    found = table.get_many([member_key(profile) for profile, _, _ in requests])
    out = []
    for profile, title_id, position in requests:
        row = _MemberRow.load(profile, found.get(member_key(profile)))
        plays = {str(k): int(v) for k, v in row.titles.get(title_id, {}).get("v", {}).items()}
        out.append(Context(position=position, engaged=sum(plays.values()) > 0, affinity=plays))
    return out


def choose_variant(
    table: Table,
    profile_id: str,
    title_id: str,
    variants: Sequence[str],
    position: int,
    rng: np.random.Generator,
    config: PolicyConfig | None = None,
) -> Choice:
    """Serve one decision from the table's current state (the propensity to log is in the
    returned Choice)."""
    stats = load_title_stats(table, [title_id])[title_id]
    context = member_contexts(table, [(profile_id, title_id, position)])[0]
    return choose(stats, variants, context, rng, config)


def title_rows(items: Mapping[Key, Item]) -> dict[str, TitleStats]:
    """Sum per-shard statistics rows found in a key -> item mapping (e.g. a table dump)."""
    parts: dict[str, list[TitleStats]] = {}
    for (pk, sk), item in items.items():
        if pk.startswith("title#") and sk.startswith("stats#"):
            parts.setdefault(pk.removeprefix("title#"), []).append(TitleStats.from_dict(item.get("variants", {})))
    return {t: merge_all(p) for t, p in parts.items()}


# ---- the handler's domain call ----------------------------------------------------------------


def apply_kinesis_batch(batch: Sequence[Parsed[Event]], table: Table, config: StoreConfig | None = None) -> BatchResult:
    """What ``content_bandit`` does with a parsed Kinesis batch (only impressions reach it):
    apply them exactly once and count the outcomes. Nothing here is bad input, so nothing is
    quarantined; storage errors propagate as TransientStoreError and the batch is retried."""
    delivered = [
        Delivered(p.value, str(p.source["shard"]), int(p.source["sequence_number"]))
        for p in batch
        if isinstance(p.value, Impression)
    ]
    report = apply_impressions(delivered, table, config)
    count("ImpressionsApplied", report.applied)
    count("ImpressionsDuplicate", report.duplicates)
    count("ImpressionsReplayed", report.replayed)
    count("Plays", report.plays)
    count("DynamoRequests", report.requests)
    logger.info(
        "impressions applied",
        extra={k: getattr(report, k) for k in ("applied", "plays", "duplicates", "replayed", "titles", "writes", "requests")},
    )
    return BatchResult()
