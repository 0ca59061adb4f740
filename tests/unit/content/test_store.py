"""The content table's state: exact updates from hand-made impressions, and exactly-once under
Kinesis redelivery, crashes between item writes and producer duplicates."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
import pytest
from streamsense.content.features import Context, features
from streamsense.content.model import TitleStats
from streamsense.content.store import (
    Delivered,
    StoreConfig,
    apply_impressions,
    choose_variant,
    event_key,
    fold_of,
    load_title_stats,
    member_contexts,
    member_key,
    position_key,
    title_key,
    title_states,
)
from streamsense.events import Impression, parse_event
from streamsense.storage import Item, MemoryTable, TransientStoreError

SHARD = "shardId-000000000000"
SEQ0 = 49654283920018742934872003215498210357438729384723945410


def impression(n: int, profile: str, title: str, variant: str, position: int, played: bool, minute: int) -> Impression:
    event = parse_event(
        Impression(
            type="impression",
            version=1,
            event_id=f"imp-{n}",
            occurred_at=datetime(2024, 12, 3, 12, minute, tzinfo=UTC),
            account_id=f"acc-{profile}",
            payload={"profile_id": profile, "title_id": title, "variant_id": variant, "position": position, "propensity": 0.5, "played": played},  # type: ignore[arg-type]
        ).model_dump_json()
    )
    assert isinstance(event, Impression)
    return event


def batch(shard: str = SHARD) -> list[Delivered]:
    events = [
        impression(1, "p1", "dune", "desert", 0, True, 0),
        impression(2, "p1", "dune", "desert", 2, False, 5),
        impression(3, "p2", "dune", "face", 1, False, 6),
        impression(4, "p2", "up", "short", 0, True, 7),
        impression(5, "p1", "dune", "face", 4, True, 8),
    ]
    return [Delivered(e, shard, SEQ0 + 1000 * i) for i, e in enumerate(events)]


def test_exact_updates_from_hand_made_impressions() -> None:
    table = MemoryTable()
    report = apply_impressions(batch(), table)
    assert (report.applied, report.plays, report.duplicates, report.replayed, report.titles) == (5, 3, 0, 0, 2)
    # 2 title rows (dune, up) + 2 member rows, read in one BatchGetItem and written in one BatchWriteItem.
    assert (report.writes, report.requests) == (4, 2)

    dune = table.items[title_key("dune", SHARD)]
    assert dune["watermark"] == str(SEQ0 + 4000)
    assert (dune["impressions"], dune["plays"], dune["last_event_at"]) == (4, 2, "2024-12-03T12:08:00Z")
    stats = TitleStats.from_dict(dune["variants"])
    desert, face = stats.variants["desert"], stats.variants["face"]
    # desert: #1 at slot 0 as a new member (played), #2 at slot 2 after playing it (not played).
    assert (desert.n, desert.plays) == (2, 1)
    assert desert.z.tolist() == [0, 1, 0, 1, 1, 0]
    assert desert.zr.tolist() == [0, 0, 0, 0, 0, 0]
    assert desert.zz[np.triu_indices(6)].tolist() == [0, 0, 0, 0, 0, 0, 1, 0, 1, 1, 0, 0, 0, 0, 0, 1, 1, 0, 1, 0, 0]
    # face: #3 by p2 at slot 1 (not played), #5 by p1 at slot 4 (engaged, no affinity to face; played).
    assert (face.n, face.plays) == (2, 1)
    assert face.z.tolist() == [1, 0, 1, 1, 0, 0]
    assert face.zr.tolist() == [0, 0, 1, 1, 0, 0]
    up = TitleStats.from_dict(table.items[title_key("up", SHARD)]["variants"])
    assert up.variants["short"].to_list()[:2] == [1, 1]

    p1 = table.items[member_key("p1")]
    assert p1["titles"] == {"dune": {"v": {"desert": 1, "face": 1}, "at": 1733227680}}
    # Ledger, oldest first: event key, stream position key, context code (3 * engaged + affinity,
    # then the member's levels for the title's other variants: #5 shows face after desert was played).
    desert_hash = hashlib.sha256(b"desert").hexdigest()[:6]
    assert p1["ledger"] == [
        f"{event_key('imp-1')}:{position_key(SHARD, SEQ0)}:0",
        f"{event_key('imp-2')}:{position_key(SHARD, SEQ0 + 1000)}:4",
        f"{event_key('imp-5')}:{position_key(SHARD, SEQ0 + 4000)}:3|{desert_hash}=1",
    ]
    assert len(p1["ledger"][0]) == 12 + 1 + 8 + 1 + 1
    assert p1["watermarks"] == {SHARD: str(SEQ0 + 4000)}
    assert p1["expires_at"] == 1733227680 + 90 * 86400
    p2 = table.items[member_key("p2")]
    assert p2["titles"] == {"up": {"v": {"short": 1}, "at": 1733227620}}  # unplayed titles are not kept
    assert [e.split(":")[0] for e in p2["ledger"]] == [event_key("imp-3"), event_key("imp-4")]


def test_evaluation_folds_and_cells_by_hand() -> None:
    table = MemoryTable()
    apply_impressions(batch(), table)
    assert [fold_of(f"imp-{i}") for i in range(1, 6)] == [0, 1, 0, 0, 0]
    dune = table.items[title_key("dune", SHARD)]
    # Fold 0 of dune: #1 (desert), #3 and #5 (face).
    fold_a = TitleStats.from_dict(dune["fold_a"])
    assert {v: s.to_list()[:2] for v, s in fold_a.variants.items()} == {"desert": [1, 1], "face": [2, 1]}
    assert fold_a.variants["face"].z.tolist() == [1, 0, 1, 1, 0, 0]
    # Cells: fold, variant, member's levels for the title; then n, plays, and sum 1/p, r/p,
    # 1/p^2, r/p^2 in millionths (p = 0.5).
    assert dune["cells"] == [
        [0, "desert", [], 1, 1, 2_000_000, 2_000_000, 4_000_000, 4_000_000],
        [0, "face", [], 1, 0, 2_000_000, 0, 4_000_000, 0],
        [0, "face", [["desert", 1]], 1, 1, 2_000_000, 2_000_000, 4_000_000, 4_000_000],
        [1, "desert", [["desert", 1]], 1, 0, 2_000_000, 0, 4_000_000, 0],
    ]
    # Fold 1 = all minus fold 0: #2 alone, desert at slot 2 after playing it (not played).
    state = title_states(table.items.values())["dune"]
    desert = state.fold_stats(1).variants["desert"]
    assert (desert.n, desert.plays, desert.z.tolist(), desert.zr.tolist()) == (1, 0, [0, 1, 0, 1, 1, 0], [0] * 6)
    assert state.fold_stats(1).variants["face"].n == 0


def test_replaying_a_batch_changes_nothing() -> None:
    table = MemoryTable()
    apply_impressions(batch(), table)
    after_one = copy.deepcopy(table.items)
    report = apply_impressions(batch(), table)
    assert table.items == after_one
    assert (report.applied, report.replayed, report.writes, report.requests) == (0, 5, 0, 1)
    # A bisected retry (second half only) and an old batch after newer ones: still nothing.
    apply_impressions(batch()[2:], table)
    apply_impressions([Delivered(impression(9, "p1", "dune", "face", 0, True, 30), SHARD, SEQ0 + 9000)], table)
    after_new = copy.deepcopy(table.items)
    apply_impressions(batch(), table)
    assert table.items == after_new


def test_producer_duplicates_count_once() -> None:
    table = MemoryTable()
    first = batch()
    again = Delivered(first[0].event, SHARD, SEQ0 + 50_000)  # same event_id, later position
    report = apply_impressions([*first, again], table)
    assert (report.applied, report.duplicates) == (5, 1)
    clean = MemoryTable()
    apply_impressions(first, clean)
    assert table.items == clean.items
    # ... also when the duplicate comes in a later batch.
    report = apply_impressions([Delivered(first[4].event, SHARD, SEQ0 + 60_000)], table)
    assert (report.applied, report.duplicates) == (0, 1)
    assert table.items == clean.items


class CrashingTable(MemoryTable):
    """Persists only the written items that ``keep`` accepts, then fails (a Lambda dying mid-write)."""

    def __init__(self, items: dict, keep: object) -> None:
        super().__init__()
        self.items = copy.deepcopy(items)
        self.keep = keep

    def put_many(self, items: Sequence[Item]) -> None:
        super().put_many([i for i in items if self.keep(i)])  # type: ignore[operator]
        raise TransientStoreError("crashed")


@pytest.mark.parametrize(
    "keep",
    [
        lambda i: False,
        lambda i: i["pk"].startswith("member#"),  # members saved, titles lost
        lambda i: i["pk"].startswith("title#"),  # titles saved, members lost
        lambda i: i["pk"] in {"title#dune", "member#p2"},
        lambda i: i["pk"] in {"title#up", "member#p1"},
    ],
)
def test_a_retry_after_a_partial_write_equals_one_clean_apply(keep: object) -> None:
    prior = MemoryTable()
    apply_impressions([Delivered(impression(0, "p1", "dune", "face", 0, True, 0), SHARD, SEQ0 - 5)], prior)
    clean = MemoryTable()
    clean.items = copy.deepcopy(prior.items)
    apply_impressions(batch(), clean)

    crashing = CrashingTable(prior.items, keep)
    with pytest.raises(TransientStoreError):
        apply_impressions(batch(), crashing)
    retry = MemoryTable()
    retry.items = crashing.items
    apply_impressions(batch(), retry)
    assert retry.items == clean.items


def test_shards_write_their_own_rows_and_readers_sum_them() -> None:
    table = MemoryTable()
    apply_impressions(batch("shardId-000000000000"), table)
    other = [Delivered(impression(100 + i, f"q{i}", "dune", "desert", 0, i == 0, 10 + i), "shardId-000000000001", 7 + i) for i in range(3)]
    apply_impressions(other, table)
    assert {k for k in table.items if k[0] == "title#dune"} == {title_key("dune", "shardId-000000000000"), title_key("dune", "shardId-000000000001")}
    stats = load_title_stats(table, ["dune", "never-shown"])
    assert stats["dune"].variants["desert"].to_list()[:2] == [5, 2]
    assert stats["never-shown"].impressions == 0


def test_serving_reads_the_members_context_and_logs_its_propensity() -> None:
    table = MemoryTable()
    apply_impressions(batch(), table)
    ctx = member_contexts(table, [("p1", "dune", 3), ("p2", "dune", 0), ("nobody", "dune", 1)])
    assert ctx == [Context(3, True, {"desert": 1, "face": 1}), Context(0, False, {}), Context(1, False, {})]
    choice = choose_variant(table, "p1", "dune", ["desert", "face", "night"], 3, np.random.default_rng(0))
    assert choice.propensity == choice.probabilities[choice.variant_id]
    assert sum(choice.probabilities.values()) == pytest.approx(1.0, abs=1e-12)


def test_member_state_is_bounded() -> None:
    table = MemoryTable()
    cfg = StoreConfig(ledger_size=3, max_titles=2)
    events = [Delivered(impression(i, "p1", f"t{i}", "v", 0, True, i), SHARD, SEQ0 + i) for i in range(6)]
    apply_impressions(events, table, cfg)
    row = table.items[member_key("p1")]
    assert sorted(row["titles"]) == ["t4", "t5"]
    assert [e.split(":")[0] for e in row["ledger"]] == [event_key(f"imp-{i}") for i in (3, 4, 5)]
    # An old record that left the ledger is recognized by the member's watermark: not re-counted.
    before = copy.deepcopy(table.items)
    report = apply_impressions(events[:1], table, cfg)
    assert (report.applied, report.replayed) == (0, 1)
    assert table.items == before
    assert features(0, True, 1) == (0, 0, 0, 1, 1, 0)
