"""qoe_hints against the local stack (moto server, Lambda's Kinesis semantics): the sample
telemetry produces segment items and hints a player can read, a replayed batch changes nothing,
a producer re-send counts once, and events put on the playback stream flow through the
event-source mapping."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from streamsense.qoe.hints import read_hint
from streamsense.qoe.segments import Segment
from streamsense.storage import DynamoTable
from streamsense_local.samples import Sample, run_sample
from streamsense_local.stack import LocalStack

from infra.system import SYSTEM

EVENTS = Path(__file__).resolve().parents[2] / "events"
SEQ0 = (
    49654283920018742934872003215498210357438729384723945410  # the samples' first sequence number
)
QOE_SYSTEM = SYSTEM.only("qoe-it", "qoe_hints")

pytestmark = pytest.mark.xdist_group("qoe_stack")


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack.start(QOE_SYSTEM) as s:
        yield s


@pytest.fixture
def fresh(stack: LocalStack) -> LocalStack:
    stack.reset()
    return stack


def _sample(name: str) -> Sample:
    return Sample("qoe_hints", EVENTS / "qoe_hints" / f"{name}.json")


def _items(stack: LocalStack) -> dict[tuple[str, str], dict[str, Any]]:
    return {(i["pk"], i["sk"]): i for i in stack.scan("qoe")}


def test_sample_telemetry_builds_segments_and_hints(fresh: LocalStack) -> None:
    run = run_sample(fresh, _sample("session-telemetry"))
    inv = run.invocation
    assert inv.ok and inv.response == {"batchItemFailures": []}
    assert inv.metrics["EventsApplied"] == 12 and inv.metrics["EventsSkipped"] == 1  # the stop
    assert inv.metrics["QoeSamplesApplied"] == 12
    items = _items(fresh)
    day = "day#2024-06-03#shardId-000000000000"
    seg = items[("seg#rnd#NO|cellular_3g|mobile", day)]
    assert (seg["sessions"], seg["heartbeats"], seg["seq"]) == (
        1,
        6,
        str(SEQ0 + 6 * 1000),
    )  # the 7th record
    assert ("seg#all#*", day) in items and ("seg#rnd#US|ethernet|tv", day) in items
    table = DynamoTable(fresh.physical("table", "qoe"), client=fresh.client("dynamodb"))
    hint = read_hint(table, Segment("NO", "cellular_3g", "mobile"))
    assert hint is not None and hint["segment"] == {
        "region": "NO",
        "network": "cellular_3g",
        "device": "mobile",
    }
    # 6 + 4 throughput samples are far below 200 anywhere: the prior is the coarsest data there is
    assert hint["throughput"]["level"] == "all" and hint["throughput"]["samples"] == 10
    # early samples (playhead < 10 s): 3 per session; harmonic mean ~ 0.69 Mbps -> lowest rung
    assert hint["startup"]["bitrate_kbps"] == 300 and hint["startup"]["samples"] == 6
    # ratios: 5 per NO heartbeat after the first, 3 for US
    assert hint["prediction"]["samples"] == 8
    # a segment never seen gets its network's hint
    unseen = read_hint(table, Segment("SE", "cellular_3g", "web"))
    assert unseen is not None and unseen["level"] == "n"


def test_a_replayed_batch_changes_nothing(fresh: LocalStack) -> None:
    sample = _sample("session-telemetry")
    run_sample(fresh, sample)
    before = _items(fresh)
    again = fresh.invoke("qoe_hints", sample.event())
    assert again.ok and again.response == {"batchItemFailures": []}
    assert again.metrics.get("QoeSamplesApplied", 0) == 0
    assert again.metrics["QoeDuplicatesSkipped"] == 12
    assert _items(fresh) == before


def test_a_producer_resend_counts_once(fresh: LocalStack) -> None:
    run = run_sample(fresh, _sample("producer-resend"))
    assert run.invocation.ok
    assert run.invocation.metrics["QoeDuplicatesSkipped"] == 2
    seg = _items(fresh)[("seg#rnd#NO|cellular_3g|mobile", "day#2024-06-03#shardId-000000000000")]
    assert seg["heartbeats"] == 6


def test_events_on_the_stream_reach_the_table(fresh: LocalStack) -> None:
    event = _sample("session-telemetry").event()
    import base64

    payloads = [json.loads(base64.b64decode(r["kinesis"]["data"])) for r in event["Records"]]
    fresh.put_events(payloads)
    fresh.drain()
    calls = [h for h in fresh.history if h.function == "qoe_hints"]
    assert calls and all(c.ok for c in calls)
    seg = _items(fresh)
    heartbeats = sum(
        i["heartbeats"] for (pk, _), i in seg.items() if pk == "seg#rnd#NO|cellular_3g|mobile"
    )
    assert heartbeats == 6
    assert fresh.receive_all("quarantine") == []
