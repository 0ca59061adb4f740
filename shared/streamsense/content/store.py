"""The content bandit's state in the ``content`` table, and the one domain call that applies a
batch of ``impression`` events to it exactly once.

Items (string ``pk`` / ``sk``):

- ``title#<title_id>`` / ``stats#<shard_id>``: the title's statistics from one Kinesis shard
  (``variants``: variant id -> its integer list as comma-separated text, model.VariantStats)
  and ``watermark``, the sequence number of the last impression of this shard applied to it.
  One row per shard, so each row has a single writer (a shard is processed by one invocation
  at a time); readers sum the rows (exact: integer statistics). For the off-policy evaluation of the learned policy
  (``evaluation``), each impression also falls in one of two folds by a hash of its event id:
  ``fold_a`` holds the statistics of fold 0 alone (fold 1's are ``variants`` minus ``fold_a``,
  exact integer subtraction) and ``cells`` the logged rewards and inverse propensities per
  (fold, variant shown, member's history of the title), see ``Cells``. Serving
  uses all impressions; the evaluation scores fold 0 with the policy learned from fold 1 and
  vice versa, so no impression is scored by a policy that learned from it.
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
  gives the same statistics (and evaluation cells) as an uninterrupted one.
The ledger keeps each member's last ``ledger_size`` impressions as short strings (about 25
bytes each, so a member write stays within a couple of write units; a member who had played
the title after seeing other variants adds ~9 bytes per such variant); producer duplicates
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

SCHEMA = 2  # 2: fold_a and cells (off-policy evaluation); schema-1 rows have neither
#: Inverse propensities are summed as integers in millionths, so cells merge exactly too.
W_SCALE = 1_000_000
#: (member's level per variant of the title: 1 = played it after one impression of it, 2 = more)
Pattern = tuple[tuple[str, int], ...]
#: (fold, variant shown, pattern): the cell an impression is evaluated in. Not the slot: the
#: policy's choice does not depend on it, and cells per slot would double the title rows' size
#: (the DR reward model uses the other fold's average slot mix instead).
CellKey = tuple[int, str, Pattern]
#: Per cell: impressions, plays, sum 1/p, sum r/p, sum 1/p^2, sum r/p^2 (the last four x W_SCALE).
CELL_LEN = 6


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


def fold_of(event_id: str) -> int:
    """The evaluation fold (0 or 1) of an impression: a hash of its event id, so a replayed or
    duplicated impression always lands in the same fold."""
    return hashlib.sha256(f"fold:{event_id}".encode()).digest()[0] & 1


def pattern_of(plays: Mapping[str, Any]) -> Pattern:
    """A member's history of one title as the policy sees it: variant -> min(plays, 2)."""
    return tuple(sorted((str(v), min(int(n), 2)) for v, n in plays.items() if int(n) >= 1))


def _variant_hash(variant: str) -> str:
    return hashlib.sha256(variant.encode()).hexdigest()[:6]


def _context_code(variant: str, pattern: Pattern) -> str:
    # The features only use engaged, affinity >= 1 and affinity >= 2: one digit keeps them all
    # for the variant shown; the member's levels for the title's other variants (which the
    # policy's choice also depends on, so the evaluation cell does) follow as hash=level.
    levels = dict(pattern)
    code = str(3 * int(bool(pattern)) + levels.get(variant, 0))
    others = [f"{_variant_hash(v)}={lvl}" for v, lvl in pattern if v != variant]
    return code + ("|" + ",".join(others) if others else "")


