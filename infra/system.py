"""The one description of streamsense: every stream, table, bucket, queue and function, with its
triggers, event-source settings, environment and the resources it may read or write.

Both the CDK stack (infra/stack.py) and the local runtime (local/streamsense_local) are built
from ``SYSTEM`` and nothing else, and tests/infra proves that the synthesized template and the
local stack agree. Plain Python, no CDK import: the local runtime loads it without node.

Environment contract: a function gets one variable per resource it declared access to,
``<KIND>_<NAME>`` in upper case (``TABLE_DECISIONS``, ``BUCKET_MODELS``, ``QUEUE_QUARANTINE``
holding the queue URL, ``STREAM_ACTIVITY``), plus Powertools' settings and its own ``environment``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Mode = Literal["read", "write", "readwrite"]
Architecture = Literal["x86_64", "arm64"]


# ---- resources -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Stream:
    name: str
    description: str
    event_types: frozenset[str]  # which event types producers write to this stream
    shards: int = 1  # provisioned shard count per stage is overridable in CDK context
    retention_hours: int = 24


@dataclass(frozen=True)
class Table:
    """Every table is keyed by string ``pk`` (partition) and ``sk`` (sort); personal state
    carries a TTL in ``expires_at`` (epoch seconds)."""

    name: str
    description: str
    ttl_attribute: str | None = "expires_at"


@dataclass(frozen=True)
class Bucket:
    name: str
    description: str
    versioned: bool = True
    expire_after_days: int | None = None  # lifecycle: current objects expire after N days
    noncurrent_expire_days: int = 30


@dataclass(frozen=True)
class Queue:
    name: str
    description: str
    visibility_timeout_s: int = 60
    retention_s: int = 4 * 24 * 3600
    dead_letter_queue: str | None = None
    max_receive_count: int = 3


# ---- triggers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class KinesisTrigger:
    """A Kinesis event-source mapping with Lambda's reliability settings."""

    stream: str
    batch_size: int = 100
    batching_window_s: int = 1
    starting_position: Literal["TRIM_HORIZON", "LATEST"] = "TRIM_HORIZON"
    bisect_on_error: bool = True
    max_retries: int = 3
    max_record_age_s: int = 6 * 3600
    parallelization_factor: int = 1
    report_batch_item_failures: bool = True
    on_failure: str = "failures"  # queue that receives the shard + sequence range of given-up batches


@dataclass(frozen=True)
class S3Trigger:
    """S3 ObjectCreated notifications, invoked asynchronously with Lambda's retries."""

    bucket: str
    prefix: str
    suffix: str = ""
    max_retries: int = 2  # Lambda async: 0..2
    max_event_age_s: int = 6 * 3600
    on_failure: str = "failures"

    def matches(self, bucket: str, key: str) -> bool:
        """Whether an object created at bucket/key passes this notification's filter."""
        return bucket == self.bucket and key.startswith(self.prefix) and key.endswith(self.suffix)


@dataclass(frozen=True)
class SqsTrigger:
    queue: str
    batch_size: int = 10
    batching_window_s: int = 0
    report_batch_item_failures: bool = True


@dataclass(frozen=True)
class ScheduleTrigger:
    """An EventBridge schedule (e.g. the cache fill-window boundary)."""

    expression: str
    description: str = ""


Trigger = KinesisTrigger | S3Trigger | SqsTrigger | ScheduleTrigger


@dataclass(frozen=True)
class Access:
    resource: str  # the name of a stream, table, bucket or queue
    mode: Mode
    prefix: str | None = None  # buckets only: restrict object access to this key prefix


@dataclass(frozen=True)
class Function:
    name: str  # folder functions/<name>/, handler "handler.lambda_handler"
    description: str
    triggers: tuple[Trigger, ...]
    access: tuple[Access, ...]
    memory_mb: int = 512
    timeout_s: int = 60
    architecture: Architecture = "x86_64"
    layers: tuple[Literal["ml", "shared", "model"], ...] = ("ml", "shared")
    environment: dict[str, str] = field(default_factory=dict)
    reserved_concurrency: int | None = None


