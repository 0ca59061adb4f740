"""A test-only System wired to the fixture handlers in fixtures/, built with the same dataclasses
as infra.system.SYSTEM (each test function's folder is a link to the fixture it runs)."""

from __future__ import annotations

import json
from pathlib import Path

from streamsense_local.stack import LocalStack

from infra.system import (
    Access,
    Bucket,
    Function,
    KinesisTrigger,
    Queue,
    S3Trigger,
    ScheduleTrigger,
    SqsTrigger,
    Stream,
    System,
    Table,
)

FIXTURES = Path(__file__).parent / "fixtures"
_Q = Access("quarantine", "write")


def _stream(name: str, shards: int = 1) -> Stream:
    return Stream(name, f"test stream {name}", frozenset(), shards=shards)


TEST_SYSTEM = System(
    name="runtime-test",
    streams=(
        _stream("s_partial"),
        _stream("s_bisect"),
        _stream("s_exhaust"),
        _stream("s_aged"),
        _stream("s_wide", shards=4),
        _stream("s_pipeline"),
        _stream("s_window"),
        _stream("s_latest"),
        Stream("activity", "events by type", frozenset({"signup", "login", "account_change", "payment", "label"})),
    ),
    tables=(Table("state", "the trespasser's own table"), Table("secrets", "not declared by anyone")),
    buckets=(Bucket("drops", "S3 triggers and prefix-scoped access"),),
    queues=(
        Queue("quarantine", "bad input"),
        Queue("failures", "on-failure destination"),
        Queue("work", "SQS trigger", visibility_timeout_s=30, dead_letter_queue="work_dlq", max_receive_count=2),
        Queue("work_dlq", "dead letters of work"),
    ),
    functions=(
        Function(
            "partial",
            "fails record k by batch item failure",
            triggers=(KinesisTrigger("s_partial", batch_size=10, batching_window_s=0, bisect_on_error=False, max_retries=3),),
            access=(_Q,),
            layers=("shared",),
        ),
        Function(
            "bisect",
            "raises on a poison record; bisects",
            triggers=(KinesisTrigger("s_bisect", batch_size=8, batching_window_s=0, bisect_on_error=True, max_retries=2),),
            access=(_Q,),
            layers=("shared",),
        ),
        Function(
            "exhaust",
            "raises on a poison record; no bisect",
            triggers=(KinesisTrigger("s_exhaust", batch_size=5, batching_window_s=0, bisect_on_error=False, max_retries=2),),
            access=(_Q,),
            layers=("shared",),
        ),
        Function(
            "aged",
            "infinite retries bounded by record age",
            triggers=(
                KinesisTrigger("s_aged", batch_size=10, batching_window_s=0, bisect_on_error=False, max_retries=-1, max_record_age_s=60),
            ),
            access=(_Q,),
            layers=("shared",),
        ),
        Function(
            "ordered",
            "no-op over a 4-shard stream",
            triggers=(KinesisTrigger("s_wide", batch_size=7, batching_window_s=0),),
            access=(_Q,),
            layers=("shared",),
        ),
        Function(
            "pipeline",
            "streamsense.pipeline with quarantine and EMF metrics",
            triggers=(KinesisTrigger("s_pipeline", batch_size=50, batching_window_s=0), KinesisTrigger("activity", batch_size=100)),
            access=(_Q,),
            layers=("shared",),
        ),
        Function(
            "windowed",
            "no-op with a 1 s batching window",
            triggers=(KinesisTrigger("s_window", batch_size=100, batching_window_s=1),),
            access=(_Q,),
            layers=("shared",),
        ),
        Function(
            "latest",
            "starts at LATEST",
            triggers=(KinesisTrigger("s_latest", batch_size=10, batching_window_s=0, starting_position="LATEST"),),
            access=(_Q,),
            layers=("shared",),
        ),
        Function(
            "scheduled",
            "an EventBridge schedule",
            triggers=(ScheduleTrigger("rate(5 minutes)", "test schedule"),),
            access=(_Q,),
            layers=("shared",),
        ),
        Function(
            "s3fn",
            "asynchronous S3 invokes with retries",
            triggers=(S3Trigger("drops", prefix="in/", suffix=".csv", max_retries=2, on_failure="failures"),),
            access=(Access("drops", "read", prefix="in/"), _Q),
            layers=("shared",),
        ),
        Function(
            "s3age",
            "asynchronous S3 invokes bounded by event age",
            triggers=(S3Trigger("drops", prefix="aged/", max_retries=2, max_event_age_s=90, on_failure="failures"),),
            access=(Access("drops", "read", prefix="aged/"), _Q),
            layers=("shared",),
        ),
        Function(
            "sqsfn",
            "SQS partial batch responses",
            triggers=(SqsTrigger("work", batch_size=5),),
            access=(_Q,),
            layers=("shared",),
        ),
        Function(
            "envdump",
            "reports its environment",
            triggers=(),
            access=(Access("state", "readwrite"), _Q),
            environment={"FEATURE_FLAG": "on"},
            memory_mb=256,
            timeout_s=30,
            layers=("shared",),
        ),
        Function(
            "trespass",
            "tries undeclared access",
            triggers=(),
            access=(Access("state", "readwrite"), Access("drops", "readwrite", prefix="in/"), _Q),
            layers=("shared",),
        ),
        Function("sleepy", "times out", triggers=(), access=(_Q,), timeout_s=1, layers=("shared",)),
        Function("broken", "cannot import", triggers=(), access=(_Q,), layers=("shared",)),
    ),
)

#: Which fixture handler each test function runs (a function's folder is its name).
CODE = {
    "partial": "flaky",
    "bisect": "flaky",
    "exhaust": "flaky",
    "aged": "flaky",
    "ordered": "noop",
    "pipeline": "pipeline",
    "windowed": "noop",
    "latest": "noop",
    "scheduled": "noop",
    "s3fn": "flaky",
    "s3age": "flaky",
    "sqsfn": "flaky",
    "envdump": "envdump",
    "trespass": "trespass",
    "sleepy": "flaky",
    "broken": "broken",
}




def failure_messages(stack: LocalStack) -> list[dict]:
    """Consume the on-failure destination."""
    return [json.loads(b) for b in stack.receive_all("failures")]
