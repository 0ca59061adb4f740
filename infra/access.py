"""Least privilege, derived: the IAM actions each declared access grants. The CDK stack and the
local runtime (which enforces the same policy on moto) both turn ``Access`` into statements here,
so a function can do exactly what infra/system.py says and nothing more."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from infra.system import Access, Function, KinesisTrigger, S3Trigger, SqsTrigger, System

_ACTIONS: dict[tuple[str, str], tuple[str, ...]] = {
    ("table", "read"): (
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",
        "dynamodb:Query",
        "dynamodb:DescribeTable",
    ),
    ("table", "write"): (
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:BatchWriteItem",
        "dynamodb:DescribeTable",
    ),
    ("bucket", "read"): ("s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket"),
    ("bucket", "write"): ("s3:PutObject", "s3:ListBucket"),
    ("queue", "read"): (
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:GetQueueAttributes",
        "sqs:GetQueueUrl",
    ),
    ("queue", "write"): ("sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"),
    ("stream", "read"): (
        "kinesis:GetRecords",
        "kinesis:GetShardIterator",
        "kinesis:DescribeStream",
        "kinesis:DescribeStreamSummary",
        "kinesis:ListShards",
    ),
    ("stream", "write"): ("kinesis:PutRecord", "kinesis:PutRecords", "kinesis:DescribeStreamSummary"),
}

# What the event-source mappings themselves need (Lambda's service uses the function's role).
_TRIGGER_ACCESS: dict[type, Callable[[Any], Access]] = {
    KinesisTrigger: lambda t: Access(t.stream, "read"),
    SqsTrigger: lambda t: Access(t.queue, "read"),
}


def actions(kind: str, mode: str) -> tuple[str, ...]:
    modes = ("read", "write") if mode == "readwrite" else (mode,)
    out: list[str] = []
    for m in modes:
        out.extend(a for a in _ACTIONS[(kind, m)] if a not in out)
    return tuple(out)


def effective_access(system: System, fn: Function) -> list[Access]:
    """The function's declared access plus what its triggers and destinations imply."""
    result = list(fn.access)
    for t in fn.triggers:
        implied = _TRIGGER_ACCESS.get(type(t))
        if implied:
            result.append(implied(t))
        if isinstance(t, KinesisTrigger | S3Trigger):
            result.append(Access(t.on_failure, "write"))
    seen: dict[tuple[str, str, str | None], Access] = {}
    for a in result:
        seen.setdefault((a.resource, a.mode, a.prefix), a)
    return list(seen.values())


def policy_statements(
    system: System,
    fn: Function,
    arn_of: Callable[[str, str], str],
) -> list[dict[str, Any]]:
    """IAM policy statements for ``fn``; ``arn_of(kind, name)`` gives a resource's ARN (a CDK
    token in the cloud, a moto ARN locally). Bucket prefixes narrow object actions to the prefix;
    ListBucket is narrowed with an s3:prefix condition."""
    statements: list[dict[str, Any]] = []
    for a in effective_access(system, fn):
        kind = system.resource_kind(a.resource)
        arn = arn_of(kind, a.resource)
        acts = actions(kind, a.mode)
        if kind != "bucket":
            statements.append({"Effect": "Allow", "Action": list(acts), "Resource": [arn]})
            continue
        object_acts = [x for x in acts if x != "s3:ListBucket"]
        prefix = a.prefix or ""
        statements.append({"Effect": "Allow", "Action": object_acts, "Resource": [f"{arn}/{prefix}*"]})
        if "s3:ListBucket" in acts:
            stmt: dict[str, Any] = {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": [arn]}
            if prefix:
                stmt["Condition"] = {"StringLike": {"s3:prefix": [f"{prefix}*"]}}
            statements.append(stmt)
    return statements
