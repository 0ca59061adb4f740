"""S3 ObjectCreated -> Lambda: an asynchronous invoke of AWS's exact notification record, retried
one and then two minutes later, given up to the on-failure destination (retries exhausted or
event too old); duplicates delivered twice when S3 sends twice; nothing lost."""

from __future__ import annotations

import uuid

import pytest
from runtime_system import failure_messages
from streamsense_local.stack import InvocationRecord, LocalStack

# All runtime tests share one stack per test worker (see conftest).
pytestmark = pytest.mark.xdist_group("local-runtime")


def _calls(stack: LocalStack, function: str) -> list[InvocationRecord]:
    return [h for h in stack.history if h.function == function]


def _put(stack: LocalStack, key: str, body: bytes = b"a,b\n1,2\n") -> dict:
    return stack.client("s3").put_object(Bucket=stack.physical("bucket", "drops"), Key=key, Body=body)  # type: ignore[no-any-return]


def test_notification_is_awss_record_with_url_encoded_key_and_filters_apply(fresh: LocalStack) -> None:
    fresh.record_events = True
    t = uuid.uuid4().hex[:6]
    put = _put(fresh, f"in/{t} my file=1.csv")
    _put(fresh, f"in/{t}.txt")  # wrong suffix
    _put(fresh, f"elsewhere/{t}.csv")  # wrong prefix
    fresh.drain()
    (call,) = _calls(fresh, "s3fn")
    assert call.ok and call.source == "s3:streamsense-local-drops"
    (record,) = call.event["Records"]
    assert list(record) == [
        "eventVersion", "eventSource", "awsRegion", "eventTime", "eventName",
        "userIdentity", "requestParameters", "responseElements", "s3",
    ]
    assert (record["eventVersion"], record["eventSource"], record["awsRegion"], record["eventName"]) == (
        "2.1", "aws:s3", "us-east-1", "ObjectCreated:Put",
    )
    s3 = record["s3"]
    assert s3["s3SchemaVersion"] == "1.0" and s3["configurationId"] == "s3fn-trigger-0"
    assert s3["bucket"]["name"] == "streamsense-local-drops"
    assert s3["bucket"]["arn"] == "arn:aws:s3:::streamsense-local-drops"
    obj = s3["object"]
    assert obj["key"] == f"in/{t}+my+file%3D1.csv"  # URL-encoded, '/' kept, as S3 sends it
    assert obj["size"] == 8 and obj["eTag"] == put["ETag"].strip('"')
    assert obj["versionId"] == put["VersionId"]  # the bucket is versioned
    assert len(obj["sequencer"]) == 18 and int(obj["sequencer"], 16) > 0
    assert call.response == {"key": f"in/{t} my file=1.csv", "attempt": 1, "records": 1}


def test_a_duplicated_notification_is_delivered_twice(fresh: LocalStack) -> None:
    fresh.record_events = True
    fresh.set_duplicate_s3_notifications(True)
    t = uuid.uuid4().hex[:6]
    _put(fresh, f"in/{t}-dup.csv")
    fresh.drain()
    calls = _calls(fresh, "s3fn")
    assert [c.ok for c in calls] == [True, True]
    assert calls[0].event == calls[1].event  # the same record, sequencer included
    assert [c.response["attempt"] for c in calls] == [1, 2]  # the handler saw it twice
    assert failure_messages(fresh) == []


def test_async_retries_one_then_two_minutes_apart_then_on_failure(fresh: LocalStack) -> None:
    fresh.record_events = True
    t = uuid.uuid4().hex[:6]
    poison, flaky, fine = f"in/{t}-poison.csv", f"in/{t}-flaky-1.csv", f"in/{t}-fine.csv"
    for key in (poison, flaky, fine):
        _put(fresh, key)
    fresh.drain()
    by_key: dict[str, list[InvocationRecord]] = {}
    for c in _calls(fresh, "s3fn"):
        by_key.setdefault(c.ids[0], []).append(c)
    assert {k: [c.ok for c in v] for k, v in by_key.items()} == {
        poison: [False, False, False],  # first attempt + MaximumRetryAttempts=2
        flaky: [False, True],
        fine: [True],
    }
    gaps = [round(b.at - a.at) for a, b in zip(by_key[poison], by_key[poison][1:], strict=False)]
    assert gaps == [60, 120]
    (msg,) = failure_messages(fresh)
    assert msg["version"] == "1.0"
    assert msg["requestContext"]["condition"] == "RetriesExhausted"
    assert msg["requestContext"]["approximateInvokeCount"] == 3
    assert msg["requestContext"]["functionArn"] == fresh.naming.function_arn("s3fn") + ":$LATEST"
    assert msg["requestPayload"] == by_key[poison][0].event
    assert msg["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"}
    assert (msg["responsePayload"]["errorType"], msg["responsePayload"]["errorMessage"]) == ("Poison", poison)
    # None lost: every object either ran successfully once or is named at the destination.
    succeeded = {k for k, v in by_key.items() if v[-1].ok}
    given_up = {msg["requestPayload"]["Records"][0]["s3"]["object"]["key"].replace("+", " ")}
    assert succeeded | given_up == {poison, flaky, fine} and not succeeded & given_up


def test_events_older_than_max_event_age_are_given_up(fresh: LocalStack) -> None:
    t = uuid.uuid4().hex[:6]
    key = f"aged/{t}-poison.csv"
    _put(fresh, key)
    fresh.drain()
    calls = _calls(fresh, "s3age")
    # max_event_age_s=90: attempts at 0 s and 60 s; the third would be at 180 s.
    assert [c.ok for c in calls] == [False, False]
    (msg,) = failure_messages(fresh)
    assert msg["requestContext"]["condition"] == "EventAgeExceeded"
    assert msg["requestContext"]["approximateInvokeCount"] == 2
    assert msg["requestPayload"]["Records"][0]["s3"]["object"]["key"] == key


def test_tick_fires_the_schedule_with_eventbridges_event(fresh: LocalStack) -> None:
    fresh.record_events = True
    request_id = fresh.tick("scheduled")
    fresh.drain()
    (call,) = _calls(fresh, "scheduled")
    assert call.ok and call.source == "schedule"
    event = call.event
    assert list(event) == ["version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"]
    assert (event["version"], event["detail-type"], event["source"], event["detail"]) == ("0", "Scheduled Event", "aws.events", {})
    assert (event["account"], event["region"]) == ("123456789012", "us-east-1")
    assert event["resources"] == ["arn:aws:events:us-east-1:123456789012:rule/streamsense-local-scheduled-schedule-0"]
    assert len(event["time"]) == 20 and event["time"].endswith("Z")
    assert request_id and event["id"]
    with pytest.raises(ValueError, match="no schedule trigger"):
        fresh.tick("s3fn")