@dataclass(frozen=True)
class System:
    name: str
    streams: tuple[Stream, ...]
    tables: tuple[Table, ...]
    buckets: tuple[Bucket, ...]
    queues: tuple[Queue, ...]
    functions: tuple[Function, ...]

    def resource_kind(self, name: str) -> Literal["stream", "table", "bucket", "queue"]:
        for kind, group in (
            ("stream", self.streams),
            ("table", self.tables),
            ("bucket", self.buckets),
            ("queue", self.queues),
        ):
            if any(r.name == name for r in group):
                return kind  # type: ignore[return-value]
        raise KeyError(f"no resource named {name!r}")

    def stream_for(self, event_type: str) -> Stream:
        """The stream producers write an event type to (partition key = account_id)."""
        for stream in self.streams:
            if event_type in stream.event_types:
                return stream
        raise KeyError(f"no stream carries event type {event_type!r}")

    def function(self, name: str) -> Function:
        for fn in self.functions:
            if fn.name == name:
                return fn
        raise KeyError(f"no function named {name!r}: choose from {', '.join(f.name for f in self.functions)}")

    def only(self, name: str, *functions: str) -> System:
        """The part of the system a few functions need (their triggers, on-failure queues,
        declared access, and those queues' dead-letter queues): a smaller stack for tests."""
        fns = tuple(self.function(f) for f in functions)
        used: set[str] = set()
        for fn in fns:
            used |= {a.resource for a in fn.access}
            for t in fn.triggers:
                used |= {getattr(t, attr) for attr in ("stream", "bucket", "queue", "on_failure") if hasattr(t, attr)}
        used |= {q.dead_letter_queue for q in self.queues if q.name in used and q.dead_letter_queue}
        return System(
            name=name,
            streams=tuple(r for r in self.streams if r.name in used),
            tables=tuple(r for r in self.tables if r.name in used),
            buckets=tuple(r for r in self.buckets if r.name in used),
            queues=tuple(r for r in self.queues if r.name in used),
            functions=fns,
        )

    def validate(self) -> None:
        """Fail fast on a description that cannot be built (dangling names, duplicates)."""
        names = [r.name for g in (self.streams, self.tables, self.buckets, self.queues) for r in g]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"resource names must be unique across kinds: {sorted(dupes)}")
        for q in self.queues:
            if q.dead_letter_queue:
                self.resource_kind(q.dead_letter_queue)
        for fn in self.functions:
            for a in fn.access:
                self.resource_kind(a.resource)
            for t in fn.triggers:
                target = {
                    KinesisTrigger: lambda t: t.stream,
                    S3Trigger: lambda t: t.bucket,
                    SqsTrigger: lambda t: t.queue,
                }.get(type(t))
                if target is not None:
                    self.resource_kind(target(t))
                if isinstance(t, KinesisTrigger | S3Trigger):
                    self.resource_kind(t.on_failure)


def env_var(kind: str, name: str) -> str:
    """The environment variable that carries a resource's physical name (URL for queues)."""
    return f"{kind.upper()}_{name.upper().replace('-', '_')}"


def function_env_keys(system: System, fn: Function) -> dict[str, tuple[str, str]]:
    """env var -> (kind, resource name) for every resource the function declared."""
    keys: dict[str, tuple[str, str]] = {}
    for a in fn.access:
        kind = system.resource_kind(a.resource)
        keys[env_var(kind, a.resource)] = (kind, a.resource)
    return keys


def powertools_env(fn: Function, log_level: str = "INFO") -> dict[str, str]:
    return {
        "POWERTOOLS_SERVICE_NAME": fn.name,
        "POWERTOOLS_METRICS_NAMESPACE": "streamsense",
        "POWERTOOLS_LOG_LEVEL": log_level,
        "POWERTOOLS_LOGGER_LOG_EVENT": "false",
    }


# ---- the system ---------------------------------------------------------------------------

_Q = Access("quarantine", "write")

