"""Lambda's event sources, emulated on moto with their reliability semantics.

Kinesis (per shard, in order): batches of up to ``batch_size`` records (and at most 6 MB),
gathered for up to the batching window; ReportBatchItemFailures checkpoints before the lowest
failed sequence number and retries from it; BisectBatchOnFunctionError splits a batch whose
invocation failed (splits do not count as retries); MaximumRetryAttempts and
MaximumRecordAgeInSeconds bound the retries, after which the discarded range goes to the
on-failure destination as AWS's invocation record (shard and sequence range, never the data),
and the shard moves on.

SQS: batches from ReceiveMessage; only successful messages are deleted (partial batch
response); the rest reappear after the queue's visibility timeout, and SQS's redrive policy
moves a message to the dead-letter queue once it has been received maxReceiveCount times.

Asynchronous invokes (S3 notifications, schedules): Lambda's internal queue, up to
``max_retries`` retries one and then two minutes apart, events older than the maximum event
age dropped, and an invocation record at the on-failure destination when it gives up.

Not emulated: ParallelizationFactor > 1 (batches of a shard run one at a time, which keeps the
per-partition-key order AWS promises and is stricter), resharding, and SQS FIFO queues.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from infra.system import KinesisTrigger, SqsTrigger
from streamsense_local.clock import Clock
from streamsense_local.processes import Invocation
from streamsense_local.shapes import (
    StreamRecord,
    async_failure_record,
    kinesis_event,
    kinesis_failure_record,
    sqs_event,
)

#: Lambda's limit on a synchronous invocation payload.
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
#: GetRecords returns at most this many records.
MAX_GET_RECORDS = 10_000
#: A caught-up shard is polled again after this long (Lambda polls each shard about once a
#: second); drain() forces one last poll of every shard before it calls the stack idle.
POLL_INTERVAL_S = 0.25

Invoke = Callable[[str, Any, str, Sequence[str]], Invocation]
Status = Literal["ok", "partial", "error"]


def classify(inv: Invocation, ids: Sequence[str], report_failures: bool) -> tuple[Status, list[str]]:
    """Lambda's reading of a batch response. Success: no error and an empty/null
    batchItemFailures (or a null response). Complete failure: a function error, or an item
    whose identifier is missing, empty, or not in the batch."""
    if not inv.ok:
        return "error", []
    if not report_failures or not isinstance(inv.response, dict):
        return "ok", []
    items = inv.response.get("batchItemFailures")
    if not items:
        return "ok", []
    if not isinstance(items, list):
        return "error", []
    known = set(ids)
    failed = []
    for item in items:
        ident = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(ident, str) or ident not in known:
            return "error", []
        failed.append(ident)
    return "partial", failed


@dataclass
class Due:
    """What a mapping is waiting for: ``idle`` when it has nothing left; else the clock time of
    its next work (None if it is waiting on something it cannot schedule, e.g. SQS in flight)."""

    idle: bool
    at: float | None = None


# ---- Kinesis ------------------------------------------------------------------------------


@dataclass
class _Batch:
    records: list[StreamRecord]
    attempts: int = 0  # retries used; bisection does not count
    invocations: int = 0
    not_before: float = 0.0
    function_error: str | None = None


@dataclass
class _Shard:
    shard_id: str
    iterator: str
    buffer: deque[StreamRecord] = field(default_factory=deque)
    buffered_since: float | None = None
    caught_up: bool = False
    work: deque[_Batch] = field(default_factory=deque)
    checkpoint: str | None = None
    # drain(): retry backoff this shard has waited out on its own timeline (seconds ahead of
    # the shared clock). A shard stuck on retries does not hold every other poller back, and
    # the records behind it age by the wait; drain() moves the shared clock up at the end.
    lag: float = 0.0
    polled_at: float = float("-inf")  # time.monotonic() of the last GetRecords that caught up


@dataclass
class MappingCounters:
    invocations: int = 0
    records_delivered: int = 0  # records whose batch succeeded (checkpointed)
    records_to_destination: int = 0  # records given up on (on-failure destination)
    records_retried: int = 0
    bisections: int = 0
    failure_records: list[dict[str, Any]] = field(default_factory=list)


class KinesisReader:
    """GetRecords for the pollers over plain HTTP: botocore's response parsing (per-record
    base64 decoding and timestamp parsing, then re-encoding for the event) cost more than moto
    itself. Records keep their data base64-encoded, exactly as the Lambda event carries it."""

    def __init__(self, endpoint: str, region: str) -> None:
        import urllib3

        self._pool = urllib3.PoolManager(maxsize=16)
        self._url = endpoint.rstrip("/") + "/"
        self._headers = {
            "X-Amz-Target": "Kinesis_20131202.GetRecords",
            "Content-Type": "application/x-amz-json-1.1",
            # moto routes by the credential scope; it does not check the signature.
            "Authorization": f"AWS4-HMAC-SHA256 Credential=streamsense-local-admin/20240101/{region}/kinesis/aws4_request, SignedHeaders=host, Signature=0",
        }

    def get_records(self, iterator: str, limit: int) -> dict[str, Any]:
        body = json.dumps({"ShardIterator": iterator, "Limit": limit})
        resp = self._pool.request("POST", self._url, body=body, headers=self._headers)
        if resp.status != 200:
            raise RuntimeError(f"GetRecords failed: HTTP {resp.status}: {resp.data[:300]!r}")
        return json.loads(resp.data)  # type: ignore[no-any-return]


class Destination:
    """An on-failure destination queue. Records are sent with SendMessageBatch when ten are
    waiting or the function's round ends (Lambda delivers them asynchronously too); a storm of
    give-ups (a handler failing every record of a bisected batch) is then a tenth of the calls."""

    def __init__(self, sqs: Any, url: str | None) -> None:
        self._sqs = sqs
        self.url = url
        self._pending: list[str] = []

    def send(self, record: dict[str, Any]) -> None:
        if self.url is None:
            return
        self._pending.append(json.dumps(record))
        if len(self._pending) >= 10 or sum(map(len, self._pending)) > 200_000:
            self.flush()

    def flush(self) -> None:
        while self._pending:
            chunk: list[str] = []
            size = 0
            while self._pending and len(chunk) < 10 and (not chunk or size + len(self._pending[0]) <= 250_000):
                size += len(self._pending[0])
                chunk.append(self._pending.pop(0))
            resp = self._sqs.send_message_batch(
                QueueUrl=self.url, Entries=[{"Id": str(i), "MessageBody": body} for i, body in enumerate(chunk)]
            )
            if resp.get("Failed"):
                raise RuntimeError(f"on-failure destination {self.url} refused {resp['Failed']}")


def retry_backoff_s(attempt: int) -> float:
    """Delay before retry number ``attempt`` of a stream batch (exponential, capped)."""
    return float(min(2 ** (attempt - 1), 30))


class KinesisMapping:
    kind = "kinesis"

    def __init__(
        self,
        *,
        function: str,
        trigger: KinesisTrigger,
        stream_physical: str,
        stream_arn: str,
        function_arn: str,
        role_arn: str,
        region: str,
        destination_url: str | None,
        kinesis: Any,
        reader: KinesisReader,
        sqs: Any,
        clock: Clock,
        invoke: Invoke,
    ) -> None:
        self.function = function
        self.trigger = trigger
        self._reader = reader
        self.source = f"kinesis:{trigger.stream}"
        self.stream_physical = stream_physical
        self.stream_arn = stream_arn
        self.function_arn = function_arn
        self.role_arn = role_arn
        self.region = region
        self.destination_url = destination_url
        self.destination = Destination(sqs, destination_url)
        self._kinesis = kinesis
        self._sqs = sqs
        self._clock = clock
        self._invoke = invoke
        self.counters = MappingCounters()
        self.shards: list[_Shard] = []
        shards = kinesis.list_shards(StreamName=stream_physical)["Shards"]
        for s in shards:
            iterator = kinesis.get_shard_iterator(
                StreamName=stream_physical, ShardId=s["ShardId"], ShardIteratorType=trigger.starting_position
            )["ShardIterator"]
            self.shards.append(_Shard(s["ShardId"], iterator))

    # ---- reading ------------------------------------------------------------------------------

    def _now(self, sh: _Shard) -> float:
        return self._clock.now() + sh.lag

    def _fill(self, sh: _Shard) -> None:
        limit = min(MAX_GET_RECORDS, max(self.trigger.batch_size, 500))
        while len(sh.buffer) < self.trigger.batch_size:
            resp = self._reader.get_records(sh.iterator, limit)
            sh.iterator = resp["NextShardIterator"]
            records = resp["Records"]
            if records and sh.buffered_since is None:
                sh.buffered_since = self._now(sh)
            for r in records:
                sh.buffer.append(
                    StreamRecord(
                        shard_id=sh.shard_id,
                        sequence_number=r["SequenceNumber"],
                        partition_key=r["PartitionKey"],
                        data_b64=r["Data"],
                        arrival=float(r["ApproximateArrivalTimestamp"]),
                    )
                )
            sh.caught_up = len(records) < limit
            if sh.caught_up:
                sh.polled_at = time.monotonic()
                return

    def _take(self, sh: _Shard) -> list[StreamRecord]:
        batch: list[StreamRecord] = []
        size = 0
        while sh.buffer and len(batch) < self.trigger.batch_size:
            nxt = sh.buffer[0].event_bytes()
            if batch and size + nxt > MAX_PAYLOAD_BYTES:
                break
            batch.append(sh.buffer.popleft())
            size += nxt
        if not sh.buffer:
            sh.buffered_since = None
        return batch

    def _ready_batch(self, sh: _Shard, drain: bool, force: bool) -> bool:
        recently = time.monotonic() - sh.polled_at < POLL_INTERVAL_S
        if force or not (sh.caught_up and recently):
            self._fill(sh)
        if not sh.buffer:
            return False
        now = self._now(sh)
        full = len(sh.buffer) >= self.trigger.batch_size or (
            sum(r.event_bytes() for r in list(sh.buffer)[: self.trigger.batch_size]) >= MAX_PAYLOAD_BYTES
        )
        window_over = sh.buffered_since is not None and now >= sh.buffered_since + self.trigger.batching_window_s
        # drain(): once the shard is caught up nothing more will arrive, so waiting out the
        # window would produce the very same batch later.
        if full or window_over or (drain and sh.caught_up):
            sh.work.append(_Batch(self._take(sh)))
            return True
        return False

    # ---- outcomes -----------------------------------------------------------------------------

    def _checkpoint(self, sh: _Shard, records: Sequence[StreamRecord]) -> None:
        if records:
            sh.checkpoint = records[-1].sequence_number

    def _give_up(self, sh: _Shard, batch: _Batch, records: list[StreamRecord], condition: str) -> None:
        record = kinesis_failure_record(
            function_arn=self.function_arn,
            condition=condition,
            invoke_count=batch.invocations,
            function_error=batch.function_error,
            records=records,
            stream_arn=self.stream_arn,
            now=self._now(sh),
        )
        self.destination.send(record)
        self.counters.failure_records.append(record)
        self.counters.records_to_destination += len(records)
        self._checkpoint(sh, records)

    def _retry_or_give_up(self, sh: _Shard, batch: _Batch) -> None:
        batch.attempts += 1
        limit = self.trigger.max_retries
        if limit != -1 and batch.attempts > limit:
            sh.work.popleft()
            self._give_up(sh, batch, batch.records, "RetryAttemptsExhausted")
            return
        self.counters.records_retried += len(batch.records)
        batch.not_before = self._now(sh) + retry_backoff_s(batch.attempts)

    def _step_shard(self, sh: _Shard, drain: bool, force: bool) -> bool:
        if not sh.work and not self._ready_batch(sh, drain, force):
            return False
        batch = sh.work[0]
        now = self._now(sh)
        if now < batch.not_before:
            if not drain:
                return False
            sh.lag += batch.not_before - now
            now = batch.not_before
        max_age = self.trigger.max_record_age_s
        if max_age != -1:
            expired = 0
            while expired < len(batch.records) and now - batch.records[expired].arrival > max_age:
                expired += 1
            if expired:
                old, batch.records = batch.records[:expired], batch.records[expired:]
                if not batch.records:
                    sh.work.popleft()
                self._give_up(sh, batch, old, "RecordAgeExceeded")
                return True
        records = batch.records
        ids = [r.sequence_number for r in records]
        event = kinesis_event(records, self.stream_arn, self.region, self.role_arn)
        inv = self._invoke(self.function, event, self.source, [f"{r.shard_id}:{r.sequence_number}" for r in records])
        batch.invocations += 1
        self.counters.invocations += 1
        status, failed = classify(inv, ids, self.trigger.report_batch_item_failures)
        if status == "ok":
            sh.work.popleft()
            self.counters.records_delivered += len(records)
            self._checkpoint(sh, records)
            return True
        if status == "partial":
            cut = ids.index(min(failed, key=int))  # the lowest failed sequence number
            done, batch.records = records[:cut], records[cut:]
            self.counters.records_delivered += len(done)
            self._checkpoint(sh, done)
            batch.function_error = None
            self._retry_or_give_up(sh, batch)
            return True
        batch.function_error = "Unhandled"
        if self.trigger.bisect_on_error and len(records) > 1:
            mid = len(records) // 2
            sh.work.popleft()
            for half in (records[mid:], records[:mid]):
                sh.work.appendleft(
                    _Batch(half, attempts=batch.attempts, invocations=batch.invocations, function_error="Unhandled")
                )
            self.counters.bisections += 1
            return True
        self._retry_or_give_up(sh, batch)
        return True

    def step(self, drain: bool, force: bool = False) -> bool:
        """Invoke at most one batch per shard; ``force`` polls even recently polled shards."""
        did = False
        for sh in self.shards:
            did = self._step_shard(sh, drain, force) or did
        return did

    def due(self) -> Due:
        times: list[float] = []
        busy = False
        for sh in self.shards:
            if sh.work:
                busy = True
                times.append(sh.work[0].not_before - sh.lag)
            elif sh.buffer:
                busy = True
                times.append((sh.buffered_since or self._now(sh)) + self.trigger.batching_window_s - sh.lag)
            elif not sh.caught_up:
                busy = True
                times.append(self._clock.now())
        return Due(idle=not busy, at=min(times) if times else None)

    def flush(self) -> None:
        self.destination.flush()

    def max_lag(self) -> float:
        return max((sh.lag for sh in self.shards), default=0.0)

    def clear_lag(self) -> None:
        for sh in self.shards:
            sh.lag = 0.0

    def describe(self) -> dict[str, Any]:
        t = self.trigger
        return {
            "kind": "kinesis",
            "stream": t.stream,
            "batch_size": t.batch_size,
            "batching_window_s": t.batching_window_s,
            "starting_position": t.starting_position,
            "bisect_on_error": t.bisect_on_error,
            "max_retries": t.max_retries,
            "max_record_age_s": t.max_record_age_s,
            "parallelization_factor": t.parallelization_factor,
            "report_batch_item_failures": t.report_batch_item_failures,
            "on_failure": t.on_failure,
        }


# ---- SQS ----------------------------------------------------------------------------------


class SqsMapping:
    kind = "sqs"

    def __init__(
        self,
        *,
        function: str,
        trigger: SqsTrigger,
        queue_url: str,
        queue_arn: str,
        visibility_timeout_s: int,
        region: str,
        sqs: Any,
        clock: Clock,
        invoke: Invoke,
    ) -> None:
        self.function = function
        self.trigger = trigger
        self.source = f"sqs:{trigger.queue}"
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.visibility_timeout_s = visibility_timeout_s
        self.region = region
        self._sqs = sqs
        self._clock = clock
        self._invoke = invoke
        self.counters = MappingCounters()
        # receipt handle -> when it reappears (moto shares the clock, so drain() can skip to it)
        self._invisible_until: dict[str, float] = {}
        self._gathering: list[dict[str, Any]] = []
        self._gather_started: float | None = None

    def _forget_visible(self) -> None:
        now = self._clock.now()
        for handle, at in list(self._invisible_until.items()):
            if at <= now:
                del self._invisible_until[handle]

    def step(self, drain: bool, force: bool = False) -> bool:
        self._forget_visible()
        msgs = self._gathering
        while len(msgs) < self.trigger.batch_size:
            got = self._sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=min(10, self.trigger.batch_size - len(msgs)),
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
                WaitTimeSeconds=0,
            ).get("Messages", [])
            if not got:
                break
            msgs.extend(got)
        if not msgs:
            return False
        now = self._clock.now()
        if not drain and self.trigger.batching_window_s > 0 and len(msgs) < self.trigger.batch_size:
            self._gather_started = self._gather_started or now
            if now < self._gather_started + self.trigger.batching_window_s:
                self._gathering = msgs
                return False
        self._gathering, self._gather_started = [], None
        ids = [m["MessageId"] for m in msgs]
        inv = self._invoke(self.function, sqs_event(msgs, self.queue_arn, self.region), self.source, ids)
        self.counters.invocations += 1
        status, failed = classify(inv, ids, self.trigger.report_batch_item_failures)
        failed_set = set(ids) if status == "error" else set(failed)
        done = [m for m in msgs if m["MessageId"] not in failed_set]
        for i in range(0, len(done), 10):
            chunk = done[i : i + 10]
            self._sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(j), "ReceiptHandle": m["ReceiptHandle"]} for j, m in enumerate(chunk)],
            )
        self.counters.records_delivered += len(done)
        self.counters.records_retried += len(msgs) - len(done)
        for m in msgs:
            if m["MessageId"] in failed_set:
                self._invisible_until[m["ReceiptHandle"]] = now + self.visibility_timeout_s
        return True

    def flush(self) -> None:
        """Nothing buffered: failed messages stay in their queue."""

    def due(self) -> Due:
        if self._gathering:
            return Due(False, (self._gather_started or self._clock.now()) + self.trigger.batching_window_s)
        attrs = self._sqs.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        visible = int(attrs["ApproximateNumberOfMessages"])
        hidden = int(attrs["ApproximateNumberOfMessagesNotVisible"])
        if visible:
            return Due(False, self._clock.now())
        if hidden:
            return Due(False, min(self._invisible_until.values()) if self._invisible_until else None)
        return Due(True)

    def describe(self) -> dict[str, Any]:
        t = self.trigger
        return {
            "kind": "sqs",
            "queue": t.queue,
            "batch_size": t.batch_size,
            "batching_window_s": t.batching_window_s,
            "report_batch_item_failures": t.report_batch_item_failures,
        }


# ---- asynchronous invokes (S3, schedules) -------------------------------------------------


@dataclass
class AsyncItem:
    request_id: str
    event: Any
    source: str
    ids: list[str]
    enqueued_at: float
    invocations: int = 0
    next_at: float = 0.0
    last_error: dict[str, Any] | None = None


#: Lambda waits one minute before the second attempt and two before the third.
ASYNC_RETRY_DELAYS_S = (60.0, 120.0)


class AsyncQueue:
    """A function's asynchronous-invocation queue with its EventInvokeConfig."""

    kind = "async"

    def __init__(
        self,
        *,
        function: str,
        function_arn: str,
        max_retries: int,
        max_event_age_s: int,
        destination_url: str | None,
        sqs: Any,
        clock: Clock,
        invoke: Invoke,
    ) -> None:
        if not 0 <= max_retries <= 2:
            raise ValueError("asynchronous MaximumRetryAttempts is 0..2")
        self.function = function
        self.function_arn = function_arn
        self.max_retries = max_retries
        self.max_event_age_s = max_event_age_s
        self.destination_url = destination_url
        self.destination = Destination(sqs, destination_url)
        self._sqs = sqs
        self._clock = clock
        self._invoke = invoke
        self.items: deque[AsyncItem] = deque()
        self.counters = MappingCounters()
        self.dropped: list[dict[str, Any]] = []  # given up with no destination configured

    def enqueue(self, event: Any, source: str, ids: Sequence[str]) -> str:
        request_id = str(uuid.uuid4())
        self.items.append(AsyncItem(request_id, event, source, list(ids), self._clock.now()))
        return request_id

    def _give_up(self, item: AsyncItem, condition: str) -> None:
        record = async_failure_record(
            function_arn=self.function_arn,
            request_id=item.request_id,
            condition=condition,
            invoke_count=item.invocations,
            request_payload=item.event,
            last_error=item.last_error,
            now=self._clock.now(),
        )
        if self.destination_url:
            self.destination.send(record)
        else:
            self.dropped.append(record)
        self.counters.failure_records.append(record)
        self.counters.records_to_destination += 1

    def step(self, drain: bool, force: bool = False) -> bool:
        now = self._clock.now()
        for item in list(self.items):
            if item.next_at > now:
                continue
            self.items.remove(item)
            if now - item.enqueued_at > self.max_event_age_s:
                self._give_up(item, "EventAgeExceeded")
                return True
            inv = self._invoke(self.function, item.event, item.source, item.ids)
            item.invocations += 1
            self.counters.invocations += 1
            if inv.ok:
                self.counters.records_delivered += 1
                return True
            item.last_error = {**(inv.error or {}), "requestId": item.request_id}
            if item.invocations > self.max_retries:
                self._give_up(item, "RetriesExhausted")
                return True
            self.counters.records_retried += 1
            item.next_at = now + ASYNC_RETRY_DELAYS_S[item.invocations - 1]
            self.items.append(item)
            return True
        return False

    def flush(self) -> None:
        self.destination.flush()

    def due(self) -> Due:
        if not self.items:
            return Due(True)
        return Due(False, min(i.next_at for i in self.items))


