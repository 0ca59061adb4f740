"""The local stack: moto plus every resource, function container and event-source mapping a
System declares.

    with LocalStack.start() as stack:          # SYSTEM, functions/ of this checkout
        stack.put_events(events)               # -> Kinesis, routed by event type
        stack.drain()                          # deliver until nothing is left anywhere
        print(stack.summary_rows())

``drain()`` runs the mappings in rounds (one thread per function, so functions overlap as
separate Lambda functions do) until every shard is caught up, every queue the runtime consumes is
empty and no retry is pending; waits (windows, backoff, async retry delays, visibility timeouts)
are skipped by advancing the runtime clock. ``run_forever()`` (the ``up`` command) runs the same
mappings on the wall clock.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.system import (
    SYSTEM,
    Function,
    KinesisTrigger,
    S3Trigger,
    ScheduleTrigger,
    SqsTrigger,
    System,
    function_env_keys,
    powertools_env,
)
from streamsense_local.clock import Clock
from streamsense_local.mappings import (
    AsyncQueue,
    KinesisMapping,
    KinesisReader,
    S3Notifications,
    SqsMapping,
    rate_seconds,
)
from streamsense_local.naming import Naming
from streamsense_local.processes import FunctionProcess, FunctionSpec, Invocation
from streamsense_local.provision import (
    S3_EVENTS_QUEUE,
    Provisioned,
    _sorted_dicts,
    bucket_notification_filters,
    clear_data,
    provision,
    read_back,
    s3_configuration_id,
)
from streamsense_local.server import MotoServer
from streamsense_local.shapes import scheduled_event

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_FUNCTIONS_DIR = REPO_ROOT / "functions"
#: PutRecords takes at most 500 records and 5 MiB a call.
PUT_RECORDS_MAX = 500
PUT_RECORDS_MAX_BYTES = 5 * 1024 * 1024

#: Variables the Lambda service itself sets in every sandbox (the subset that matters here).
LAMBDA_RUNTIME_ENV = (
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "LAMBDA_TASK_ROOT",
    "TZ",
    "LANG",
    "PATH",
)
#: What the local runtime adds: where AWS is, and that it is local.
LOCAL_ENV = ("AWS_ENDPOINT_URL", "STREAMSENSE_LOCAL")


class DrainTimeout(RuntimeError):
    pass


def wire_binary_to_bytes(av: Any) -> Any:
    """A wire-JSON AttributeValue with its binary (B, BS, at any depth) base64-decoded: what
    botocore hands TypeDeserializer."""
    if not isinstance(av, dict):
        return av
    out: dict[str, Any] = {}
    for kind, v in av.items():
        if kind == "B":
            out[kind] = base64.b64decode(v)
        elif kind == "BS":
            out[kind] = [base64.b64decode(x) for x in v]
        elif kind == "M":
            out[kind] = {k: wire_binary_to_bytes(x) for k, x in v.items()}
        elif kind == "L":
            out[kind] = [wire_binary_to_bytes(x) for x in v]
        else:
            out[kind] = v
    return out


class RawDynamoDB:
    """Scan over plain HTTP, answers kept as DynamoDB's wire JSON (see KinesisReader: the same
    reason, botocore's per-member parsing of large nested items)."""

    def __init__(self, endpoint: str, region: str, access_key: str) -> None:
        import urllib3

        self._pool = urllib3.PoolManager(maxsize=8)
        self._url = endpoint.rstrip("/") + "/"
        self._auth = (
            f"AWS4-HMAC-SHA256 Credential={access_key}/20240101/{region}/dynamodb/aws4_request, "
            "SignedHeaders=host, Signature=0"
        )

    def call(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        headers = {
            "X-Amz-Target": f"DynamoDB_20120810.{operation}",
            "Content-Type": "application/x-amz-json-1.0",
            "Authorization": self._auth,  # moto routes by the credential scope, never checks it
        }
        resp = self._pool.request("POST", self._url, body=json.dumps(body), headers=headers)
        if resp.status != 200:
            raise RuntimeError(f"DynamoDB {operation} failed: HTTP {resp.status}: {resp.data[:300]!r}")
        return json.loads(resp.data)  # type: ignore[no-any-return]

    def scan(self, table_name: str, **params: Any) -> list[dict[str, Any]]:
        body: dict[str, Any] = {"TableName": table_name, **params}
        items: list[dict[str, Any]] = []
        while True:
            resp = self.call("Scan", body)
            items.extend(resp.get("Items", []))
            if not resp.get("LastEvaluatedKey"):
                return items
            body["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    def put_all(self, table_name: str, items: Sequence[dict[str, Any]]) -> None:
        """Bulk-load items through the server's load endpoint (moto's put_item per item, no
        request per 25): restoring a saved run, not a path any function takes."""
        from streamsense_local.server import LOAD_PATH

        url = self._url.rstrip("/") + LOAD_PATH
        for i in range(0, len(items), 5_000):
            chunk = list(items[i : i + 5_000])
            resp = self._pool.request("POST", url, body=json.dumps({"table": table_name, "items": chunk}))
            if resp.status != 200 or int(resp.data) != len(chunk):
                raise RuntimeError(f"loading {table_name} failed: HTTP {resp.status}: {resp.data[:300]!r}")


@dataclass
class InvocationRecord:
    function: str
    source: str  # kinesis:<stream> | sqs:<queue> | s3:<bucket> | schedule | direct
    ids: list[str]  # sequence numbers, message ids, object keys
    ok: bool
    error_type: str | None
    response: Any
    cold: bool
    duration_ms: float
    at: float  # runtime clock when the invocation started
    event: Any = None  # the payload, when LocalStack.record_events is on


@dataclass
class FunctionStats:
    invocations: int = 0
    errors: int = 0
    cold_starts: int = 0
    init_ms: list[float] = field(default_factory=list)
    duration_ms: list[float] = field(default_factory=list)
    records_in: int = 0
    max_memory_mb: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)


class LocalStack:
    def __init__(
        self,
        system: System,
        *,
        functions_dir: Path,
        server_mode: str,
        duplicate_s3_notifications: bool,
        workdir: Path | None,
        log_level: str,
        record_history: bool,
    ) -> None:
        system.validate()
        self.system = system
        self.functions_dir = functions_dir
        self.naming = Naming()
        self.clock = Clock()
        self.log_level = log_level
        self.record_history = record_history
        self.record_events = False  # keep each invocation's payload in history (tests)
        self._own_workdir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="streamsense-local-")) if workdir is None else workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.server = MotoServer(server_mode, log_path=self.workdir / "moto.log")
        self.clock.on_change = self.server.set_clock_offset
        self.endpoint = self.server.url
        self._admin_env = {
            "aws_access_key_id": "streamsense-local-admin",
            "aws_secret_access_key": "streamsense-local-admin",
            "region_name": self.naming.region,
        }
        self._clients: dict[str, Any] = {}
        for service in ("kinesis", "dynamodb", "s3", "sqs", "iam", "sts"):
            self._clients[service] = self.client(service)
        self._raw_dynamodb = RawDynamoDB(self.endpoint, self.naming.region, self._admin_env["aws_access_key_id"])
        self._lock = threading.Lock()
        self.history: list[InvocationRecord] = []
        self.stats: dict[str, FunctionStats] = {fn.name: FunctionStats() for fn in system.functions}
        self.processes: dict[str, FunctionProcess] = {}
        self.duplicate_s3_notifications = duplicate_s3_notifications
        self._build()

    # ---- construction -------------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        system: System | None = None,
        *,
        functions_dir: Path | str | None = None,
        server_mode: str = "process",
        duplicate_s3_notifications: bool = False,
        workdir: Path | str | None = None,
        log_level: str = "INFO",
        record_history: bool = True,
    ) -> LocalStack:
        """Start moto, create every declared resource, and prepare (not yet start) the function
        containers; ``functions_dir`` holds ``<function>/handler.py`` (default: functions/)."""
        return cls(
            system or SYSTEM,
            functions_dir=Path(functions_dir).resolve() if functions_dir else DEFAULT_FUNCTIONS_DIR,
            server_mode=server_mode,
            duplicate_s3_notifications=duplicate_s3_notifications,
            workdir=Path(workdir) if workdir else None,
            log_level=log_level,
            record_history=record_history,
        )

    def client(self, service: str) -> Any:
        import boto3
        from botocore.config import Config

        make: Any = boto3.client  # typed overloads want a literal service name
        return make(
            service,
            endpoint_url=self.endpoint,
            config=Config(retries={"max_attempts": 2, "mode": "standard"}, max_pool_connections=32),
            **self._admin_env,
        )

    def _build(self) -> None:
        self.provisioned: Provisioned = provision(self.system, self.naming, self._clients)
        for fn in self.system.functions:
            spec = self._spec(fn)
            old = self.processes.get(fn.name)
            if old is not None and dict(old.spec.env) == dict(spec.env):
                continue  # keep the warm container across reset()
            if old is not None:
                old.stop()
            self.processes[fn.name] = FunctionProcess(spec, self.naming, self.workdir)
        self._build_mappings()

    def _build_mappings(self) -> None:
        sqs, kinesis = self._clients["sqs"], self._clients["kinesis"]
        reader = KinesisReader(self.endpoint, self.naming.region)
        self.kinesis_mappings: list[KinesisMapping] = []
        self.sqs_mappings: list[SqsMapping] = []
        self.async_queues: dict[str, AsyncQueue] = {}
        self.schedules: list[tuple[Function, int, ScheduleTrigger]] = []
        for fn in self.system.functions:
            s3_triggers = [t for t in fn.triggers if isinstance(t, S3Trigger)]
            # A function has one asynchronous-invoke configuration; S3Trigger carries it.
            if len({(t.max_retries, t.max_event_age_s, t.on_failure) for t in s3_triggers}) > 1:
                raise ValueError(f"{fn.name}: S3 triggers disagree on retries/age/destination")
            cfg = s3_triggers[0] if s3_triggers else None
            self.async_queues[fn.name] = AsyncQueue(
                function=fn.name,
                function_arn=self.naming.function_arn(fn.name),
                max_retries=cfg.max_retries if cfg else 2,
                max_event_age_s=cfg.max_event_age_s if cfg else 6 * 3600,
                destination_url=self.provisioned.queue_urls[cfg.on_failure] if cfg else None,
                sqs=sqs,
                clock=self.clock,
                invoke=self._invoke,
            )
            for index, trigger in enumerate(fn.triggers):
                if isinstance(trigger, KinesisTrigger):
                    self.kinesis_mappings.append(
                        KinesisMapping(
                            function=fn.name,
                            trigger=trigger,
                            stream_physical=self.naming.physical("stream", trigger.stream),
                            stream_arn=self.naming.arn("stream", trigger.stream),
                            function_arn=self.naming.function_arn(fn.name),
                            role_arn=self.naming.role_arn(fn.name),
                            region=self.naming.region,
                            destination_url=self.provisioned.queue_urls[trigger.on_failure],
                            kinesis=kinesis,
                            reader=reader,
                            sqs=sqs,
                            clock=self.clock,
                            invoke=self._invoke,
                        )
                    )
                elif isinstance(trigger, SqsTrigger):
                    queue = next(q for q in self.system.queues if q.name == trigger.queue)
                    self.sqs_mappings.append(
                        SqsMapping(
                            function=fn.name,
                            trigger=trigger,
                            queue_url=self.provisioned.queue_urls[trigger.queue],
                            queue_arn=self.naming.arn("queue", trigger.queue),
                            visibility_timeout_s=queue.visibility_timeout_s,
                            region=self.naming.region,
                            sqs=sqs,
                            clock=self.clock,
                            invoke=self._invoke,
                        )
                    )
                elif isinstance(trigger, ScheduleTrigger):
                    self.schedules.append((fn, index, trigger))
        self.s3_notifications = S3Notifications(
            queue_url=self.provisioned.internal_queue_urls[S3_EVENTS_QUEUE],
            configurations=self.provisioned.s3_configurations,
            queues=self.async_queues,
            sqs=sqs,
            duplicate=self.duplicate_s3_notifications,
        )

    def _spec(self, fn: Function) -> FunctionSpec:
        configured: dict[str, str] = {}
        for var, (kind, name) in function_env_keys(self.system, fn).items():
            configured[var] = self.provisioned.queue_urls[name] if kind == "queue" else self.naming.physical(kind, name)
        configured.update(powertools_env(fn, self.log_level))
        configured.update(fn.environment)
        code_dir = self.functions_dir / fn.name
        name = self.naming.function_name(fn.name)
        env = {
            **configured,
            **self.provisioned.credentials[fn.name],
            "AWS_REGION": self.naming.region,
            "AWS_DEFAULT_REGION": self.naming.region,
            "AWS_LAMBDA_FUNCTION_NAME": name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"local/[$LATEST]{fn.name}",
            "LAMBDA_TASK_ROOT": str(code_dir),
            "TZ": ":UTC",
            # Lambda sets en_US.UTF-8; C.UTF-8 is the UTF-8 locale every Linux has.
            "LANG": "C.UTF-8",
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "AWS_ENDPOINT_URL": self.endpoint,
            "STREAMSENSE_LOCAL": "1",
        }
        return FunctionSpec(
            name=fn.name,
            code_dir=code_dir,
            env=env,
            configured_env=configured,
            policy=self.provisioned.policies[fn.name],
            timeout_s=fn.timeout_s,
            memory_mb=fn.memory_mb,
        )

    # ---- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> LocalStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def owns_workdir(self) -> bool:
        """True when the workdir is a temporary folder removed on close (no --workdir given)."""
        return self._own_workdir

    def close(self) -> None:
        # Containers exit on their own once their pipe closes; stopping them one after the
        # other waited for each interpreter's shutdown in turn.
        with ThreadPoolExecutor(max_workers=max(1, len(self.processes))) as pool:
            list(pool.map(lambda proc: proc.stop(), self.processes.values()))
        self.server.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def reset(self) -> None:
        """Back to a freshly provisioned stack (empty tables, buckets, queues and streams, new
        mappings, zeroed stats) while the function containers stay warm."""
        clear_data(self.system, self.naming, self._clients, self.provisioned)
        self.history.clear()
        self.stats = {fn.name: FunctionStats() for fn in self.system.functions}
        self._build_mappings()

    def set_duplicate_s3_notifications(self, on: bool) -> None:
        """S3 may deliver a notification more than once: with this on, every one is delivered twice."""
        self.duplicate_s3_notifications = on
        self.s3_notifications.duplicate = on

    def warm(self, functions: Iterable[str] | None = None) -> dict[str, float]:
        """Start containers (in parallel) and return each one's init time in ms."""
        names = list(functions) if functions is not None else [fn.name for fn in self.system.functions]
        with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
            list(pool.map(lambda n: self.processes[n].start(), names))
        return {n: self.processes[n].init_ms[-1] for n in names}

    # ---- addresses ----------------------------------------------------------------------------

    def physical(self, kind: str, name: str) -> str:
        return self.naming.physical(kind, name)

    def queue_url(self, name: str) -> str:
        return self.provisioned.queue_urls[name]

    def env_exports(self) -> dict[str, str]:
        """What a shell needs so boto3 and the aws CLI talk to this stack."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": self.naming.region,
            "AWS_DEFAULT_REGION": self.naming.region,
            "AWS_ACCESS_KEY_ID": self._admin_env["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": self._admin_env["aws_secret_access_key"],
        }

    def function_env(self, function: str) -> dict[str, str]:
        return dict(self.processes[function].spec.env)

    # ---- producing ----------------------------------------------------------------------------

    def put_records(self, stream: str, records: Sequence[tuple[bytes, str]]) -> list[tuple[str, str]]:
        """PutRecords in batches of <= 500 records / 5 MiB, retrying failed entries; returns
        (shard id, sequence number) per record in input order."""
        kinesis = self._clients["kinesis"]
        name = self.physical("stream", stream)
        out: list[tuple[str, str] | None] = [None] * len(records)
        start = 0
        while start < len(records):
            end, size = start, 0
            while end < len(records) and end - start < PUT_RECORDS_MAX:
                size += len(records[end][0]) + len(records[end][1])
                if end > start and size > PUT_RECORDS_MAX_BYTES:
                    break
                end += 1
            pending = list(range(start, end))
            for _attempt in range(10):
                resp = kinesis.put_records(
                    StreamName=name, Records=[{"Data": records[i][0], "PartitionKey": records[i][1]} for i in pending]
                )
                retry = []
                for i, entry in zip(pending, resp["Records"], strict=True):
                    if entry.get("ErrorCode"):
                        retry.append(i)
                    else:
                        out[i] = (entry["ShardId"], entry["SequenceNumber"])
                pending = retry
                if not pending:
                    break
                time.sleep(0.05)
            if pending:
                raise RuntimeError(f"PutRecords kept failing for {len(pending)} records")
            start = end
        return [o for o in out if o is not None]

    def route(self, event: Any, default_stream: str | None = None) -> str:
        """The stream an event goes to: by its type (System.stream_for); records that are not
        events at all go to ``default_stream`` (else ``activity``) so they get quarantined."""
        kind = event.get("type") if isinstance(event, dict) else None
        if isinstance(kind, str):
            try:
                return self.system.stream_for(kind).name
            except KeyError:
                pass
        if default_stream:
            return default_stream
        names = [s.name for s in self.system.streams]
        return "activity" if "activity" in names else names[0]

    def put_events(self, events: Iterable[Any], *, stream: str | None = None) -> dict[str, int]:
        """Write events (dicts, or raw bytes/str lines) to Kinesis: partition key = account_id,
        stream by event type unless ``stream`` is given. Returns records per stream."""
        per_stream: dict[str, list[tuple[bytes, str]]] = {}
        for item in events:
            if isinstance(item, bytes | str):
                raw = item.encode() if isinstance(item, str) else item
                try:
                    parsed: Any = json.loads(raw)
                except (UnicodeDecodeError, json.JSONDecodeError):
                    parsed = None
            else:
                parsed, raw = item, json.dumps(item, separators=(",", ":")).encode()
            account = parsed.get("account_id") if isinstance(parsed, dict) else None
            key = account if isinstance(account, str) and account else base64.b32encode(raw[:32]).decode()[:32] or "empty"
            target = stream or self.route(parsed)
            per_stream.setdefault(target, []).append((raw, key))
        for name, records in per_stream.items():
            self.put_records(name, records)
        return {k: len(v) for k, v in per_stream.items()}

    def put_object(self, bucket: str, key: str, body: bytes) -> None:
        self._clients["s3"].put_object(Bucket=self.physical("bucket", bucket), Key=key, Body=body)

    def send_messages(self, queue: str, bodies: Sequence[str]) -> None:
        sqs = self._clients["sqs"]
        for i in range(0, len(bodies), 10):
            sqs.send_message_batch(
                QueueUrl=self.queue_url(queue),
                Entries=[{"Id": str(j), "MessageBody": b} for j, b in enumerate(bodies[i : i + 10])],
            )

    def tick(self, function: str) -> str:
        """Fire the function's schedule now (EventBridge invokes asynchronously); returns the
        request id. The event is delivered by drain()/run_forever()."""
        fn = self.system.function(function)
        for index, trigger in enumerate(fn.triggers):
            if isinstance(trigger, ScheduleTrigger):
                event = scheduled_event(self.naming.rule_arn(fn.name, index), self.naming.region, self.naming.account, self.clock.now())
                return self.async_queues[fn.name].enqueue(event, "schedule", [trigger.expression])
        raise ValueError(f"{function} has no schedule trigger")

    # ---- invoking -----------------------------------------------------------------------------

    def _invoke(self, function: str, event: Any, source: str, ids: Sequence[str]) -> Invocation:
        at = self.clock.now()
        inv = self.processes[function].invoke(event)
        with self._lock:
            st = self.stats[function]
            st.invocations += 1
            st.errors += 0 if inv.ok else 1
            st.records_in += len(ids)
            st.duration_ms.append(inv.duration_ms)
            st.max_memory_mb = max(st.max_memory_mb, inv.max_memory_mb)
            if inv.cold:
                st.cold_starts += 1
                if inv.init_ms is not None:
                    st.init_ms.append(inv.init_ms)
            for k, v in inv.metrics.items():
                st.metrics[k] = st.metrics.get(k, 0.0) + v
            if self.record_history:
                self.history.append(
                    InvocationRecord(
                        function, source, list(ids), inv.ok, inv.error_type, inv.response, inv.cold, inv.duration_ms,
                        at, event if self.record_events else None,
                    )
                )
        return inv

    def invoke(self, function: str, event: Any) -> Invocation:
        """One synchronous invoke with this payload (``sam local invoke``): no retries."""
        self.system.function(function)
        ids = [str(r.get("eventID") or r.get("messageId") or r.get("s3", {}).get("object", {}).get("key", "")) for r in event.get("Records", [])] if isinstance(event, dict) else []
        return self._invoke(function, event, "direct", ids)

    # ---- running the mappings -----------------------------------------------------------------

    def _function_round(self, function: str, drain: bool, stop: threading.Event | None, force: bool = False) -> bool:
        mappings: list[Any] = [m for m in self.kinesis_mappings if m.function == function]
        mappings += [m for m in self.sqs_mappings if m.function == function]
        mappings.append(self.async_queues[function])
        did_any = False
        try:
            while stop is None or not stop.is_set():
                did = False
                for m in mappings:
                    did = m.step(drain, force) or did
                force = False
                if not did:
                    return did_any
                did_any = True
            return did_any
        finally:
            for m in mappings:
                m.flush()

    def _round(
        self,
        pool: ThreadPoolExecutor,
        drain: bool,
        stop: threading.Event | None = None,
        on_progress: Callable[[], None] | None = None,
        force: bool = False,
    ) -> bool:
        did = self.s3_notifications.step()
        futures = [pool.submit(self._function_round, fn.name, drain, stop, force) for fn in self.system.functions]
        while True:
            _, running = wait(futures, timeout=0.5)
            if on_progress:
                on_progress()
            if not running:
                break
        for f in futures:
            did = f.result() or did
        return did

    def _next_due(self) -> tuple[bool, float | None]:
        """(idle, earliest due time) over every mapping and queue."""
        idle = self.s3_notifications.idle()
        times: list[float] = []
        mappings: list[Any] = [*self.kinesis_mappings, *self.sqs_mappings, *self.async_queues.values()]
        for m in mappings:
            due = m.due()
            if not due.idle:
                idle = False
                if due.at is not None:
                    times.append(due.at)
        return idle, (min(times) if times else None)

    def drain(self, timeout_s: float = 600.0, on_progress: Callable[[], None] | None = None) -> None:
        """Deliver everything that is pending, skipping waits by advancing the clock."""
        stop = threading.Event()
        with ThreadPoolExecutor(max_workers=len(self.system.functions), thread_name_prefix="fn") as pool:
            try:
                self._drain_rounds(pool, timeout_s, stop, on_progress)
            except BaseException:
                stop.set()  # e.g. Ctrl-C: running invocations finish, no new batch starts
                raise

    def _drain_rounds(
        self,
        pool: ThreadPoolExecutor,
        timeout_s: float,
        stop: threading.Event,
        on_progress: Callable[[], None] | None,
    ) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            if time.monotonic() > deadline:
                raise DrainTimeout(f"drain did not finish in {timeout_s:g} s: {self.pending()}")
            did = self._round(pool, drain=True, stop=stop, on_progress=on_progress)
            if did:
                continue
            idle, at = self._next_due()
            if idle and self._round(pool, drain=True, stop=stop, on_progress=on_progress, force=True):
                continue  # the last look at every shard found more
            if idle:
                # Shards that waited out retries on their own timeline are ahead of the
                # shared clock: bring the clock (and moto's) up to the furthest one.
                lag = max((m.max_lag() for m in self.kinesis_mappings), default=0.0)
                if lag > 0:
                    self.clock.advance(lag)
                for m in self.kinesis_mappings:
                    m.clear_lag()
                return
            if at is None:
                time.sleep(0.05)  # e.g. SQS messages in flight elsewhere
            else:
                self.clock.advance_to(at)

    def run_forever(self, stop: threading.Event, on_progress: Callable[[], None] | None = None, poll_s: float = 0.5) -> None:
        """The ``up`` loop: real time, windows honoured, schedules fired on their rate."""
        next_fire: dict[tuple[str, int], float] = {}
        for fn, index, trigger in self.schedules:
            period = rate_seconds(trigger.expression)
            if period is not None:
                next_fire[(fn.name, index)] = self.clock.now() + period
        with ThreadPoolExecutor(max_workers=len(self.system.functions), thread_name_prefix="fn") as pool:
            while not stop.is_set():
                now = self.clock.now()
                for fn, index, trigger in self.schedules:
                    due = next_fire.get((fn.name, index))
                    if due is not None and now >= due:
                        self.tick(fn.name)
                        next_fire[(fn.name, index)] = due + (rate_seconds(trigger.expression) or 0)
                did = self._round(pool, drain=False, stop=stop, on_progress=on_progress)
                if not did:
                    stop.wait(poll_s)

    def pending(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for m in self.kinesis_mappings:
            for sh in m.shards:
                if sh.work or sh.buffer or not sh.caught_up:
                    out[f"{m.function}<-{m.source}/{sh.shard_id}"] = {"batches": len(sh.work), "buffered": len(sh.buffer)}
        for q in self.async_queues.values():
            if q.items:
                out[f"{q.function}<-async"] = len(q.items)
        return out

    # ---- reading state ------------------------------------------------------------------------

    def receive_all(self, queue: str, *, delete: bool = True) -> list[str]:
        """Every message body in a queue (consumed unless ``delete=False``)."""
        sqs = self._clients["sqs"]
        url = self.queue_url(queue)
        bodies: list[str] = []
        while True:
            msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=30).get("Messages", [])
            if not msgs:
                break
            for m in msgs:
                bodies.append(m["Body"])
                if delete:
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        return bodies

    def scan_raw(self, table: str, **params: Any) -> list[dict[str, Any]]:
        """Every item of a table (all pages of Scan with ``params``) in DynamoDB's wire JSON
        (binary as base64), as moto sent it: no botocore parsing, which costs more than the
        scan itself for tables of nested items."""
        return self._raw_dynamodb.scan(self.physical("table", table), **params)

    def batch_write_raw(self, table: str, items: Sequence[dict[str, Any]]) -> None:
        """Put items given in DynamoDB's wire JSON straight into the local table (bulk load)."""
        self._raw_dynamodb.put_all(self.physical("table", table), items)

    def scan(self, table: str) -> list[dict[str, Any]]:
        from boto3.dynamodb.types import TypeDeserializer
        from streamsense.storage import from_dynamo_value

        de = TypeDeserializer()
        items = [
            {k: from_dynamo_value(de.deserialize(wire_binary_to_bytes(v))) for k, v in raw.items()}
            for raw in self.scan_raw(table)
        ]
        return sorted(items, key=lambda i: (str(i.get("pk")), str(i.get("sk"))))

    def objects(self, bucket: str) -> dict[str, dict[str, Any]]:
        """Current objects: key -> {size, etag}."""
        s3 = self._clients["s3"]
        out: dict[str, dict[str, Any]] = {}
        kwargs: dict[str, Any] = {"Bucket": self.physical("bucket", bucket)}
        while True:
            resp = s3.list_objects_v2(**kwargs)
            for o in resp.get("Contents", []):
                out[o["Key"]] = {"size": o["Size"], "etag": o["ETag"].strip('"')}
            if not resp.get("IsTruncated"):
                return out
            kwargs["ContinuationToken"] = resp["NextContinuationToken"]

    def get_object(self, bucket: str, key: str) -> bytes:
        return self._clients["s3"].get_object(Bucket=self.physical("bucket", bucket), Key=key)["Body"].read()  # type: ignore[no-any-return]

    def describe(self) -> dict[str, Any]:
        """The provisioned stack, read back from moto and from the mappings, by logical name (the
        shape of infra.normalize.from_system)."""
        out = read_back(self.system, self.naming, self._clients, self.provisioned.queue_urls)
        s3 = self._clients["s3"]
        filters: dict[str, dict[str, str]] = {}
        for bucket in self.system.buckets:
            filters.update(bucket_notification_filters(s3, self.physical("bucket", bucket.name)))
        functions: dict[str, Any] = {}
        for fn in self.system.functions:
            triggers: list[dict[str, Any]] = [m.describe() for m in self.kinesis_mappings if m.function == fn.name]
            triggers += [m.describe() for m in self.sqs_mappings if m.function == fn.name]
            aq = self.async_queues[fn.name]
            dest_by_url = {url: name for name, url in self.provisioned.queue_urls.items()}
            for index, trigger in enumerate(fn.triggers):
                if isinstance(trigger, S3Trigger):
                    flt = filters[s3_configuration_id(fn, index)]
                    triggers.append(
                        {
                            "kind": "s3",
                            "bucket": trigger.bucket,
                            "prefix": flt["prefix"],
                            "suffix": flt["suffix"],
                            "max_retries": aq.max_retries,
                            "max_event_age_s": aq.max_event_age_s,
                            "on_failure": dest_by_url.get(aq.destination_url or ""),
                        }
                    )
            triggers += [{"kind": "schedule", "expression": t.expression} for f, _, t in self.schedules if f.name == fn.name]
            spec = self.processes[fn.name].spec
            functions[fn.name] = {
                "memory_mb": spec.memory_mb,
                "timeout_s": spec.timeout_s,
                "env_keys": sorted(spec.configured_env),
                "triggers": _sorted_dicts(triggers),
            }
        out["functions"] = functions
        return out

    # ---- reporting ----------------------------------------------------------------------------

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds so far per process of the stack: each function's containers, moto's
        server (process mode) and this runtime process (its threads: mappings, pollers, and
        the report when it runs here). On a shared machine these say what the run cost, where
        wall times say how busy the machine was."""
        import resource

        out = {name: round(proc.cpu_s(), 1) for name, proc in self.processes.items()}
        server = self.server.cpu_s()
        if server is not None:
            out["moto_server"] = round(server, 1)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        out["runtime"] = round(usage.ru_utime + usage.ru_stime, 1)
        return out

    def summary_rows(self) -> list[dict[str, Any]]:
        """One row per function: invocations, errors, cold starts and init, records in, the
        pipeline's EMF counts, records given up to the on-failure destination, durations."""
        to_destination: dict[str, int] = {}
        given_up: list[Any] = [*self.kinesis_mappings, *self.async_queues.values()]
        for m in given_up:
            to_destination[m.function] = to_destination.get(m.function, 0) + m.counters.records_to_destination
        rows = []
        for fn in self.system.functions:
            st = self.stats[fn.name]
            d = sorted(st.duration_ms)
            rows.append(
                {
                    "function": fn.name,
                    "invocations": st.invocations,
                    "errors": st.errors,
                    "cold_starts": st.cold_starts,
                    "init_ms": round(max(st.init_ms), 1) if st.init_ms else None,
                    "records_in": st.records_in,
                    # An S3-triggered function applies objects (a whole export each), a stream
                    # or queue consumer applies records.
                    "applied": int(st.metrics.get("EventsApplied", 0) + st.metrics.get("ObjectsApplied", 0)),
                    "quarantined": int(
                        st.metrics.get("EventsQuarantined", 0) + st.metrics.get("RowsQuarantined", 0) + st.metrics.get("ObjectsRejected", 0)
                    ),
                    "skipped": int(st.metrics.get("EventsSkipped", 0)),
                    "retried": int(st.metrics.get("EventsRetried", 0)),
                    "to_on_failure": to_destination.get(fn.name, 0),
                    "p50_ms": round(d[len(d) // 2], 1) if d else None,
                    "max_ms": round(d[-1], 1) if d else None,
                    "max_memory_mb": round(st.max_memory_mb),
                }
            )
        return rows


__all__ = ["LAMBDA_RUNTIME_ENV", "LOCAL_ENV", "DrainTimeout", "FunctionStats", "InvocationRecord", "LocalStack"]