SYSTEM = System(
    name="streamsense",
    streams=(
        Stream(
            "activity",
            "sign-ups, logins, account changes, payments and delayed fraud labels",
            frozenset({"signup", "login", "account_change", "payment", "label"}),
        ),
        Stream(
            "playback",
            "playback start/heartbeat/stop with QoE telemetry, and artwork impressions",
            frozenset({"playback_start", "playback_heartbeat", "playback_stop", "impression"}),
            shards=2,
        ),
    ),
    tables=(
        Table("fraud_state", "streaming fraud features per entity (account, card, merchant, IP /24, ASN, device)"),
        Table("decisions", "fraud decisions with reasons and model version, per account"),
        Table("cases", "investigation cases: timeline, linked accounts, recommended action"),
        Table("recs", "per member top-N and delivery defaults; per region trending; per title similar"),
        Table("cache", "per region demand per title in windows; cache hints per site and window"),
        Table("qoe", "throughput sketches and ABR hints per segment (region x network x device)"),
        Table("content", "artwork/trailer variant bandit statistics and per-title variant choices"),
    ),
    buckets=(
        Bucket("exports", "nightly drops: viewing-history/ and fraud-labels/ exports", expire_after_days=90),
        Bucket("models", "versioned model store: <model>/<version>/ artifacts + manifest.json"),
        Bucket("hints", "cache-fill hint documents per site and window", expire_after_days=30),
    ),
    queues=(
        Queue("quarantine", "bad input records with the original payload and the reason", retention_s=14 * 24 * 3600),
        Queue("failures", "on-failure destination: batches and async invokes that exhausted retries", retention_s=14 * 24 * 3600),
        # Visibility >= 6x the consumer's timeout (AWS's guidance for SQS event sources).
        Queue("investigations", "review/block decisions to investigate", visibility_timeout_s=360, dead_letter_queue="investigations_dlq"),
        Queue("investigations_dlq", "investigation messages that failed max_receive_count times", retention_s=14 * 24 * 3600),
    ),
    functions=(
        Function(
            "fraud_scorer",
            "scores sign-ups, logins, account changes, payments and playback starts; applies delayed labels",
            triggers=(
                KinesisTrigger("activity", batch_size=500, batching_window_s=1),
                KinesisTrigger("playback", batch_size=500, batching_window_s=1),
            ),
            access=(
                Access("fraud_state", "readwrite"),
                Access("decisions", "readwrite"),
                Access("investigations", "write"),
                Access("models", "read", prefix="fraud/"),
                _Q,
            ),
            memory_mb=1024,
            timeout_s=60,
            layers=("ml", "shared", "model"),
        ),
        Function(
            "fraud_trainer",
            "retrains the fraud model from a labeled-history export and stores it as a candidate (shadow) version",
            triggers=(S3Trigger("exports", prefix="fraud-labels/"),),
            access=(
                Access("exports", "read", prefix="fraud-labels/"),
                Access("models", "readwrite", prefix="fraud/"),
                _Q,
            ),
            memory_mb=3008,
            timeout_s=900,
        ),
        Function(
            "investigation",
            "opens a case for each review/block decision: timeline, linked accounts, recommended action",
            triggers=(SqsTrigger("investigations", batch_size=10),),
            access=(
                Access("decisions", "read"),
                Access("fraud_state", "read"),
                Access("cases", "readwrite"),
                Access("activity", "write"),  # analyst verdicts go back as label events
                _Q,
            ),
            memory_mb=512,
            timeout_s=60,
        ),
        Function(
            "recs_trainer",
            "retrains the recommender from a viewing-history export and publishes a model version",
            triggers=(S3Trigger("exports", prefix="viewing-history/"),),
            access=(
                Access("exports", "read", prefix="viewing-history/"),
                Access("models", "readwrite", prefix="recs/"),
                Access("recs", "readwrite"),
                _Q,
            ),
            memory_mb=3008,
            timeout_s=900,
        ),
        Function(
            "recs_realtime",
            "folds each member's new plays into their ranked list within seconds",
            triggers=(KinesisTrigger("playback", batch_size=200, batching_window_s=1),),
            access=(Access("recs", "readwrite"), Access("models", "read", prefix="recs/"), _Q),
            memory_mb=1024,
            timeout_s=60,
        ),
        Function(
            "delivery_prefs",
            "learns each member's audio language and subtitle defaults from what they pick",
            triggers=(KinesisTrigger("playback", batch_size=500, batching_window_s=2),),
            # title languages and dubs: the newest catalogue export
            access=(Access("recs", "readwrite"), Access("exports", "read", prefix="catalogue/"), _Q),
            memory_mb=256,
            timeout_s=60,
            layers=("shared",),
        ),
        Function(
            "cache_hints",
            "aggregates plays per region and title; at each fill-window boundary publishes cache hints per site",
            triggers=(
                KinesisTrigger("playback", batch_size=1000, batching_window_s=5),
                ScheduleTrigger("rate(1 hour)", "fill-window boundary: publish hints per site"),
            ),
            access=(Access("cache", "readwrite"), Access("hints", "write"), _Q),
            memory_mb=1024,
            timeout_s=300,
        ),
        Function(
            "qoe_hints",
            "keeps throughput sketches per segment and publishes startup-bitrate and ABR hints",
            triggers=(KinesisTrigger("playback", batch_size=1000, batching_window_s=2),),
            access=(Access("qoe", "readwrite"), _Q),
            memory_mb=512,
            timeout_s=60,
        ),
        Function(
            "content_bandit",
            "learns which artwork/trailer/synopsis variant to show from impressions and plays (contextual bandit)",
            triggers=(KinesisTrigger("playback", batch_size=1000, batching_window_s=5),),
            access=(Access("content", "readwrite"), _Q),
            memory_mb=512,
            timeout_s=60,
        ),
    ),
)
SYSTEM.validate()