class S3Notifications:
    """Moves S3 notifications from the internal queue into the functions' async queues."""

    def __init__(
        self,
        *,
        queue_url: str,
        configurations: dict[str, tuple[str, int]],
        queues: dict[str, AsyncQueue],
        sqs: Any,
        duplicate: bool = False,
    ) -> None:
        self.queue_url = queue_url
        self.configurations = configurations
        self.queues = queues
        self.duplicate = duplicate
        self._sqs = sqs
        self.delivered = 0

    def step(self) -> bool:
        did = False
        while True:
            msgs = self._sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
            if not msgs:
                return did
            for m in msgs:
                body = json.loads(m["Body"])
                for record in body.get("Records", []):  # s3:TestEvent has none
                    config = self.configurations.get(record["s3"]["configurationId"])
                    if config is None:
                        continue
                    function = config[0]
                    event = {"Records": [record]}
                    copies = 2 if self.duplicate else 1  # S3 delivers at least once
                    for _ in range(copies):
                        self.queues[function].enqueue(event, f"s3:{record['s3']['bucket']['name']}", [record["s3"]["object"]["key"]])
                        self.delivered += 1
                self._sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"])
                did = True

    def idle(self) -> bool:
        attrs = self._sqs.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"]) == 0


_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")


def rate_seconds(expression: str) -> float | None:
    """The period of an EventBridge ``rate()`` expression; None for ``cron()``."""
    m = _RATE.match(expression.strip())
    if not m:
        if expression.startswith("cron("):
            return None
        raise ValueError(f"not an EventBridge schedule expression: {expression!r}")
    unit = m.group(2).rstrip("s")
    return int(m.group(1)) * {"minute": 60, "hour": 3600, "day": 86400}[unit]
