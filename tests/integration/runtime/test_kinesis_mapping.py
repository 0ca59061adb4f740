"""Kinesis -> Lambda as AWS runs it: checkpoints at the lowest reported failure, bisection of
failed batches, bounded retries, record age, the on-failure invocation record, per-shard order,
and no record lost: each is either delivered in a successful batch or named in the range of an
on-failure record."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections import defaultdict

import pytest
from runtime_system import failure_messages
from streamsense_local.clock import iso_millis
from streamsense_local.stack import InvocationRecord, LocalStack

# All runtime tests share one stack per test worker (see conftest).
pytestmark = pytest.mark.xdist_group("local-runtime")


def _put(stack: LocalStack, stream: str, bodies: list[dict], key: str = "pk") -> list[str]:
    """Put records; return their event ids ("shardId-...:seq") in order."""
    placed = stack.put_records(stream, [(json.dumps(b).encode(), key) for b in bodies])
    return [f"{shard}:{seq}" for shard, seq in placed]


def _calls(stack: LocalStack, function: str) -> list[InvocationRecord]:
    return [h for h in stack.history if h.function == function]


def _delivered(calls: list[InvocationRecord]) -> list[str]:
    """Records of successful batches, and the records before the checkpoint of partial ones."""
    out: list[str] = []
    for c in calls:
        if not c.ok:
            continue
        failed = [f["itemIdentifier"] for f in (c.response or {}).get("batchItemFailures", [])]
        seqs = [i.split(":")[1] for i in c.ids]
        cut = min((seqs.index(f) for f in failed), default=len(seqs))
        out.extend(c.ids[:cut])
    return out


def _failed_ranges(messages: list[dict], put_ids: list[str]) -> list[str]:
    """Expand each on-failure record's shard + sequence range into the event ids it names."""
    out: list[str] = []
    for m in messages:
        info = m["KinesisBatchInfo"]
        lo, hi = int(info["startSequenceNumber"]), int(info["endSequenceNumber"])
        named = [i for i in put_ids if i.split(":")[0] == info["shardId"] and lo <= int(i.split(":")[1]) <= hi]
        assert len(named) == info["batchSize"]
        out.extend(named)
    return out


def _tag() -> str:
    return uuid.uuid4().hex[:8]


def test_partial_failure_retries_from_lowest_failed_record_never_before(fresh: LocalStack) -> None:
    t = _tag()
    bodies = [{"id": f"{t}-{i}"} for i in range(15)]
    bodies[6]["fail_times"] = 2  # reported twice (the handler lists failures highest first)
    bodies[3]["fail_times"] = 1
    ids = _put(fresh, "s_partial", bodies)
    fresh.drain()
    calls = _calls(fresh, "partial")
    assert [c.ids for c in calls] == [ids[0:10], ids[3:10], ids[6:10], ids[10:15]]
    assert [c.ok for c in calls] == [True] * 4
    assert sorted(_delivered(calls)) == sorted(ids)
    assert len(_delivered(calls)) == len(ids)  # each exactly once
    assert failure_messages(fresh) == []


