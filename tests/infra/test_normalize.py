"""The declaration, the template and the local runtime describe the same system."""

from __future__ import annotations

import copy
import importlib.util
from typing import TYPE_CHECKING, Any

import pytest

from infra.normalize import from_system, from_template
from infra.system import (
    SYSTEM,
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

if TYPE_CHECKING:
    from tests.infra.conftest import Synth


def test_template_equals_declaration(dev: Synth) -> None:
    assert from_template(dev.template) == from_system(SYSTEM)


def test_prod_template_differs_only_in_stream_mode(prod: Synth) -> None:
    expected = copy.deepcopy(from_system(SYSTEM))
    for stream in expected["streams"].values():
        stream["shards"] = 0  # on-demand: no fixed shard count
    assert from_template(prod.template) == expected


def test_local_runtime_equals_template_and_declaration(dev: Synth) -> None:
    if importlib.util.find_spec("streamsense_local.stack") is None:
        pytest.skip("streamsense_local.stack (the local runtime) does not exist yet")
    from streamsense_local.stack import LocalStack

    with LocalStack.start(system=SYSTEM) as stack:
        described = stack.describe()
    assert described == from_system(SYSTEM)
    assert described == from_template(dev.template)


# ---- the shape itself, on a small hand-made system ------------------------------------------------

TINY = System(
    name="tiny",
    streams=(Stream("clicks", "c", frozenset({"login"}), shards=3),),
    tables=(Table("state", "s"), Table("forever", "f", ttl_attribute=None)),
    buckets=(Bucket("drops", "d", versioned=False),),
    queues=(
        Queue("bad", "b"),
        Queue(
            "work", "w", visibility_timeout_s=90, dead_letter_queue="work_dlq", max_receive_count=5
        ),
        Queue("work_dlq", "wd", retention_s=1209600),
    ),
    functions=(
        Function(
            "worker",
            "w",
            triggers=(
                KinesisTrigger("clicks", batch_size=50, on_failure="bad"),
                S3Trigger("drops", prefix="in/", suffix=".csv", max_retries=1, on_failure="bad"),
                SqsTrigger("work", batch_size=5),
                ScheduleTrigger("rate(5 minutes)"),
            ),
            access=(Access("state", "readwrite"), Access("drops", "read"), Access("bad", "write")),
            memory_mb=256,
            timeout_s=30,
            environment={"MODE": "fast"},
        ),
    ),
)


def test_from_system_shape() -> None:
    out = from_system(TINY)
    assert out["streams"] == {"clicks": {"shards": 3}}
    assert out["tables"] == {
        "state": {"ttl_attribute": "expires_at"},
        "forever": {"ttl_attribute": None},
    }
    assert out["buckets"] == {"drops": {"versioned": False}}
    assert out["queues"] == {
        "bad": {
            "visibility_timeout_s": 60,
            "retention_s": 345600,
            "dead_letter_queue": None,
            "max_receive_count": None,
        },
        "work": {
            "visibility_timeout_s": 90,
            "retention_s": 345600,
            "dead_letter_queue": "work_dlq",
            "max_receive_count": 5,
        },
        "work_dlq": {
            "visibility_timeout_s": 60,
            "retention_s": 1209600,
            "dead_letter_queue": None,
            "max_receive_count": None,
        },
    }
    fn = out["functions"]["worker"]
    assert (fn["memory_mb"], fn["timeout_s"]) == (256, 30)
    assert fn["env_keys"] == [
        "BUCKET_DROPS",
        "MODE",
        "POWERTOOLS_LOGGER_LOG_EVENT",
        "POWERTOOLS_LOG_LEVEL",
        "POWERTOOLS_METRICS_NAMESPACE",
        "POWERTOOLS_SERVICE_NAME",
        "QUEUE_BAD",
        "TABLE_STATE",
    ]
    # sorted by json.dumps(sort_keys=True): '{"batch_size": 5...' < '{"batch_size": 50...' < '{"bucket"...' < '{"expression"...'
    assert [t["kind"] for t in fn["triggers"]] == ["sqs", "kinesis", "s3", "schedule"]
    assert fn["triggers"][1] == {
        "kind": "kinesis",
        "stream": "clicks",
        "batch_size": 50,
        "batching_window_s": 1,
        "starting_position": "TRIM_HORIZON",
        "bisect_on_error": True,
        "max_retries": 3,
        "max_record_age_s": 21600,
        "parallelization_factor": 1,
        "report_batch_item_failures": True,
        "on_failure": "bad",
    }
    assert fn["triggers"][2] == {
        "kind": "s3",
        "bucket": "drops",
        "prefix": "in/",
        "suffix": ".csv",
        "max_retries": 1,
        "max_event_age_s": 21600,
        "on_failure": "bad",
    }


def _meta(kind: str, name: str) -> dict[str, str]:
    return {"streamsense:kind": kind, "streamsense:name": name}


def test_from_template_reads_cloudformation_defaults_and_ignores_unmarked() -> None:
    template: dict[str, Any] = {
        "Resources": {
            "S": {
                "Type": "AWS::Kinesis::Stream",
                "Metadata": _meta("stream", "clicks"),
                "Properties": {},
            },
            "T": {
                "Type": "AWS::DynamoDB::Table",
                "Metadata": _meta("table", "state"),
                "Properties": {
                    "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": False}
                },
            },
            "Q": {"Type": "AWS::SQS::Queue", "Metadata": _meta("queue", "bad"), "Properties": {}},
            "F": {
                "Type": "AWS::Lambda::Function",
                "Metadata": _meta("function", "worker"),
                "Properties": {},
            },
            "Other": {"Type": "AWS::SQS::Queue", "Properties": {"VisibilityTimeout": 5}},
            "M": {
                "Type": "AWS::Lambda::EventSourceMapping",
                "Properties": {
                    "FunctionName": {"Ref": "F"},
                    "EventSourceArn": {"Fn::GetAtt": ["Q", "Arn"]},
                },
            },
        }
    }
    out = from_template(template)
    assert out["streams"] == {"clicks": {"shards": 1}}
    assert out["tables"] == {"state": {"ttl_attribute": None}}  # TTL declared but disabled
    assert out["queues"] == {
        "bad": {
            "visibility_timeout_s": 30,
            "retention_s": 345600,
            "dead_letter_queue": None,
            "max_receive_count": None,
        }
    }
    assert out["functions"] == {
        "worker": {
            "memory_mb": 128,
            "timeout_s": 3,
            "env_keys": [],
            "triggers": [
                {
                    "kind": "sqs",
                    "queue": "bad",
                    "batch_size": 10,
                    "batching_window_s": 0,
                    "report_batch_item_failures": False,
                }
            ],
        }
    }


def test_from_template_rejects_a_reference_of_the_wrong_kind() -> None:
    template = {
        "Resources": {
            "F": {
                "Type": "AWS::Lambda::Function",
                "Metadata": _meta("function", "worker"),
                "Properties": {},
            },
            "S": {
                "Type": "AWS::Kinesis::Stream",
                "Metadata": _meta("stream", "clicks"),
                "Properties": {},
            },
            "M": {
                "Type": "AWS::Lambda::EventSourceMapping",
                "Properties": {
                    "FunctionName": {"Ref": "F"},
                    "EventSourceArn": {"Fn::GetAtt": ["S", "Arn"]},
                    "DestinationConfig": {
                        "OnFailure": {"Destination": {"Fn::GetAtt": ["S", "Arn"]}}
                    },
                },
            },
        }
    }
    with pytest.raises(ValueError, match="is a stream, expected a queue"):
        from_template(template)
