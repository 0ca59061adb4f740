"""Typed access to a function's environment: each resource it declared in infra/system.py arrives
as ``<KIND>_<NAME>`` (TABLE_DECISIONS, BUCKET_MODELS, QUEUE_QUARANTINE = queue URL, ...). A
function asking for a resource it did not declare fails at cold start with a clear message,
which is how least privilege shows up in code."""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from streamsense.storage import DynamoTable, S3ObjectStore, SqsQueue


class MissingResource(RuntimeError):
    pass


def resource_name(kind: str, name: str) -> str:
    var = f"{kind.upper()}_{name.upper()}"
    value = os.environ.get(var)
    if not value:
        raise MissingResource(
            f"{var} is not set: this function did not declare access to {kind} {name!r} in infra/system.py"
        )
    return value


@cache
def _client(service: str) -> Any:
    import boto3

    # AWS_ENDPOINT_URL (set by the local runtime) points every client at the local stack.
    return boto3.client(service)  # type: ignore[call-overload]


def table(name: str) -> DynamoTable:
    return DynamoTable(resource_name("table", name), client=_client("dynamodb"))


def bucket(name: str) -> S3ObjectStore:
    return S3ObjectStore(resource_name("bucket", name), client=_client("s3"))


def queue(name: str) -> SqsQueue:
    return SqsQueue(resource_name("queue", name), client=_client("sqs"))


def function_name() -> str:
    return os.environ.get("POWERTOOLS_SERVICE_NAME") or os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "local")