def test_partial_failures_exhaust_retries_then_on_failure_range(fresh: LocalStack) -> None:
    t = _tag()
    bodies = [{"id": f"{t}-{i}"} for i in range(12)]
    bodies[4]["fail_times"] = 99
    ids = _put(fresh, "s_partial", bodies)
    fresh.drain()
    calls = _calls(fresh, "partial")
    # max_retries=3: the first attempt, then three retries from record 4, then give up; records
    # 10 and 11 (the next batch) follow.
    assert [c.ids for c in calls] == [ids[0:10], ids[4:10], ids[4:10], ids[4:10], ids[10:12]]
    (msg,) = failure_messages(fresh)
    assert msg["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert msg["requestContext"]["approximateInvokeCount"] == 4
    assert msg["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST"}  # no function error
    info = msg["KinesisBatchInfo"]
    assert (info["shardId"], info["batchSize"]) == ("shardId-000000000000", 6)
    assert (info["startSequenceNumber"], info["endSequenceNumber"]) == (ids[4].split(":")[1], ids[9].split(":")[1])
    delivered, failed = _delivered(calls), _failed_ranges([msg], ids)
    assert sorted(delivered + failed) == sorted(ids) and not set(delivered) & set(failed)


def test_bisect_isolates_the_poison_record(fresh: LocalStack) -> None:
    t = _tag()
    bodies = [{"id": f"{t}-{i}"} for i in range(8)]
    bodies[5]["poison"] = True
    ids = _put(fresh, "s_bisect", bodies)
    fresh.drain()
    calls = _calls(fresh, "bisect")
    assert [(c.ids, c.ok) for c in calls] == [
        (ids[0:8], False),
        (ids[0:4], True),
        (ids[4:8], False),
        (ids[4:6], False),
        (ids[4:5], True),
        (ids[5:6], False),  # the poison alone: first try and max_retries=2 retries
        (ids[5:6], False),
        (ids[5:6], False),
        (ids[6:8], True),
    ]
    assert {c.error_type for c in calls if not c.ok} == {"Poison"}
    (msg,) = failure_messages(fresh)
    info = msg["KinesisBatchInfo"]
    seq5 = ids[5].split(":")[1]
    assert (info["startSequenceNumber"], info["endSequenceNumber"], info["batchSize"]) == (seq5, seq5, 1)
    assert msg["requestContext"]["condition"] == "RetryAttemptsExhausted"
    # Every invocation that carried the poison record: 0-7, 4-7, 4-5 and three alone.
    assert msg["requestContext"]["approximateInvokeCount"] == 6
    assert msg["responseContext"]["functionError"] == "Unhandled"
    delivered, failed = _delivered(calls), _failed_ranges([msg], ids)
    assert sorted(delivered + failed) == sorted(ids) and failed == [ids[5]]


def test_retries_stop_at_the_limit_and_the_on_failure_record_is_awss_shape(fresh: LocalStack) -> None:
    t = _tag()
    bodies = [{"id": f"{t}-{i}"} for i in range(7)]
    bodies[2]["poison"] = True
    ids = _put(fresh, "s_exhaust", bodies)
    started = fresh.clock.now()
    fresh.drain()
    calls = _calls(fresh, "exhaust")
    assert [(c.ids, c.ok) for c in calls] == [(ids[0:5], False)] * 3 + [(ids[5:7], True)]
    assert fresh.clock.now() - started >= 1 + 2  # the backoff before retries 1 and 2 passed
    (msg,) = failure_messages(fresh)
    info = msg["KinesisBatchInfo"]
    arrivals = {r["SequenceNumber"]: r["ApproximateArrivalTimestamp"].timestamp() for r in _read_shard(fresh, "s_exhaust")}
    first, last = ids[0].split(":")[1], ids[4].split(":")[1]
    assert msg == {
        "requestContext": {
            "requestId": msg["requestContext"]["requestId"],
            "functionArn": fresh.naming.function_arn("exhaust"),
            "condition": "RetryAttemptsExhausted",
            "approximateInvokeCount": 3,
        },
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "version": "1.0",
        "timestamp": msg["timestamp"],
        "KinesisBatchInfo": {
            "shardId": "shardId-000000000000",
            "startSequenceNumber": first,
            "endSequenceNumber": last,
            "approximateArrivalOfFirstRecord": iso_millis(arrivals[first]),
            "approximateArrivalOfLastRecord": iso_millis(arrivals[last]),
            "batchSize": 5,
            "streamArn": fresh.naming.arn("stream", "s_exhaust"),
        },
    }
    assert info["streamArn"] == "arn:aws:kinesis:us-east-1:123456789012:stream/streamsense-local-s_exhaust"
    delivered, failed = _delivered(calls), _failed_ranges([msg], ids)
    assert sorted(delivered + failed) == sorted(ids) and not set(delivered) & set(failed)


def _read_shard(stack: LocalStack, stream: str) -> list[dict]:
    k = stack.client("kinesis")
    name = stack.physical("stream", stream)
    it = k.get_shard_iterator(StreamName=name, ShardId="shardId-000000000000", ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    return k.get_records(ShardIterator=it, Limit=10000)["Records"]


def test_records_older_than_max_age_go_to_the_destination_without_an_invoke(fresh: LocalStack) -> None:
    t = _tag()
    old = _put(fresh, "s_aged", [{"id": f"{t}-old-{i}"} for i in range(3)])
    fresh.clock.advance(61)  # max_record_age_s=60
    new = _put(fresh, "s_aged", [{"id": f"{t}-new-{i}"} for i in range(2)])
    fresh.drain()
    calls = _calls(fresh, "aged")
    assert [(c.ids, c.ok) for c in calls] == [(new, True)]
    (msg,) = failure_messages(fresh)
    assert msg["requestContext"]["condition"] == "RecordAgeExceeded"
    assert msg["requestContext"]["approximateInvokeCount"] == 0
    assert _failed_ranges([msg], old + new) == old


def test_infinite_retries_end_when_the_records_age_out(fresh: LocalStack) -> None:
    t = _tag()
    ids = _put(fresh, "s_aged", [{"id": f"{t}-p", "poison": True}, {"id": f"{t}-ok"}])
    fresh.drain()
    calls = _calls(fresh, "aged")
    # max_retries=-1: invoked at about 0, 1, 3, 7, 15 and 31 s (backoff 1, 2, 4, 8, 16, 30 s);
    # at 61 s the records are older than 60 s and are given up before a 7th invoke.
    assert len(calls) == 6 and all(c.ids == ids and not c.ok for c in calls)
    (msg,) = failure_messages(fresh)
    assert msg["requestContext"]["condition"] == "RecordAgeExceeded"
    assert msg["requestContext"]["approximateInvokeCount"] == 6
    assert _failed_ranges([msg], ids) == ids


def test_per_shard_order_and_every_record_exactly_once(fresh: LocalStack) -> None:
    t = _tag()
    bodies = [{"id": f"{t}-{i}", "key": f"acct-{i % 40}"} for i in range(400)]
    placed = fresh.put_records("s_wide", [(json.dumps(b).encode(), b["key"]) for b in bodies])
    fresh.drain()
    calls = _calls(fresh, "ordered")
    assert {shard for shard, _ in placed} == {f"shardId-00000000000{i}" for i in range(4)}
    per_shard: dict[str, list[int]] = defaultdict(list)
    for c in calls:
        assert c.ok and 1 <= len(c.ids) <= 7
        shards = {i.split(":")[0] for i in c.ids}
        assert len(shards) == 1  # a batch never mixes shards
        per_shard[shards.pop()].extend(int(i.split(":")[1]) for i in c.ids)
    for shard, seqs in per_shard.items():
        expected = sorted(int(seq) for s, seq in placed if s == shard)
        assert seqs == expected, shard
    # Per partition key, delivery order is put order.
    id_of = {f"{s}:{q}": b["id"] for (s, q), b in zip(placed, bodies, strict=True)}
    seen_by_key: dict[str, list[str]] = defaultdict(list)
    for c in calls:
        for i in c.ids:
            seen_by_key[f"acct-{int(id_of[i].split('-')[-1]) % 40}"].append(id_of[i])
    for key, seen in seen_by_key.items():
        assert seen == [b["id"] for b in bodies if b["key"] == key]


def _event(kind: str, n: int) -> dict:
    base = {"version": 1, "event_id": f"e-{n}", "occurred_at": "2024-01-01T00:00:00Z", "account_id": f"acct-{n}"}
    if kind == "payment":
        return {**base, "type": "payment", "payload": {"card_number": "4111111111111111", "merchant_id": "m1", "amount": 12.5}}
    device = {"device_id": f"d{n}", "device_type": "tv"}
    network = {"ip": "203.0.113.9", "asn": 64500, "country": "US", "lat": 40.7, "lon": -74.0}
    return {**base, "type": "login", "payload": {"email": f"u{n}@example.com", "success": True, "device": device, "network": network}}


def test_pipeline_metrics_and_quarantine_are_counted_per_function(fresh: LocalStack) -> None:
    good = [_event("payment", 1), _event("login", 2), _event("payment", 3)]
    bodies = [json.dumps(e).encode() for e in good] + [b"{not json", json.dumps({"type": "teleport", "version": 1}).encode()]
    fresh.put_records("s_pipeline", [(b, f"k{i}") for i, b in enumerate(bodies)])
    # put_events routes by type: payments and logins go to the activity stream.
    assert fresh.put_events([_event("payment", 4), _event("login", 5)]) == {"activity": 2}
    fresh.drain()
    row = next(r for r in fresh.summary_rows() if r["function"] == "pipeline")
    assert (row["invocations"], row["errors"], row["records_in"]) == (2, 0, 7)
    assert (row["applied"], row["quarantined"], row["skipped"], row["retried"], row["to_on_failure"]) == (5, 2, 0, 0, 0)
    reasons = sorted(json.loads(b)["reason"] for b in fresh.receive_all("quarantine"))
    assert reasons == ["malformed_json", "unknown_type"]
    log = (fresh.workdir / "logs" / "pipeline.log").read_text()
    assert log.count("REPORT RequestId:") == 2 and "Init Duration:" in log


def test_batching_window_is_honoured_on_the_wall_clock(fresh: LocalStack) -> None:
    t = _tag()
    stop = threading.Event()
    runner = threading.Thread(target=fresh.run_forever, args=(stop,), kwargs={"poll_s": 0.1})
    runner.start()
    try:
        put_at = time.monotonic()
        ids = _put(fresh, "s_window", [{"id": f"{t}-{i}"} for i in range(3)])
        while not _calls(fresh, "windowed") and time.monotonic() - put_at < 10:
            time.sleep(0.05)
        waited = time.monotonic() - put_at
    finally:
        stop.set()
        runner.join()
    calls = _calls(fresh, "windowed")
    assert [c.ids for c in calls] == [ids]  # one batch of 3, gathered for the 1 s window
    assert waited >= 1.0


def test_kinesis_event_is_awss_shape(fresh: LocalStack) -> None:
    ids = _put(fresh, "s_wide", [{"id": "shape"}], key="k")
    mapping = next(m for m in fresh.kinesis_mappings if m.function == "ordered")
    sh = next(s for s in mapping.shards if s.shard_id == ids[0].split(":")[0])
    mapping._fill(sh)
    from streamsense_local.shapes import kinesis_event

    record = kinesis_event(list(sh.buffer), mapping.stream_arn, "us-east-1", mapping.role_arn)["Records"][0]
    assert set(record) == {"kinesis", "eventSource", "eventVersion", "eventID", "eventName", "invokeIdentityArn", "awsRegion", "eventSourceARN"}
    assert record["eventID"] == ids[0]
    assert (record["eventSource"], record["eventName"], record["eventVersion"]) == ("aws:kinesis", "aws:kinesis:record", "1.0")
    assert record["invokeIdentityArn"] == "arn:aws:iam::123456789012:role/streamsense-local-ordered-role"
    assert record["kinesis"]["partitionKey"] == "k"
    assert record["kinesis"]["kinesisSchemaVersion"] == "1.0"
    assert json.loads(base64.b64decode(record["kinesis"]["data"])) == {"id": "shape"}
    assert isinstance(record["kinesis"]["approximateArrivalTimestamp"], float)


def test_latest_starting_position_skips_what_was_there_before_the_mapping(fresh: LocalStack) -> None:
    t = _tag()
    _put(fresh, "s_latest", [{"id": f"{t}-before-{i}"} for i in range(3)])
    fresh._build_mappings()  # the mapping is (re)created now: LATEST is after those three
    after = _put(fresh, "s_latest", [{"id": f"{t}-after-{i}"} for i in range(2)])
    fresh.drain()
    assert [c.ids for c in _calls(fresh, "latest")] == [after]