def _decode_context(code: str, variant: str, known: Iterable[str]) -> tuple[bool, int, Pattern]:
    """(engaged, affinity to the variant shown, pattern) from a ledger code; ``known`` are the
    variants the member has played the title after (where the hashed names are looked up)."""
    head, _, rest = code.partition("|")
    engaged, own = bool(int(head) // 3), int(head) % 3
    by_hash = {_variant_hash(v): v for v in known}
    levels = {by_hash[h]: int(lvl) for h, lvl in (p.split("=") for p in rest.split(",") if p) if h in by_hash}
    if own:
        levels[variant] = own
    return engaged, own, tuple(sorted(levels.items()))


@dataclass
class Cells:
    """Logged outcomes grouped by what the learned policy's choice (and its reward model)
    depends on: CellKey -> [n, plays, sum 1/p, sum r/p, sum 1/p^2, sum r/p^2] (integers; the
    inverse-propensity sums in millionths). Enough for IPW, SNIPW and DR estimates and their
    standard errors of any policy that is constant within a cell."""

    data: dict[CellKey, list[int]] = field(default_factory=dict)

    def add(self, key: CellKey, propensity: float, played: bool) -> None:
        w, ww = round(W_SCALE / propensity), round(W_SCALE / propensity**2)
        r = int(played)
        cell = self.data.setdefault(key, [0] * CELL_LEN)
        for i, v in enumerate((1, r, w, r * w, ww, r * ww)):
            cell[i] += v

    def merged(self, other: Cells) -> Cells:
        out = {k: list(v) for k, v in self.data.items()}
        for k, v in other.data.items():
            out[k] = [a + b for a, b in zip(out[k], v, strict=True)] if k in out else list(v)
        return Cells(out)

    def to_list(self) -> list[list[Any]]:
        return [[f, v, [list(p) for p in pat], *vals] for (f, v, pat), vals in sorted(self.data.items())]

    @classmethod
    def from_list(cls, rows: Iterable[Sequence[Any]]) -> Cells:
        data: dict[CellKey, list[int]] = {}
        for f, v, pat, *vals in rows:
            if len(vals) != CELL_LEN:
                raise ValueError(f"an evaluation cell needs {CELL_LEN} numbers, got {len(vals)}")
            key = (int(f), str(v), tuple((str(x), int(lvl)) for x, lvl in pat))
            data[key] = [int(x) for x in vals]
        return cls(data)

    @property
    def impressions(self) -> int:
        return sum(v[0] for v in self.data.values())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Cells) and self.to_list() == other.to_list()


@dataclass
class TitleState:
    """Everything the table knows about one title (summed over its per-shard rows)."""

    stats: TitleStats = field(default_factory=TitleStats)
    fold_a: TitleStats = field(default_factory=TitleStats)
    cells: Cells = field(default_factory=Cells)
    shards: int = 0
    last_event_at: str = ""

    def fold_stats(self, fold: int) -> TitleStats:
        """The statistics of one fold's impressions (fold 1 = all minus fold 0, exactly)."""
        if fold == 0:
            return self.fold_a
        out = {}
        for name, s in self.stats.variants.items():
            a = self.fold_a.variants.get(name)
            values = s.to_list() if a is None else [x - y for x, y in zip(s.to_list(), a.to_list(), strict=True)]
            out[name] = values
        return TitleStats.from_dict(out)

    def merged(self, other: TitleState) -> TitleState:
        return TitleState(
            self.stats.merged(other.stats),
            self.fold_a.merged(other.fold_a),
            self.cells.merged(other.cells),
            self.shards + other.shards,
            max(self.last_event_at, other.last_event_at),
        )

    @classmethod
    def from_item(cls, item: Item) -> TitleState:
        return cls(
            TitleStats.from_dict(item.get("variants", {})),
            TitleStats.from_dict(item.get("fold_a", {})),
            Cells.from_list(item.get("cells", [])),
            1,
            str(item.get("last_event_at", "")),
        )


@dataclass
class _TitleRow:
    title_id: str
    shard: str
    stats: TitleStats
    fold_a: TitleStats
    cells: Cells
    watermark: int
    last_event_at: str
    dirty: bool = False
    pending: list[tuple[str, tuple[int, ...], bool, int]] = field(default_factory=list)  # variant, z, played, fold

    @classmethod
    def load(cls, title_id: str, shard: str, item: Item | None) -> _TitleRow:
        if item is None:
            return cls(title_id, shard, TitleStats(), TitleStats(), Cells(), -1, "")
        state = TitleState.from_item(item)
        return cls(title_id, shard, state.stats, state.fold_a, state.cells, int(item["watermark"]), state.last_event_at)

    def item(self) -> Item:
        pk, sk = title_key(self.title_id, self.shard)
        return {
            "pk": pk,
            "sk": sk,
            "schema": SCHEMA,
            "title_id": self.title_id,
            "shard": self.shard,
            "variants": self.stats.to_item(),
            "fold_a": self.fold_a.to_item(),
            "cells": self.cells.to_list(),
            "impressions": self.stats.impressions,
            "plays": self.stats.plays,
            "watermark": str(self.watermark),
            "last_event_at": self.last_event_at,
        }


