"""cache_hints against the local stack (moto server, Lambda's Kinesis semantics): plays become
per-region counts, a replayed batch and a producer re-send change nothing, the fill-window tick
publishes every site's hints to DynamoDB and S3 (and a second tick in the same window is a
no-op), and plays put on the playback stream flow through the event-source mapping."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from streamsense.caching.aggregate import window_plays
from streamsense.caching.store import latest_hints
from streamsense.storage import DynamoTable
from streamsense_local.samples import Sample, run_sample
from streamsense_local.stack import LocalStack

from infra.system import SYSTEM

EVENTS = Path(__file__).resolve().parents[2] / "events" / "cache_hints"
CACHE_SYSTEM = SYSTEM.only("cache-it", "cache_hints")

pytestmark = pytest.mark.xdist_group("cache_stack")


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack.start(CACHE_SYSTEM) as s:
        yield s


@pytest.fixture
def fresh(stack: LocalStack) -> LocalStack:
    stack.reset()
    return stack


def _sample(name: str) -> Sample:
    return Sample("cache_hints", EVENTS / f"{name}.json")


def _table(stack: LocalStack) -> DynamoTable:
    return DynamoTable(stack.physical("table", "cache"), client=stack.client("dynamodb"))


def _items(stack: LocalStack) -> dict[tuple[str, str], dict[str, Any]]:
    return {(i["pk"], i["sk"]): i for i in stack.scan("cache")}


def test_plays_become_counts_and_a_replay_changes_nothing(fresh: LocalStack) -> None:
    run = run_sample(fresh, _sample("plays"))
    inv = run.invocation
    assert inv.ok and inv.response == {"batchItemFailures": []}
    assert inv.metrics["PlaysApplied"] == 5 and inv.metrics["EventsSkipped"] == 1  # the heartbeat
    table = _table(fresh)
    assert window_plays(table, "DE", "2024-06-03T06:00Z") == {"t-dark-s1": 2, "t-babylon": 1}
    assert window_plays(table, "FR", "2024-06-03T06:00Z") == {"t-lupin-p3": 1}
    before = _items(fresh)
    again = fresh.invoke("cache_hints", _sample("plays").event())
    assert again.ok and again.response == {"batchItemFailures": []}
    assert again.metrics.get("PlaysApplied", 0) == 0 and again.metrics["PlaysReplayedSkipped"] == 5
    assert _items(fresh) == before


def test_a_producer_resend_counts_once(fresh: LocalStack) -> None:
    run = run_sample(fresh, _sample("producer-resend"))
    assert run.invocation.ok
    assert run.invocation.metrics["PlaysApplied"] == 1 and run.invocation.metrics["PlaysDuplicatesSkipped"] == 1
    assert window_plays(_table(fresh), "DE", "2024-06-03T06:00Z") == {"t-dark-s1": 1}


def test_the_boundary_tick_publishes_hints_to_the_table_and_the_bucket(fresh: LocalStack) -> None:
    sample = _sample("fill-window-boundary")
    run = run_sample(fresh, sample)
    assert run.invocation.ok, run.invocation.response
    assert run.invocation.response == {"window": "2024-06-03T12:00Z", "sites": 2, "skipped": False, "entries": 4}
    window, de = latest_hints(_table(fresh), "fra-1")
    assert window == "2024-06-03T12:00Z"
    assert [e.title_id for e in de] == ["t-dark-s1", "t-babylon", "t-lupin-p3"]
    assert sum(e.bytes for e in de) <= int(12_000_000_000 * 0.9)
    s3 = fresh.client("s3")
    bucket = fresh.physical("bucket", "hints")
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))
    assert keys == ["hints/fra-1/2024-06-03T12:00Z.json", "hints/vie-1/2024-06-03T12:00Z.json"]
    doc = json.loads(s3.get_object(Bucket=bucket, Key=keys[0])["Body"].read())
    assert [e["title_id"] for e in doc["entries"]] == [e.title_id for e in de]
    assert all(e["reason"] in {"own", "trend", "global", "calendar"} for e in doc["entries"])
    # EventBridge delivers at least once: the same tick again publishes nothing new.
    before = _items(fresh)
    again = fresh.invoke("cache_hints", sample.event())
    assert again.ok and again.response["skipped"] is True
    assert _items(fresh) == before


def test_plays_on_the_stream_reach_the_table(fresh: LocalStack) -> None:
    event = _sample("plays").event()
    payloads = [json.loads(base64.b64decode(r["kinesis"]["data"])) for r in event["Records"]]
    fresh.put_events(payloads)
    fresh.drain()
    calls = [h for h in fresh.history if h.function == "cache_hints"]
    assert calls and all(c.ok for c in calls)
    table = _table(fresh)
    assert window_plays(table, "DE", "2024-06-03T06:00Z") == {"t-dark-s1": 2, "t-babylon": 1}
    assert window_plays(table, "AT", "2024-06-03T06:00Z") == {"t-dark-s1": 1}
    assert fresh.receive_all("quarantine") == []
