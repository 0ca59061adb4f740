"""Batch processing shared by every handler: decode the event source's records, parse them,
quarantine what can never be applied, hand the rest to one domain call as a whole batch (so it can
be scored vectorized and its I/O batched), and answer the event source the way Lambda expects.

Outcomes of every input record, exactly one each:
- applied (the domain call took it; includes types a function does not act on, counted as
  ``EventsSkipped``),
- quarantined with a reason (bad input is never retried),
- reported as a batch item failure (a transient error: Kinesis retries from the lowest failed
  sequence number, SQS redelivers the failed messages), then the on-failure destination after
  the trigger's bounded retries.

Why not Powertools' BatchProcessor: it calls a handler per record, and streamsense scores and
writes whole batches at once; the response shapes are the same.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import unquote_plus

from streamsense.events import BadEvent, Event, parse_event
from streamsense.observability import count, logger
from streamsense.quarantine import Quarantined, QuarantineSink
from streamsense.storage import TransientStoreError

T = TypeVar("T")


@dataclass(frozen=True)
class Parsed(Generic[T]):
    """A record that parsed: its id at the event source, the value, and where it came from."""

    record_id: str
    value: T
    source: Mapping[str, Any]
    payload: bytes


@dataclass
class BatchResult:
    """What a domain call reports about a batch it was given.

    quarantined: record ids it found semantically bad, with (reason, detail).
    retry_from: Kinesis only: the first record id to retry after a transient failure (it and
        every later record of the batch are redelivered; earlier ones are checkpointed).
    retry: SQS only: message ids to redeliver.
    """

    quarantined: dict[str, tuple[str, str]] = field(default_factory=dict)
    retry_from: str | None = None
    retry: list[str] = field(default_factory=list)


ApplyFn = Callable[[Sequence[Parsed[T]]], BatchResult | None]


def _split(
    raw: Sequence[tuple[str, bytes | None, Mapping[str, Any], str]],
    parse: Callable[[bytes], T],
    accepts: Callable[[T], bool],
) -> tuple[list[Parsed[T]], list[Quarantined], int]:
    """Parse each (record id, bytes or None if undecodable, source, decode error) tuple."""
    good: list[Parsed[T]] = []
    bad: list[Quarantined] = []
    skipped = 0
    for record_id, data, source, decode_error in raw:
        if data is None:
            bad.append(Quarantined("undecodable", decode_error, b"", source))
            continue
        try:
            value = parse(data)
        except BadEvent as exc:
            bad.append(Quarantined(exc.reason, exc.detail, data, source))
            continue
        if accepts(value):
            good.append(Parsed(record_id, value, source, data))
        else:
            skipped += 1
    return good, bad, skipped


def _finish(
    good: Sequence[Parsed[T]],
    bad: list[Quarantined],
    skipped: int,
    result: BatchResult | None,
    quarantine: QuarantineSink,
) -> BatchResult:
    result = result or BatchResult()
    by_id = {p.record_id: p for p in good}
    for record_id, (reason, detail) in result.quarantined.items():
        p = by_id[record_id]
        bad.append(Quarantined(reason, detail, p.payload, p.source))
    quarantine.send(bad)  # raises TransientStoreError if SQS stays down: the batch is retried
    retried = len(result.retry) if result.retry else 0
    if result.retry_from is not None:
        ids = [p.record_id for p in good]
        retried = len(ids) - ids.index(result.retry_from)
    count("EventsApplied", len(good) - len(result.quarantined) - retried)
    count("EventsQuarantined", len(bad))
    count("EventsSkipped", skipped)
    count("EventsRetried", retried)
    for item in bad:
        logger.warning("quarantined", extra={"reason": item.reason, "detail": item.detail[:300], "source": dict(item.source)})
    return result


def accept_types(types: frozenset[str]) -> Callable[[Event], bool]:
    return lambda e: e.type in types


# ---- Kinesis ------------------------------------------------------------------------------


def kinesis_batch(
    event: Mapping[str, Any],
    apply: ApplyFn[Event],
    *,
    accepts: frozenset[str],
    quarantine: QuarantineSink,
) -> dict[str, Any]:
    """Process a Kinesis event; return the ReportBatchItemFailures response."""
    records = event.get("Records") or []
    raw: list[tuple[str, bytes | None, Mapping[str, Any], str]] = []
    for r in records:
        k = r["kinesis"]
        source = {
            "stream": r.get("eventSourceARN", ""),
            "shard": r.get("eventID", "").split(":")[0],
            "sequence_number": k["sequenceNumber"],
            "partition_key": k.get("partitionKey", ""),
        }
        try:
            raw.append((k["sequenceNumber"], base64.b64decode(k["data"], validate=True), source, ""))
        except (binascii.Error, ValueError) as exc:
            raw.append((k["sequenceNumber"], None, source, f"data is not base64: {exc}"))
    good, bad, skipped = _split(raw, parse_event, accept_types(accepts))
    try:
        result = apply(good) if good else None
        result = _finish(good, bad, skipped, result, quarantine)
    except TransientStoreError as exc:
        logger.warning("transient failure, batch will be retried", extra={"error": str(exc)})
        count("BatchesRetried")
        return {"batchItemFailures": [{"itemIdentifier": records[0]["kinesis"]["sequenceNumber"]}] if records else []}
    if result.retry_from is not None:
        return {"batchItemFailures": [{"itemIdentifier": result.retry_from}]}
    return {"batchItemFailures": []}


# ---- SQS ----------------------------------------------------------------------------------


def sqs_batch(
    event: Mapping[str, Any],
    apply: ApplyFn[T],
    *,
    parse: Callable[[bytes], T],
    quarantine: QuarantineSink,
) -> dict[str, Any]:
    """Process an SQS event; return the partial batch response."""
    records = event.get("Records") or []
    raw = [
        (
            r["messageId"],
            r.get("body", "").encode(),
            {"queue": r.get("eventSourceARN", ""), "message_id": r["messageId"]},
            "",
        )
        for r in records
    ]
    good, bad, skipped = _split(raw, parse, lambda _v: True)
    try:
        result = apply(good) if good else None
        result = _finish(good, bad, skipped, result, quarantine)
    except TransientStoreError as exc:
        logger.warning("transient failure, messages will be redelivered", extra={"error": str(exc)})
        return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in records]}
    return {"batchItemFailures": [{"itemIdentifier": i} for i in result.retry]}


# ---- S3 -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class S3Object:
    bucket: str
    key: str  # URL-decoded
    size: int
    etag: str
    version_id: str | None
    event_time: str


def s3_objects(event: Mapping[str, Any]) -> list[S3Object]:
    """The objects an S3 notification names (keys arrive URL-encoded, '+' for spaces)."""
    objects = []
    for r in event.get("Records") or []:
        if not str(r.get("eventName", "")).startswith("ObjectCreated"):
            continue
        s3 = r["s3"]
        objects.append(
            S3Object(
                bucket=s3["bucket"]["name"],
                key=unquote_plus(s3["object"]["key"]),
                size=int(s3["object"].get("size", 0)),
                etag=str(s3["object"].get("eTag", "")),
                version_id=s3["object"].get("versionId"),
                event_time=str(r.get("eventTime", "")),
            )
        )
    return objects


def s3_batch(
    event: Mapping[str, Any],
    apply: Callable[[S3Object], list[Quarantined]],
    *,
    quarantine: QuarantineSink,
) -> dict[str, Any]:
    """Process an S3 notification. ``apply`` returns the rows it quarantined; it raises BadEvent
    to reject a whole object (nothing applied) and any other error to have Lambda retry the
    asynchronous invoke (then the on-failure destination)."""
    summary: dict[str, Any] = {"objects": []}
    for obj in s3_objects(event):
        source = {"bucket": obj.bucket, "key": obj.key, "etag": obj.etag, "version_id": obj.version_id}
        try:
            rows = apply(obj)
        except BadEvent as exc:
            quarantine.send([Quarantined(exc.reason, exc.detail, b"", source)])
            count("ObjectsRejected")
            logger.warning("object rejected", extra={"reason": exc.reason, "detail": exc.detail, **source})
            summary["objects"].append({"key": obj.key, "status": "rejected", "reason": exc.reason})
            continue
        quarantine.send(rows)
        count("ObjectsApplied")
        count("RowsQuarantined", len(rows))
        summary["objects"].append({"key": obj.key, "status": "applied", "rows_quarantined": len(rows)})
    return summary
