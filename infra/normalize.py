"""One comparable shape for "what the system is", read from three places: the declaration
(``from_system(SYSTEM)``), the synthesized CloudFormation template (``from_template``) and the
local runtime (``streamsense_local``'s ``LocalStack.describe()``). tests/infra asserts that all
three are equal, so the cloud, the local stack and the declaration cannot drift.

Shape (names are SYSTEM's logical names)::

    {"streams": {name: {"shards": int}},            # 0 = on-demand (no fixed shard count)
     "tables": {name: {"ttl_attribute": str | None}},
     "buckets": {name: {"versioned": bool}},
     "queues": {name: {"visibility_timeout_s", "retention_s", "dead_letter_queue", "max_receive_count"}},
     "functions": {name: {"memory_mb", "timeout_s", "env_keys": [sorted], "triggers": [sorted dicts]}}}

Trigger dicts: kinesis {kind, stream, batch_size, batching_window_s, starting_position,
bisect_on_error, max_retries, max_record_age_s, parallelization_factor,
report_batch_item_failures, on_failure}; s3 {kind, bucket, prefix, suffix, max_retries,
max_event_age_s, on_failure}; sqs {kind, queue, batch_size, batching_window_s,
report_batch_item_failures}; schedule {kind, expression}. Lists are sorted by
``json.dumps(trigger, sort_keys=True)``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from infra.system import (
    Function,
    KinesisTrigger,
    S3Trigger,
    ScheduleTrigger,
    SqsTrigger,
    System,
    function_env_keys,
    powertools_env,
)

META_KIND = "streamsense:kind"
META_NAME = "streamsense:name"

# CloudFormation's defaults for properties a template may omit.
_SQS_VISIBILITY_DEFAULT = 30
_SQS_RETENTION_DEFAULT = 4 * 24 * 3600
_LAMBDA_MEMORY_DEFAULT = 128
_LAMBDA_TIMEOUT_DEFAULT = 3
_ASYNC_RETRIES_DEFAULT = 2
_ASYNC_AGE_DEFAULT = 6 * 3600


def sort_triggers(triggers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(triggers, key=lambda t: json.dumps(t, sort_keys=True))


def empty() -> dict[str, Any]:
    return {"streams": {}, "tables": {}, "buckets": {}, "queues": {}, "functions": {}}


# ---- from the declaration ---------------------------------------------------------------------


def trigger_dict(t: Any) -> dict[str, Any]:
    if isinstance(t, KinesisTrigger):
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
    if isinstance(t, S3Trigger):
        return {
            "kind": "s3",
            "bucket": t.bucket,
            "prefix": t.prefix,
            "suffix": t.suffix,
            "max_retries": t.max_retries,
            "max_event_age_s": t.max_event_age_s,
            "on_failure": t.on_failure,
        }
    if isinstance(t, SqsTrigger):
        return {
            "kind": "sqs",
            "queue": t.queue,
            "batch_size": t.batch_size,
            "batching_window_s": t.batching_window_s,
            "report_batch_item_failures": t.report_batch_item_failures,
        }
    if isinstance(t, ScheduleTrigger):
        return {"kind": "schedule", "expression": t.expression}
    raise TypeError(f"unknown trigger {t!r}")


def env_keys(system: System, fn: Function) -> list[str]:
    """Every env var name a function gets: its resources, Powertools' settings, its own."""
    return sorted({*function_env_keys(system, fn), *powertools_env(fn), *fn.environment})


def from_system(system: System) -> dict[str, Any]:
    out = empty()
    out["streams"] = {s.name: {"shards": s.shards} for s in system.streams}
    out["tables"] = {t.name: {"ttl_attribute": t.ttl_attribute} for t in system.tables}
    out["buckets"] = {b.name: {"versioned": b.versioned} for b in system.buckets}
    out["queues"] = {
        q.name: {
            "visibility_timeout_s": q.visibility_timeout_s,
            "retention_s": q.retention_s,
            "dead_letter_queue": q.dead_letter_queue,
            "max_receive_count": q.max_receive_count if q.dead_letter_queue else None,
        }
        for q in system.queues
    }
    out["functions"] = {
        fn.name: {
            "memory_mb": fn.memory_mb,
            "timeout_s": fn.timeout_s,
            "env_keys": env_keys(system, fn),
            "triggers": sort_triggers([trigger_dict(t) for t in fn.triggers]),
        }
        for fn in system.functions
    }
    return out


