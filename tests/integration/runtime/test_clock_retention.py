"""SQS retention on the runtime clock: a message that outlives its queue's retention is deleted,
as SQS does, instead of blocking the queue (moto stops a receive at the first expired message)."""

from __future__ import annotations

from streamsense_local.stack import LocalStack


def test_s3_drop_after_weeks_of_runtime_clock_is_delivered() -> None:
    with LocalStack.start(record_history=True) as stack:
        stack.clock.advance(40 * 86400)  # the s3:TestEvent of provisioning is now past retention
        stack.put_object("exports", "fraud-labels/late.csv", b"not,a,label,export\n")
        stack.drain(timeout_s=120)
        delivered = [h for h in stack.history if h.function == "fraud_trainer"]
        assert [h.ids for h in delivered] == [["fraud-labels/late.csv"]]
