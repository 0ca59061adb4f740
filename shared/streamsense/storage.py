"""Storage and messaging behind small interfaces: DynamoDB tables, S3 objects and SQS queues, each
with an in-memory twin that behaves the same (values round-trip through DynamoDB's type rules in
both), so domain code and its tests never see boto3.

All AWS I/O is batched: BatchGetItem (100 keys a call), BatchWriteItem (25 items a call),
SendMessageBatch (10 messages a call); unprocessed items are retried with backoff. Every adapter
counts its requests (``requests``) so benchmarks can report AWS requests per 1,000 events.

Items are plain dicts with string keys ``pk`` and ``sk``; numbers come back as int or float,
binary as bytes. Floats are stored exactly as their shortest repr (Decimal(str(x))).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Protocol

Item = dict[str, Any]
Key = tuple[str, str]

MAX_BATCH_GET = 100
MAX_BATCH_WRITE = 25
MAX_SQS_BATCH = 10
_RETRY_DELAYS = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2)


class TransientStoreError(RuntimeError):
    """Storage stayed unavailable after bounded retries: the caller reports the batch as failed
    so the event source retries it; never a reason to quarantine input."""


class VersionConflict(RuntimeError):
    """A conditional write lost a race with another writer (another shard touched the entity)."""


# ---- value conversion (the same rules for DynamoDB and the in-memory twin) ---------------------


def to_dynamo_value(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str | bytes):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("DynamoDB cannot store NaN or infinity")
        return Decimal(repr(value))
    if isinstance(value, Decimal):
        return value
    if isinstance(value, Mapping):
        return {str(k): to_dynamo_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_dynamo_value(v) for v in value]
    if isinstance(value, set | frozenset):
        if not value:
            raise ValueError("DynamoDB cannot store an empty set; use a list or omit it")
        return {to_dynamo_value(v) for v in value}
    if hasattr(value, "item"):  # numpy scalar
        return to_dynamo_value(value.item())
    raise TypeError(f"cannot store {type(value).__name__} in DynamoDB")


def from_dynamo_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        # "5" stays an int; "5.0" (how floats are written) comes back as a float.
        exponent = value.as_tuple().exponent
        return int(value) if isinstance(exponent, int) and exponent >= 0 else float(value)
    if isinstance(value, dict):
        return {k: from_dynamo_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_dynamo_value(v) for v in value]
    if isinstance(value, set):
        return {from_dynamo_value(v) for v in value}
    if hasattr(value, "value") and type(value).__name__ == "Binary":
        return bytes(value.value)
    return value


def _key(item: Mapping[str, Any]) -> Key:
    return (str(item["pk"]), str(item["sk"]))


def _chunks(seq: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


# ---- tables -------------------------------------------------------------------------------


class Table(Protocol):
    requests: int

    def get_many(self, keys: Sequence[Key]) -> dict[Key, Item]: ...
    def put_many(self, items: Sequence[Item]) -> None: ...
    def delete_many(self, keys: Sequence[Key]) -> None: ...
    def query(
        self, pk: str, sk_prefix: str | None = None, *, limit: int | None = None, ascending: bool = True
    ) -> list[Item]: ...
    def put_if_version(self, item: Item, expected_version: int | None) -> None: ...


class MemoryTable:
    """The in-memory twin of DynamoTable (tests, offline training, benchmarks)."""

    def __init__(self, name: str = "memory") -> None:
        self.name = name
        self.items: dict[Key, Item] = {}
        self.requests = 0

    @staticmethod
    def _roundtrip(item: Mapping[str, Any]) -> Item:
        return from_dynamo_value(to_dynamo_value(copy.deepcopy(dict(item))))  # type: ignore[no-any-return]

    def get_many(self, keys: Sequence[Key]) -> dict[Key, Item]:
        unique = list(dict.fromkeys(keys))
        self.requests += -(-len(unique) // MAX_BATCH_GET)
        return {k: copy.deepcopy(self.items[k]) for k in unique if k in self.items}

    def put_many(self, items: Sequence[Item]) -> None:
        self.requests += -(-len(items) // MAX_BATCH_WRITE)
        for item in items:
            self.items[_key(item)] = self._roundtrip(item)

    def delete_many(self, keys: Sequence[Key]) -> None:
        self.requests += -(-len(keys) // MAX_BATCH_WRITE)
        for k in keys:
            self.items.pop(k, None)

    def query(
        self, pk: str, sk_prefix: str | None = None, *, limit: int | None = None, ascending: bool = True
    ) -> list[Item]:
        self.requests += 1
        rows = sorted(
            (k for k in self.items if k[0] == pk and (sk_prefix is None or k[1].startswith(sk_prefix))),
            key=lambda k: k[1],
            reverse=not ascending,
        )
        return [copy.deepcopy(self.items[k]) for k in rows[:limit]]

    def put_if_version(self, item: Item, expected_version: int | None) -> None:
        self.requests += 1
        current = self.items.get(_key(item))
        found = None if current is None else current.get("version")
        if found != expected_version:
            raise VersionConflict(f"{_key(item)}: expected version {expected_version}, found {found}")
        self.items[_key(item)] = self._roundtrip(item)


class DynamoTable:
    """A DynamoDB table through the low-level client, batched, with bounded retries."""

    def __init__(self, table_name: str, client: Any | None = None) -> None:
        import boto3
        from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

        self.name = table_name
        self._client = client or boto3.client("dynamodb")
        self._ser = TypeSerializer()
        self._de = TypeDeserializer()
        self.requests = 0

    def _encode(self, item: Mapping[str, Any]) -> dict[str, Any]:
        return {k: self._ser.serialize(to_dynamo_value(v)) for k, v in item.items() if v is not None}

    def _decode(self, raw: Mapping[str, Any]) -> Item:
        return {k: from_dynamo_value(self._de.deserialize(v)) for k, v in raw.items()}

    def _call(self, op: str, **kwargs: Any) -> dict[str, Any]:
        from botocore.exceptions import ClientError, EndpointConnectionError

        for attempt, delay in enumerate((*_RETRY_DELAYS, None)):
            self.requests += 1
            try:
                return getattr(self._client, op)(**kwargs)  # type: ignore[no-any-return]
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                retryable = code in {
                    "ProvisionedThroughputExceededException",
                    "ThrottlingException",
                    "RequestLimitExceeded",
                    "InternalServerError",
                    "ServiceUnavailable",
                }
                if not retryable or delay is None:
                    if retryable:
                        raise TransientStoreError(f"{op} on {self.name}: {code} after {attempt} retries") from exc
                    raise
            except EndpointConnectionError as exc:
                if delay is None:
                    raise TransientStoreError(f"{op} on {self.name}: {exc}") from exc
            time.sleep(delay)
        raise AssertionError("unreachable")

    def get_many(self, keys: Sequence[Key]) -> dict[Key, Item]:
        found: dict[Key, Item] = {}
        for chunk in _chunks(list(dict.fromkeys(keys)), MAX_BATCH_GET):
            request: dict[str, Any] = {
                self.name: {"Keys": [{"pk": {"S": pk}, "sk": {"S": sk}} for pk, sk in chunk], "ConsistentRead": True}
            }
            for delay in (*_RETRY_DELAYS, None):
                response = self._call("batch_get_item", RequestItems=request)
                for raw in response.get("Responses", {}).get(self.name, []):
                    item = self._decode(raw)
                    found[_key(item)] = item
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
                if delay is None:
                    raise TransientStoreError(f"BatchGetItem on {self.name}: keys left unprocessed")
                time.sleep(delay)
        return found

    def _write(self, requests: list[dict[str, Any]]) -> None:
        for chunk in _chunks(requests, MAX_BATCH_WRITE):
            pending: dict[str, Any] = {self.name: list(chunk)}
            for delay in (*_RETRY_DELAYS, None):
                response = self._call("batch_write_item", RequestItems=pending)
                pending = response.get("UnprocessedItems") or {}
                if not pending:
                    break
                if delay is None:
                    raise TransientStoreError(f"BatchWriteItem on {self.name}: items left unprocessed")
                time.sleep(delay)

    def put_many(self, items: Sequence[Item]) -> None:
        # BatchWriteItem rejects two writes to one key in a call: the last write wins, as it would.
        latest = {_key(i): i for i in items}
        self._write([{"PutRequest": {"Item": self._encode(i)}} for i in latest.values()])

    def delete_many(self, keys: Sequence[Key]) -> None:
        self._write(
            [{"DeleteRequest": {"Key": {"pk": {"S": pk}, "sk": {"S": sk}}}} for pk, sk in dict.fromkeys(keys)]
        )

    def query(
        self, pk: str, sk_prefix: str | None = None, *, limit: int | None = None, ascending: bool = True
    ) -> list[Item]:
        condition = "pk = :pk"
        values: dict[str, Any] = {":pk": {"S": pk}}
        if sk_prefix is not None:
            condition += " AND begins_with(sk, :sk)"
            values[":sk"] = {"S": sk_prefix}
        kwargs: dict[str, Any] = {
            "TableName": self.name,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": ascending,
            "ConsistentRead": True,
        }
        rows: list[Item] = []
        while True:
            if limit is not None:
                kwargs["Limit"] = limit - len(rows)
            response = self._call("query", **kwargs)
            rows.extend(self._decode(r) for r in response.get("Items", []))
            start = response.get("LastEvaluatedKey")
            if not start or (limit is not None and len(rows) >= limit):
                return rows
            kwargs["ExclusiveStartKey"] = start

    def put_if_version(self, item: Item, expected_version: int | None) -> None:
        from botocore.exceptions import ClientError

        if expected_version is None:
            condition, values = "attribute_not_exists(pk)", None
        else:
            condition, values = "version = :v", {":v": {"N": str(expected_version)}}
        kwargs: dict[str, Any] = {"TableName": self.name, "Item": self._encode(item), "ConditionExpression": condition}
        if values:
            kwargs["ExpressionAttributeValues"] = values
        try:
            self._call("put_item", **kwargs)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise VersionConflict(f"{_key(item)}: expected version {expected_version}") from exc
            raise


# ---- objects ------------------------------------------------------------------------------


class ObjectStore(Protocol):
    requests: int

    def get(self, key: str) -> bytes: ...
    def put(self, key: str, body: bytes, *, content_type: str = "application/octet-stream", metadata: Mapping[str, str] | None = None) -> None: ...
    def exists(self, key: str) -> bool: ...
    def list(self, prefix: str) -> list[str]: ...


class ObjectNotFound(KeyError):
    pass


class MemoryObjectStore:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.metadata: dict[str, dict[str, str]] = {}
        self.requests = 0

    def get(self, key: str) -> bytes:
        self.requests += 1
        if key not in self.objects:
            raise ObjectNotFound(key)
        return self.objects[key]

    def put(self, key: str, body: bytes, *, content_type: str = "application/octet-stream", metadata: Mapping[str, str] | None = None) -> None:
        self.requests += 1
        self.objects[key] = bytes(body)
        self.metadata[key] = {"content_type": content_type, **(metadata or {})}

    def exists(self, key: str) -> bool:
        self.requests += 1
        return key in self.objects

    def list(self, prefix: str) -> list[str]:
        self.requests += 1
        return sorted(k for k in self.objects if k.startswith(prefix))


class S3ObjectStore:
    def __init__(self, bucket: str, client: Any | None = None) -> None:
        import boto3

        self.bucket = bucket
        self._client = client or boto3.client("s3")
        self.requests = 0

    def get(self, key: str) -> bytes:
        self.requests += 1
        try:
            return self._client.get_object(Bucket=self.bucket, Key=key)["Body"].read()  # type: ignore[no-any-return]
        except self._client.exceptions.NoSuchKey:
            raise ObjectNotFound(key) from None

    def put(self, key: str, body: bytes, *, content_type: str = "application/octet-stream", metadata: Mapping[str, str] | None = None) -> None:
        self.requests += 1
        self._client.put_object(
            Bucket=self.bucket, Key=key, Body=body, ContentType=content_type, Metadata=dict(metadata or {})
        )

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        self.requests += 1
        try:
            self._client.head_object(Bucket=self.bucket, Key=key)
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return False
            raise

    def list(self, prefix: str) -> list[str]:
        keys: list[str] = []
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        while True:
            self.requests += 1
            response = self._client.list_objects_v2(**kwargs)
            keys.extend(o["Key"] for o in response.get("Contents", []))
            if not response.get("IsTruncated"):
                return sorted(keys)
            kwargs["ContinuationToken"] = response["NextContinuationToken"]


# ---- queues -------------------------------------------------------------------------------


class Queue(Protocol):
    requests: int

    def send_many(self, bodies: Sequence[str]) -> None: ...


class MemoryQueue:
    def __init__(self) -> None:
        self.messages: list[str] = []
        self.requests = 0

    def send_many(self, bodies: Sequence[str]) -> None:
        self.requests += -(-len(bodies) // MAX_SQS_BATCH)
        self.messages.extend(bodies)


class SqsQueue:
    def __init__(self, queue_url: str, client: Any | None = None) -> None:
        import boto3

        self.url = queue_url
        self._client = client or boto3.client("sqs")
        self.requests = 0

    def send_many(self, bodies: Sequence[str]) -> None:
        for chunk in _chunks(list(bodies), MAX_SQS_BATCH):
            entries: list[Any] = [{"Id": str(i), "MessageBody": body} for i, body in enumerate(chunk)]
            for delay in (*_RETRY_DELAYS, None):
                self.requests += 1
                response = self._client.send_message_batch(QueueUrl=self.url, Entries=entries)
                failed = {f["Id"] for f in response.get("Failed", [])}
                entries = [e for e in entries if e["Id"] in failed]
                if not entries:
                    break
                if delay is None:
                    raise TransientStoreError(f"SendMessageBatch to {self.url}: {len(entries)} messages failed")
                time.sleep(delay)