# ---- from a synthesized template --------------------------------------------------------------


class _Template:
    def __init__(self, template: Mapping[str, Any]) -> None:
        self.resources: Mapping[str, Any] = template.get("Resources", {})
        self.names: dict[str, tuple[str, str]] = {}  # logical id -> (kind, SYSTEM name)
        for logical, res in self.resources.items():
            meta = res.get("Metadata") or {}
            if META_NAME in meta and meta.get(META_KIND) in (
                "stream",
                "table",
                "bucket",
                "queue",
                "function",
            ):
                self.names[logical] = (meta[META_KIND], meta[META_NAME])

    def of_kind(self, kind: str) -> list[tuple[str, str, Mapping[str, Any]]]:
        return [
            (logical, name, self.resources[logical].get("Properties", {}))
            for logical, (k, name) in self.names.items()
            if k == kind
        ]

    def ref(self, value: Any, kind: str | None = None) -> str | None:
        """The SYSTEM name behind ``{"Ref": id}`` or ``{"Fn::GetAtt": [id, attr]}``."""
        logical = None
        if isinstance(value, Mapping):
            if "Ref" in value:
                logical = value["Ref"]
            elif "Fn::GetAtt" in value:
                att = value["Fn::GetAtt"]
                logical = att[0] if isinstance(att, list) else str(att).split(".")[0]
        if logical is None or logical not in self.names:
            return None
        found_kind, name = self.names[logical]
        if kind is not None and found_kind != kind:
            raise ValueError(f"{logical} is a {found_kind}, expected a {kind}")
        return name


def from_template(template: Mapping[str, Any]) -> dict[str, Any]:
    """Read a synthesized template back into the normalized shape, by the ``streamsense:*``
    metadata the stack puts on every resource that stands for a SYSTEM entry."""
    t = _Template(template)
    out = empty()
    for _, name, props in t.of_kind("stream"):
        mode = (props.get("StreamModeDetails") or {}).get("StreamMode", "PROVISIONED")
        out["streams"][name] = {
            "shards": 0 if mode == "ON_DEMAND" else int(props.get("ShardCount", 1))
        }
    for _, name, props in t.of_kind("table"):
        ttl = props.get("TimeToLiveSpecification") or {}
        out["tables"][name] = {
            "ttl_attribute": ttl.get("AttributeName") if ttl.get("Enabled") else None
        }
    for _, name, props in t.of_kind("bucket"):
        status = (props.get("VersioningConfiguration") or {}).get("Status")
        out["buckets"][name] = {"versioned": status == "Enabled"}
    for _, name, props in t.of_kind("queue"):
        redrive = props.get("RedrivePolicy") or {}
        dlq = t.ref(redrive.get("deadLetterTargetArn"), "queue") if redrive else None
        out["queues"][name] = {
            "visibility_timeout_s": int(props.get("VisibilityTimeout", _SQS_VISIBILITY_DEFAULT)),
            "retention_s": int(props.get("MessageRetentionPeriod", _SQS_RETENTION_DEFAULT)),
            "dead_letter_queue": dlq,
            "max_receive_count": int(redrive["maxReceiveCount"]) if redrive else None,
        }
    triggers: dict[str, list[dict[str, Any]]] = {}
    for _, name, props in t.of_kind("function"):
        out["functions"][name] = {
            "memory_mb": int(props.get("MemorySize", _LAMBDA_MEMORY_DEFAULT)),
            "timeout_s": int(props.get("Timeout", _LAMBDA_TIMEOUT_DEFAULT)),
            "env_keys": sorted(((props.get("Environment") or {}).get("Variables") or {}).keys()),
            "triggers": [],
        }
        triggers[name] = out["functions"][name]["triggers"]

    async_configs = _async_configs(t)
    for res in t.resources.values():
        kind, props = res.get("Type"), res.get("Properties", {})
        if kind == "AWS::Lambda::EventSourceMapping":
            fn = t.ref(props.get("FunctionName"), "function")
            if fn is None:
                continue
            triggers[fn].append(_mapping(t, props))
        elif kind == "Custom::S3BucketNotifications":
            bucket = t.ref(props.get("BucketName"), "bucket")
            config = props.get("NotificationConfiguration") or {}
            for n in config.get("LambdaFunctionConfigurations", []):
                fn = t.ref(n.get("LambdaFunctionArn"), "function")
                if fn is None or bucket is None:
                    continue
                rules = {
                    r["Name"].lower(): r["Value"]
                    for r in ((n.get("Filter") or {}).get("Key") or {}).get("FilterRules", [])
                }
                retries, age, on_failure = async_configs.get(
                    fn, (_ASYNC_RETRIES_DEFAULT, _ASYNC_AGE_DEFAULT, None)
                )
                triggers[fn].append(
                    {
                        "kind": "s3",
                        "bucket": bucket,
                        "prefix": rules.get("prefix", ""),
                        "suffix": rules.get("suffix", ""),
                        "max_retries": retries,
                        "max_event_age_s": age,
                        "on_failure": on_failure,
                    }
                )
        elif kind == "AWS::Events::Rule" and props.get("ScheduleExpression"):
            for target in props.get("Targets", []):
                fn = t.ref(target.get("Arn"), "function")
                if fn is not None:
                    triggers[fn].append(
                        {"kind": "schedule", "expression": props["ScheduleExpression"]}
                    )
    for fn_name in out["functions"]:
        out["functions"][fn_name]["triggers"] = sort_triggers(triggers[fn_name])
    return out


