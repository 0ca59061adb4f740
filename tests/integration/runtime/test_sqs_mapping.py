"""SQS -> Lambda: partial batch responses delete only the successes; failures come back after the
visibility timeout with a higher receive count, and maxReceiveCount moves them to the
dead-letter queue. Every message ends deleted after success or in the DLQ."""

from __future__ import annotations

import json
import uuid

import pytest
from streamsense_local.stack import InvocationRecord, LocalStack

# All runtime tests share one stack per test worker (see conftest).
pytestmark = pytest.mark.xdist_group("local-runtime")


def _calls(stack: LocalStack, function: str) -> list[InvocationRecord]:
    return [h for h in stack.history if h.function == function]


def _send(stack: LocalStack, bodies: list[dict]) -> list[str]:
    sqs = stack.client("sqs")
    return [sqs.send_message(QueueUrl=stack.queue_url("work"), MessageBody=json.dumps(b))["MessageId"] for b in bodies]


def test_partial_batch_response_visibility_timeout_and_dead_letter_queue(fresh: LocalStack) -> None:
    fresh.record_events = True
    t = uuid.uuid4().hex[:6]
    bodies = [{"id": f"{t}-{i}"} for i in range(5)]
    bodies[1]["fail_times"] = 1
    bodies[3]["fail_times"] = 99
    ids = _send(fresh, bodies)
    fresh.drain()
    calls = _calls(fresh, "sqsfn")
    assert [c.ids for c in calls] == [ids, [ids[1], ids[3]]]
    assert calls[0].response == {"batchItemFailures": [{"itemIdentifier": ids[3]}, {"itemIdentifier": ids[1]}]}
    assert calls[1].response == {"batchItemFailures": [{"itemIdentifier": ids[3]}]}
    assert calls[1].at - calls[0].at >= 30  # the queue's visibility timeout
    receive_counts = [[r["attributes"]["ApproximateReceiveCount"] for r in c.event["Records"]] for c in calls]
    assert receive_counts == [["1"] * 5, ["2", "2"]]
    # maxReceiveCount=2: the third receive moves record 3 to the DLQ instead of delivering it.
    assert [json.loads(b) for b in fresh.receive_all("work_dlq")] == [bodies[3]]
    assert fresh.receive_all("work") == []
    record = calls[0].event["Records"][0]
    assert set(record) == {
        "messageId", "receiptHandle", "body", "attributes", "messageAttributes", "md5OfBody",
        "eventSource", "eventSourceARN", "awsRegion",
    }
    assert (record["eventSource"], record["eventSourceARN"]) == (
        "aws:sqs", "arn:aws:sqs:us-east-1:123456789012:streamsense-local-work",
    )
    assert isinstance(record["body"], str) and json.loads(record["body"]) == bodies[0]
    assert set(record["attributes"]) == {"ApproximateReceiveCount", "SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp"}


def test_a_function_error_returns_the_whole_batch(fresh: LocalStack) -> None:
    t = uuid.uuid4().hex[:6]
    bodies = [{"id": f"{t}-ok"}, {"id": f"{t}-p", "poison": True}]
    ids = _send(fresh, bodies)
    fresh.drain()
    calls = _calls(fresh, "sqsfn")
    assert [(c.ids, c.ok) for c in calls] == [(ids, False), (ids, False)]
    assert sorted(b for b in fresh.receive_all("work_dlq")) == sorted(json.dumps(b) for b in bodies)