@dataclass
class _MemberRow:
    profile_id: str
    titles: dict[str, dict[str, Any]]  # played titles: {"v": {variant: plays}, "at": epoch s}
    ledger: dict[str, tuple[str, str]]  # event key -> (position key, context code), oldest first
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
            {k: (pos, code) for k, pos, code in (str(e).split(":") for e in item.get("ledger", []))},
            dict(item.get("watermarks", {})),
            int(item.get("last_epoch", 0)),
        )

    def applied_before(self, shard: str, sequence: int) -> bool:
        return sequence <= int(self.watermarks.get(shard, "-1"))

    def played_variants(self, title_id: str) -> dict[str, Any]:
        return dict(self.titles.get(title_id, {}).get("v", {}))

    def context_parts(self, title_id: str, variant_id: str) -> tuple[bool, int, Pattern]:
        plays = self.played_variants(title_id)
        return sum(int(n) for n in plays.values()) > 0, int(plays.get(variant_id, 0)), pattern_of(plays)

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
        if entry is not None:  # the member row already has it: its context is in the ledger
            engaged, affinity, pattern = _decode_context(entry[1], p.variant_id, member.played_variants(p.title_id))
        elif member.applied_before(d.shard, d.sequence):
            # Applied so long ago that it left the ledger: every row has it already.
            report.replayed += 1
            continue
        else:
            engaged, affinity, pattern = member.context_parts(p.title_id, p.variant_id)
            if p.played:
                seen = member.titles.setdefault(p.title_id, {"v": {}, "at": 0})
                seen["at"] = max(int(seen["at"]), epoch_ms // 1000)
                seen["v"][p.variant_id] = int(seen["v"].get(p.variant_id, 0)) + 1
            member.ledger[ekey] = (position_key(d.shard, d.sequence), _context_code(p.variant_id, pattern))
            member.watermarks[d.shard] = str(d.sequence)
            member.last_epoch = max(member.last_epoch, epoch_ms // 1000)
            member.dirty = True
        row = titles[(p.title_id, d.shard)]
        if d.sequence <= row.watermark:
            report.replayed += 1
            continue
        fold = fold_of(d.event.event_id)
        row.pending.append((p.variant_id, features(p.position, engaged, affinity), p.played, fold))
        row.cells.add((fold, p.variant_id, pattern), p.propensity, p.played)
        row.watermark = d.sequence
        row.last_event_at = max(row.last_event_at, d.event.occurred_at.isoformat().replace("+00:00", "Z"))
        row.dirty = True
        report.applied += 1
        report.plays += int(p.played)

    for row in titles.values():
        if row.pending:  # one vectorized update per row (and one for its fold-0 share)
            names, zs, played, folds = zip(*row.pending, strict=True)
            row.stats.add_batch(names, np.array(zs), np.array(played))
            a = [i for i, f in enumerate(folds) if f == 0]
            if a:
                row.fold_a.add_batch([names[i] for i in a], np.array([zs[i] for i in a]), np.array([played[i] for i in a]))
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


def title_states(items: Iterable[Item]) -> dict[str, TitleState]:
    """Each title's full state (statistics, fold-0 statistics, evaluation cells), summed over
    its per-shard rows, from any iterable of table items (a Scan, a Query, a saved dump)."""
    parts: dict[str, list[TitleState]] = {}
    for item in sorted(items, key=lambda i: (str(i["pk"]), str(i["sk"]))):
        pk, sk = str(item["pk"]), str(item["sk"])
        if pk.startswith("title#") and sk.startswith("stats#"):
            parts.setdefault(pk.removeprefix("title#"), []).append(TitleState.from_item(item))
    out = {}
    for title, states in parts.items():
        total = states[0]  # most titles sit on one shard: no copy
        for st in states[1:]:
            total = total.merged(st)
        out[title] = total
    return out


def load_title_states(table: Table, title_ids: Iterable[str]) -> dict[str, TitleState]:
    """title_states for a few titles (one Query per title)."""
    out: dict[str, TitleState] = {}
    for title_id in dict.fromkeys(title_ids):
        found = title_states(table.query(f"title#{title_id}", "stats#"))
        out[title_id] = found.get(title_id, TitleState())
    return out


def load_member(table: Table, profile_id: str) -> Item | None:
    """The member's content row as stored (None: no impression of theirs was applied)."""
    return table.get_many([member_key(profile_id)]).get(member_key(profile_id))


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