def _on_failure(t: _Template, props: Mapping[str, Any]) -> str | None:
    dest = ((props.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
    return t.ref(dest, "queue") if dest is not None else None


def _async_configs(t: _Template) -> dict[str, tuple[int, int, str | None]]:
    out = {}
    for res in t.resources.values():
        if res.get("Type") != "AWS::Lambda::EventInvokeConfig":
            continue
        props = res.get("Properties", {})
        fn = t.ref(props.get("FunctionName"), "function")
        if fn is not None:
            out[fn] = (
                int(props.get("MaximumRetryAttempts", _ASYNC_RETRIES_DEFAULT)),
                int(props.get("MaximumEventAgeInSeconds", _ASYNC_AGE_DEFAULT)),
                _on_failure(t, props),
            )
    return out


def _mapping(t: _Template, props: Mapping[str, Any]) -> dict[str, Any]:
    source = props.get("EventSourceArn")
    report = "ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or [])
    window = int(props.get("MaximumBatchingWindowInSeconds", 0))
    logical = source.get("Fn::GetAtt", [None])[0] if isinstance(source, Mapping) else None
    kind = t.names.get(logical, ("", ""))[0] if logical else ""
    if kind == "stream":
        return {
            "kind": "kinesis",
            "stream": t.ref(source, "stream"),
            "batch_size": int(props.get("BatchSize", 100)),
            "batching_window_s": window,
            "starting_position": props.get("StartingPosition"),
            "bisect_on_error": bool(props.get("BisectBatchOnFunctionError", False)),
            "max_retries": int(props.get("MaximumRetryAttempts", -1)),
            "max_record_age_s": int(props.get("MaximumRecordAgeInSeconds", -1)),
            "parallelization_factor": int(props.get("ParallelizationFactor", 1)),
            "report_batch_item_failures": report,
            "on_failure": _on_failure(t, props),
        }
    if kind == "queue":
        return {
            "kind": "sqs",
            "queue": t.ref(source, "queue"),
            "batch_size": int(props.get("BatchSize", 10)),
            "batching_window_s": window,
            "report_batch_item_failures": report,
        }
    raise ValueError(f"event source mapping from an unknown resource: {source!r}")
