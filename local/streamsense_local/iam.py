"""Least privilege, enforced locally: every AWS call a function makes is checked against the IAM
statements ``infra.access.policy_statements`` derives from its declared access (the very
statements the CDK stack attaches to its role).

Why client-side: moto can enforce IAM (INITIAL_NO_AUTH_ACTION_COUNT), but measured on moto 5.2
(``python -m streamsense_local perf --iam-probe``) it only works for SQS and S3 object ARNs: it
authorizes DynamoDB and Kinesis calls against resource ``*``, so a table- or stream-scoped
Allow denies every call, and it ignores the ``s3:prefix`` condition on ListBucket. So the
worker process patches botocore's ``BaseClient._make_api_call`` (every client, whatever session
made it) and evaluates the same statements before the request leaves: an undeclared call raises
the ClientError AWS would (``AccessDeniedException`` / ``AccessDenied``).

The evaluator implements what those statements use: Allow/Deny, Action and Resource with ``*``
and ``?`` wildcards, and StringLike/StringEquals conditions on request context keys (s3:prefix).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import unquote, urlparse

from streamsense_local.naming import Naming

# ---- requests -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One authorization a request needs: action on resource, with its condition context."""

    action: str
    resource: str
    context: Mapping[str, str] = field(default_factory=dict)


_DDB_ITEM_OPS = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem", "ConditionCheck": "ConditionCheckItem", "Get": "GetItem"}

_S3_ACTIONS = {
    "HeadObject": "GetObject",
    "GetObject": "GetObject",
    "PutObject": "PutObject",
    "CreateMultipartUpload": "PutObject",
    "UploadPart": "PutObject",
    "CompleteMultipartUpload": "PutObject",
    "AbortMultipartUpload": "AbortMultipartUpload",
    "DeleteObject": "DeleteObject",
    "ListObjects": "ListBucket",
    "ListObjectsV2": "ListBucket",
    "HeadBucket": "ListBucket",
    "ListObjectVersions": "ListBucketVersions",
    "ListMultipartUploads": "ListBucketMultipartUploads",
    "GetObjectTagging": "GetObjectTagging",
    "PutObjectTagging": "PutObjectTagging",
}

_SQS_BATCH = {
    "SendMessageBatch": "SendMessage",
    "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
}


def _table_arn(naming: Naming, name: str) -> str:
    return name if name.startswith("arn:") else naming.arn_of_physical("table", name)


def _queue_arn(naming: Naming, url_or_name: str) -> str:
    if url_or_name.startswith("arn:"):
        return url_or_name
    name = urlparse(url_or_name).path.rstrip("/").split("/")[-1] if "://" in url_or_name else url_or_name
    return naming.arn_of_physical("queue", name)


def _stream_arn(naming: Naming, params: Mapping[str, Any]) -> str | None:
    if params.get("StreamARN"):
        return str(params["StreamARN"])
    if params.get("StreamName"):
        return naming.arn_of_physical("stream", str(params["StreamName"]))
    return None


def required_checks(
    service: str,
    operation: str,
    params: Mapping[str, Any],
    naming: Naming,
    iterator_streams: Mapping[str, str] | None = None,
) -> list[Check]:
    """The authorizations AWS evaluates for one API call."""
    if service == "dynamodb":
        if operation in ("BatchGetItem", "BatchWriteItem"):
            act = "dynamodb:" + operation
            return [Check(act, _table_arn(naming, t)) for t in params.get("RequestItems", {})]
        if operation in ("TransactWriteItems", "TransactGetItems"):
            checks = []
            for item in params.get("TransactItems", []):
                for kind, body in item.items():
                    checks.append(Check("dynamodb:" + _DDB_ITEM_OPS.get(kind, kind), _table_arn(naming, body["TableName"])))
            return checks
        if "TableName" in params:
            return [Check("dynamodb:" + operation, _table_arn(naming, str(params["TableName"])))]
        return [Check("dynamodb:" + operation, "*")]
    if service == "s3":
        bucket = params.get("Bucket")
        key = params.get("Key")
        action = "s3:" + _S3_ACTIONS.get(operation, operation)
        if operation in ("GetObject", "HeadObject") and params.get("VersionId"):
            action = "s3:GetObjectVersion"
        if operation == "DeleteObject" and params.get("VersionId"):
            action = "s3:DeleteObjectVersion"
        if bucket is None:
            return [Check(action, "*")]
        if operation == "DeleteObjects":
            return [
                Check("s3:DeleteObject", f"arn:aws:s3:::{bucket}/{o['Key']}")
                for o in params.get("Delete", {}).get("Objects", [])
            ]
        if operation == "CopyObject":
            src = params.get("CopySource")
            if isinstance(src, Mapping):
                src_arn = f"arn:aws:s3:::{src['Bucket']}/{src['Key']}"
            else:
                src_arn = "arn:aws:s3:::" + unquote(str(src).lstrip("/").split("?")[0])
            return [Check("s3:PutObject", f"arn:aws:s3:::{bucket}/{key}"), Check("s3:GetObject", src_arn)]
        if key is not None:
            return [Check(action, f"arn:aws:s3:::{bucket}/{key}")]
        context = {}
        if operation in ("ListObjects", "ListObjectsV2", "ListObjectVersions"):
            context["s3:prefix"] = str(params.get("Prefix", ""))
        return [Check(action, f"arn:aws:s3:::{bucket}", context)]
    if service == "sqs":
        action = "sqs:" + _SQS_BATCH.get(operation, operation)
        if "QueueUrl" in params:
            return [Check(action, _queue_arn(naming, str(params["QueueUrl"])))]
        if "QueueName" in params:
            return [Check(action, _queue_arn(naming, str(params["QueueName"])))]
        return [Check(action, "*")]
    if service == "kinesis":
        arn = _stream_arn(naming, params)
        if arn is None and "ShardIterator" in params and iterator_streams is not None:
            arn = iterator_streams.get(str(params["ShardIterator"]))
        return [Check("kinesis:" + operation, arn or "*")]
    return [Check(f"{service}:{operation}", "*")]


