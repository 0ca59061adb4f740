"""content_bandit against the local stack (moto server, Lambda's Kinesis semantics): the sample
events in events/content_bandit/, replay, producer duplicates and quarantine, with the table
compared item by item."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from streamsense.content.features import features
from streamsense.content.model import TitleStats
from streamsense.content.store import Delivered, apply_impressions, title_rows
from streamsense.events import Impression, parse_event
from streamsense.storage import MemoryTable
from streamsense_local.stack import LocalStack

from infra.system import SYSTEM, System

EVENTS = Path(__file__).resolve().parents[2] / "events" / "content_bandit"
FUNCTION = SYSTEM.function("content_bandit")
CONTENT_SYSTEM = System(
    name="content-it",
    streams=tuple(s for s in SYSTEM.streams if s.name == "playback"),
    tables=tuple(t for t in SYSTEM.tables if t.name == "content"),
    buckets=(),
    queues=tuple(q for q in SYSTEM.queues if q.name in {"quarantine", "failures"}),
    functions=(FUNCTION,),
)

pytestmark = pytest.mark.xdist_group("content_bandit_stack")


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack.start(CONTENT_SYSTEM) as s:
        yield s


@pytest.fixture
def fresh(stack: LocalStack) -> LocalStack:
    stack.reset()
    return stack


def _event(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())  # type: ignore[no-any-return]


def _table(stack: LocalStack) -> dict[tuple[str, str], dict]:
    return {(i["pk"], i["sk"]): i for i in stack.scan("content")}


def test_the_trigger_is_single_writer_per_shard() -> None:
    # Exactly-once relies on one invocation per shard at a time (per-shard rows and watermarks).
    (trigger,) = FUNCTION.triggers
    assert trigger.stream == "playback" and trigger.parallelization_factor == 1  # type: ignore[union-attr]
    assert "impression" in SYSTEM.stream_for("impression").event_types


def test_sample_batch_applies_exactly_and_a_replay_changes_nothing(fresh: LocalStack) -> None:
    event = _event("impressions.json")
    inv = fresh.invoke("content_bandit", event)
    assert inv.ok, inv.error
    assert inv.response == {"batchItemFailures": []}
    assert inv.metrics["EventsApplied"] == 5 and inv.metrics["EventsSkipped"] == 1  # the playback_stop
    assert (inv.metrics["ImpressionsApplied"], inv.metrics["Plays"]) == (5, 3)

    items = _table(fresh)
    shard = "shardId-000000000000"
    assert sorted(items) == [
        ("member#prof-1a", "content"),
        ("member#prof-2a", "content"),
        ("title#title-dune", f"stats#{shard}"),
        ("title#title-up", f"stats#{shard}"),
    ]
    dune = TitleStats.from_dict(items[("title#title-dune", f"stats#{shard}")]["variants"])
    desert, face = dune.variants["art-desert"], dune.variants["art-face"]
    assert (desert.n, desert.plays, desert.z.tolist()) == (2, 1, [0, 1, 0, 1, 1, 0])
    assert (face.n, face.plays, face.z.tolist(), face.zr.tolist()) == (2, 1, [1, 0, 1, 1, 0, 0], [0, 0, 1, 1, 0, 0])
    assert items[("member#prof-1a", "content")]["titles"] == {"title-dune": {"v": {"art-desert": 1, "art-face": 1}, "at": 1733227680}}
    assert items[("member#prof-1a", "content")]["expires_at"] == 1733227680 + 90 * 86400

    again = fresh.invoke("content_bandit", event)
    assert again.ok and again.response == {"batchItemFailures": []}
    assert again.metrics.get("ImpressionsApplied", 0) == 0 and again.metrics["ImpressionsReplayed"] == 5
    assert _table(fresh) == items
    assert fresh.receive_all("quarantine") == []


def test_a_producer_duplicate_counts_once(fresh: LocalStack) -> None:
    inv = fresh.invoke("content_bandit", _event("impression-duplicate.json"))
    assert inv.ok and inv.response == {"batchItemFailures": []}
    assert (inv.metrics["ImpressionsApplied"], inv.metrics["ImpressionsDuplicate"]) == (1, 1)
    stats = title_rows(_table(fresh))["title-dune"]
    assert stats.variants["art-desert"].to_list()[:2] == [1, 1]


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("bad-malformed-json.json", "malformed_json"),
        ("bad-unknown-type.json", "unknown_type"),
        ("bad-invalid-fields--missing-propensity.json", "invalid_fields"),
        ("bad-invalid-fields--zero-propensity.json", "invalid_fields"),
        ("bad-oversized.json", "oversized"),
        ("bad-undecodable--not-base64.json", "undecodable"),
    ],
)
def test_each_bad_sample_is_quarantined_with_its_reason(fresh: LocalStack, name: str, reason: str) -> None:
    inv = fresh.invoke("content_bandit", _event(name))
    assert inv.ok and inv.response == {"batchItemFailures": []}
    messages = [json.loads(m) for m in fresh.receive_all("quarantine")]
    assert [m["reason"] for m in messages] == [reason]
    assert messages[0]["function"] == "content_bandit" and messages[0]["source"]["shard"] == "shardId-000000000000"
    assert _table(fresh) == {}


def test_a_mixed_batch_applies_the_good_and_quarantines_the_rest(fresh: LocalStack) -> None:
    inv = fresh.invoke("content_bandit", _event("mixed-good-and-bad.json"))
    assert inv.ok and inv.response == {"batchItemFailures": []}
    reasons = sorted(json.loads(m)["reason"] for m in fresh.receive_all("quarantine"))
    assert reasons == ["invalid_fields", "invalid_fields", "malformed_json", "oversized", "unknown_type"]
    assert reasons == sorted(json.loads((EVENTS / "mixed-good-and-bad.expect.json").read_text())["quarantine"])
    assert title_rows(_table(fresh))["title-up"].variants["trailer-long"].to_list()[:2] == [1, 1]


def _impressions(n: int, seed: int) -> list[dict]:
    """Impressions of 3 titles x 3 variants for 30 members: members who played a variant before
    play it again more often (so the context matters), in time order."""
    rng = np.random.default_rng(seed)
    start = datetime(2024, 12, 3, tzinfo=UTC)
    played: dict[tuple[int, int], set[int]] = {}
    out = []
    for i in range(n):
        member, title, variant = int(rng.integers(30)), int(rng.integers(3)), int(rng.integers(3))
        rate = 0.5 if variant in played.get((member, title), set()) else 0.1
        hit = bool(rng.random() < rate)
        if hit:
            played.setdefault((member, title), set()).add(variant)
        out.append(
            {
                "type": "impression",
                "version": 1,
                "event_id": f"it-{seed}-{i}",
                "occurred_at": (start + timedelta(seconds=7 * i)).isoformat().replace("+00:00", "Z"),
                "account_id": f"acc-{member}",
                "payload": {"profile_id": f"prof-{member}", "title_id": f"t{title}", "variant_id": f"v{variant}", "position": int(rng.integers(5)), "propensity": 1 / 3, "played": hit},
            }
        )
    return out


def test_stream_replay_through_two_shards_matches_one_ordered_pass(fresh: LocalStack) -> None:
    events = _impressions(400, seed=5)
    assert fresh.put_events(events) == {"playback": 400}
    fresh.drain()
    assert fresh.receive_all("quarantine") == [] and fresh.receive_all("failures") == []
    items = _table(fresh)
    shards = {sk for pk, sk in items if pk.startswith("title#")}
    assert len(shards) == 2  # both shards of the playback stream wrote their own rows

    # The same impressions applied in one ordered pass (per-member order is all that matters).
    reference = MemoryTable()
    parsed = [parse_event(json.dumps(e)) for e in events]
    apply_impressions([Delivered(e, "one", i) for i, e in enumerate(parsed) if isinstance(e, Impression)], reference)
    expected = title_rows(reference.items)
    assert title_rows(items) == expected
    assert sum(s.impressions for s in expected.values()) == 400
    # Engaged members with affinity were seen: the affinity feature carries data.
    assert sum(int(s.zz[4, 4]) for t in expected.values() for s in t.variants.values()) > 10
    assert features(0, True, 1)[4] == 1

    # The producer sends the whole day again (new sequence numbers): nothing changes.
    fresh.put_events(events)
    fresh.drain()
    assert _table(fresh) == items
    stats = fresh.stats["content_bandit"].metrics
    assert stats["ImpressionsApplied"] == 400 and stats["ImpressionsDuplicate"] == 400


def test_a_known_members_context_is_read_from_the_table(fresh: LocalStack) -> None:
    from streamsense.storage import DynamoTable

    setup = json.loads((EVENTS / "engaged-member.setup" / "tables" / "content.json").read_text())
    DynamoTable(fresh.physical("table", "content"), client=fresh.client("dynamodb")).put_many(setup)
    inv = fresh.invoke("content_bandit", _event("engaged-member.json"))
    assert inv.ok and inv.response == {"batchItemFailures": []}
    items = _table(fresh)
    face = title_rows(items)["title-dune"].variants["art-face"]
    # Slot 1, has played Dune, played art-face twice before: features (1, 0, 0, 1, 1, 1), played.
    assert (face.n, face.plays, face.z.tolist(), face.zr.tolist()) == (1, 1, [1, 0, 0, 1, 1, 1], [1, 0, 0, 1, 1, 1])
    assert items[("member#prof-7a", "content")]["titles"]["title-dune"]["v"] == {"art-face": 3}