# ---- policy evaluation --------------------------------------------------------------------


@lru_cache(maxsize=4096)
def _pattern(glob: str, case_insensitive: bool) -> re.Pattern[str]:
    return re.compile(fnmatch.translate(glob), re.IGNORECASE if case_insensitive else 0)


def _matches(patterns: str | Sequence[str], value: str, *, case_insensitive: bool = False) -> bool:
    items = [patterns] if isinstance(patterns, str) else list(patterns)
    # fnmatch.translate also treats [] as classes; IAM has none, so escape them first.
    return any(
        _pattern(p.replace("[", "[[]"), case_insensitive).match(value) is not None for p in items
    )


def _conditions_hold(conditions: Mapping[str, Mapping[str, Any]], context: Mapping[str, str]) -> bool:
    for operator, tests in conditions.items():
        for key, expected in tests.items():
            values = [expected] if isinstance(expected, str) else list(expected)
            actual = context.get(key)
            if actual is None:
                return False  # a missing key never satisfies a String* condition
            if operator == "StringLike":
                ok = any(_matches(v, actual) for v in values)
            elif operator == "StringEquals":
                ok = actual in values
            else:
                raise ValueError(f"condition operator {operator!r} is not supported locally")
            if not ok:
                return False
    return True


class Policy:
    """An identity policy: a request is allowed when some Allow statement matches it and no
    Deny statement does (IAM's evaluation for a single identity policy)."""

    def __init__(self, statements: Sequence[Mapping[str, Any]]) -> None:
        self.statements = [dict(s) for s in statements]

    def _statement_matches(self, stmt: Mapping[str, Any], check: Check) -> bool:
        if not _matches(stmt.get("Action", []), check.action, case_insensitive=True):
            return False
        if not _matches(stmt.get("Resource", []), check.resource):
            return False
        return _conditions_hold(stmt.get("Condition", {}), check.context)

    def allows(self, check: Check) -> bool:
        if check.action == "sts:GetCallerIdentity":
            return True  # always allowed in AWS, even under an explicit Deny
        allowed = False
        for stmt in self.statements:
            if self._statement_matches(stmt, check):
                if stmt.get("Effect") == "Deny":
                    return False
                allowed = True
        return allowed


def access_denied(service: str, operation: str, check: Check, principal: str) -> Exception:
    """The ClientError AWS returns for an unauthorized call."""
    from botocore.exceptions import ClientError

    code = {"dynamodb": "AccessDeniedException", "kinesis": "AccessDeniedException"}.get(service, "AccessDenied")
    message = (
        f"User: {principal} is not authorized to perform: {check.action} on resource: {check.resource} "
        f"because no identity-based policy allows the {check.action} action"
    )
    response: dict[str, Any] = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": 403 if service == "s3" else 400},
    }
    return ClientError(response, operation)  # type: ignore[arg-type]


def install(policy: Policy, naming: Naming, principal: str, on_deny: Callable[[Check], None] | None = None) -> None:
    """Enforce ``policy`` on every botocore client in this process (worker processes only)."""
    from botocore.client import BaseClient

    original = BaseClient._make_api_call  # type: ignore[attr-defined]
    iterator_streams: dict[str, str] = {}

    def _make_api_call(self: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
        service = self.meta.service_model.endpoint_prefix
        if service == "streams.dynamodb":
            service = "dynamodb"
        checks = required_checks(service, operation_name, api_params, naming, iterator_streams)
        for check in checks:
            if not policy.allows(check):
                if on_deny:
                    on_deny(check)
                raise access_denied(service, operation_name, check, principal)
        result = original(self, operation_name, api_params)
        if service == "kinesis" and isinstance(result, dict):
            # GetRecords names no stream: remember which stream each iterator reads.
            arn = checks[0].resource if checks else "*"
            for k in ("ShardIterator", "NextShardIterator"):
                if result.get(k):
                    iterator_streams[result[k]] = arn
        return result

    BaseClient._make_api_call = _make_api_call  # type: ignore[attr-defined]
