"""Sample events (events/<function>/<scenario>.json, see events/README.md): discovery, what each
one is expected to do, and running one against a stack the way ``sam local invoke -e`` does,
reporting what changed in tables, buckets and queues."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

from streamsense_local.processes import Invocation
from streamsense_local.stack import REPO_ROOT, LocalStack

EVENTS_DIR = REPO_ROOT / "events"
SIDECAR_SUFFIX = ".expect.json"
SETUP_SUFFIX = ".setup"


@dataclass(frozen=True)
class Sample:
    function: str
    path: Path

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def bad(self) -> bool:
        return self.name.startswith("bad-")

    @property
    def sidecar(self) -> Path:
        return self.path.with_name(self.name + SIDECAR_SUFFIX)

    @property
    def setup_dir(self) -> Path:
        return self.path.with_name(self.name + SETUP_SUFFIX)

    def event(self) -> Any:
        return json.loads(self.path.read_text())

    def expected_quarantine(self) -> list[str] | None:
        """Reasons the quarantine queue should receive, as a sorted list when exact (sidecar),
        or a one-element list meaning "only this reason, at least once" (file name);
        [] for a good sample."""
        if self.sidecar.is_file():
            return sorted(json.loads(self.sidecar.read_text()).get("quarantine", []))
        if self.bad:
            return [self.name[len("bad-") :].split("--")[0].replace("-", "_")]
        return []

    @property
    def exact(self) -> bool:
        return self.sidecar.is_file()


def discover(events_dir: Path = EVENTS_DIR) -> list[Sample]:
    out = []
    for path in sorted(events_dir.glob("*/*.json")):
        if path.name.endswith(SIDECAR_SUFFIX):
            continue
        out.append(Sample(path.parent.name, path))
    return out


def source_kind(event: Any) -> str:
    """kinesis | sqs | s3 | schedule | other: which event source a payload comes from."""
    if isinstance(event, Mapping):
        records = event.get("Records")
        if isinstance(records, list) and records and isinstance(records[0], Mapping):
            first = records[0]
            if "kinesis" in first:
                return "kinesis"
            if first.get("eventSource") == "aws:sqs" or "receiptHandle" in first:
                return "sqs"
            if "s3" in first:
                return "s3"
        if event.get("detail-type") == "Scheduled Event":
            return "schedule"
    return "other"


def trigger_kinds(function: str) -> set[str]:
    """The payload kinds (as ``source_kind`` names them) the function's triggers deliver."""
    from infra.system import SYSTEM, KinesisTrigger, S3Trigger, ScheduleTrigger, SqsTrigger

    kinds = {KinesisTrigger: "kinesis", S3Trigger: "s3", SqsTrigger: "sqs", ScheduleTrigger: "schedule"}
    return {kinds[type(t)] for t in SYSTEM.function(function).triggers}


#: the fields a handler reads from each record, by source: (path, type)
_RECORD_FIELDS: dict[str, tuple[tuple[tuple[str, ...], type], ...]] = {
    "kinesis": ((("kinesis", "data"), str), (("kinesis", "sequenceNumber"), str)),
    "sqs": ((("body",), str), (("messageId",), str)),
    "s3": ((("s3", "bucket", "name"), str), (("s3", "object", "key"), str)),
}


def _missing_field(kind: str, record: Mapping[str, Any]) -> str | None:
    """The first field (dotted, with its type) a record of this kind lacks, or None."""
    for path, typ in _RECORD_FIELDS.get(kind, ()):
        node: Any = record
        for key in path:
            node = node.get(key) if isinstance(node, Mapping) else None
        if not isinstance(node, typ):
            return f"{'.'.join(path)} ({typ.__name__})"
    return None


def shape_error(function: str, event: Any) -> str | None:
    """Why ``event`` cannot reach ``function`` through any of its triggers, or None. A payload of
    another shape (``{}``, a bare record, an S3 event for a stream consumer) would otherwise run
    the handler on zero records and look like a success."""
    expected = trigger_kinds(function)
    got = source_kind(event)
    if got in expected and got != "schedule":
        if not all(source_kind({"Records": [r]}) == got for r in event["Records"]):
            return f"every record of a {got} event must be a {got} record; this payload mixes in others"
        for i, record in enumerate(event["Records"]):
            missing = _missing_field(got, record)
            if missing:
                return f"record {i} of this {got} event has no {missing} (see events/{function}/ for the shape AWS sends)"
    if got in expected:
        return None
    want = " or ".join(f"a {k} event" for k in sorted(expected))
    what = "an empty Records list" if isinstance(event, Mapping) and event.get("Records") == [] else (
        f"a {got} event" if got != "other" else "not an event any AWS trigger sends"
    )
    return f"{function} is invoked with {want} (see events/{function}/); this payload is {what}"


# ---- setup, snapshot, diff ----------------------------------------------------------------


def apply_setup(stack: LocalStack, sample: Sample, event: Any) -> Any:
    """Load ``<scenario>.setup/``: ``buckets/<bucket>/<key...>`` objects and
    ``tables/<table>.json`` item lists. S3 assigns version ids and ETags when an object is
    written, so an S3 sample's records are updated to the uploaded object's."""
    root = sample.setup_dir
    if not root.is_dir():
        return event
    uploaded: dict[tuple[str, str], dict[str, Any]] = {}
    buckets = root / "buckets"
    if buckets.is_dir():
        s3 = stack.client("s3")
        for path in sorted(p for p in buckets.rglob("*") if p.is_file()):
            bucket, key = path.relative_to(buckets).parts[0], "/".join(path.relative_to(buckets).parts[1:])
            body = path.read_bytes()
            resp = s3.put_object(Bucket=stack.physical("bucket", bucket), Key=key, Body=body)
            uploaded[(stack.physical("bucket", bucket), key)] = {
                "size": len(body),
                "eTag": resp["ETag"].strip('"'),
                "versionId": resp.get("VersionId"),
            }
    tables = root / "tables"
    if tables.is_dir():
        from streamsense.storage import DynamoTable

        for path in sorted(tables.glob("*.json")):
            DynamoTable(stack.physical("table", path.stem), client=stack.client("dynamodb")).put_many(json.loads(path.read_text()))
    if source_kind(event) == "s3" and uploaded:
        event = json.loads(json.dumps(event))
        for record in event["Records"]:
            obj = record["s3"]["object"]
            actual = uploaded.get((record["s3"]["bucket"]["name"], unquote_plus(obj["key"])))
            if actual:
                obj["size"], obj["eTag"] = actual["size"], actual["eTag"]
                if "versionId" in obj and actual["versionId"]:
                    obj["versionId"] = actual["versionId"]
    return event


@dataclass
class Snapshot:
    tables: dict[str, dict[tuple[str, str], dict[str, Any]]]
    objects: dict[str, dict[str, dict[str, Any]]]


def snapshot(stack: LocalStack) -> Snapshot:
    return Snapshot(
        tables={t.name: {(str(i["pk"]), str(i["sk"])): i for i in stack.scan(t.name)} for t in stack.system.tables},
        objects={b.name: stack.objects(b.name) for b in stack.system.buckets},
    )


@dataclass
class Changes:
    tables: dict[str, dict[str, list[Any]]] = field(default_factory=dict)  # table -> added/changed/removed items
    objects: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # bucket -> added/changed/removed keys
    queues: dict[str, list[Any]] = field(default_factory=dict)  # queue -> messages (JSON when they parse)

    def quarantine_reasons(self) -> list[str]:
        return sorted(str(m.get("reason")) if isinstance(m, dict) else "?" for m in self.queues.get("quarantine", []))

    def as_dict(self) -> dict[str, Any]:
        return {"tables": self.tables, "buckets": self.objects, "queues": self.queues}


def diff(stack: LocalStack, before: Snapshot, after: Snapshot) -> Changes:
    changes = Changes()
    for name, items in after.tables.items():
        old = before.tables.get(name, {})
        entry = {
            "added": [items[k] for k in sorted(items.keys() - old.keys())],
            "changed": [items[k] for k in sorted(items.keys() & old.keys()) if items[k] != old[k]],
            "removed": [old[k] for k in sorted(old.keys() - items.keys())],
        }
        if any(entry.values()):
            changes.tables[name] = entry
    for name, objs in after.objects.items():
        old_objs = before.objects.get(name, {})
        obj_entry = {
            "added": sorted(objs.keys() - old_objs.keys()),
            "changed": sorted(k for k in objs.keys() & old_objs.keys() if objs[k] != old_objs[k]),
            "removed": sorted(old_objs.keys() - objs.keys()),
        }
        if any(obj_entry.values()):
            changes.objects[name] = obj_entry
    for queue in stack.system.queues:
        bodies = stack.receive_all(queue.name)
        if bodies:
            parsed: list[Any] = []
            for b in bodies:
                try:
                    parsed.append(json.loads(b))
                except json.JSONDecodeError:
                    parsed.append(b)
            changes.queues[queue.name] = parsed
    return changes


@dataclass
class SampleRun:
    sample: Sample
    event: Any
    invocation: Invocation
    changes: Changes


def run_sample(stack: LocalStack, sample: Sample) -> SampleRun:
    """Invoke the sample's function once with its payload on ``stack`` (expected to be fresh)."""
    event = apply_setup(stack, sample, sample.event())
    before = snapshot(stack)
    inv = stack.invoke(sample.function, event)
    return SampleRun(sample, event, inv, diff(stack, before, snapshot(stack)))


def records_in(event: Any) -> int:
    if source_kind(event) in ("kinesis", "sqs", "s3"):
        return len(event["Records"])
    return 1


def kinesis_payloads(event: Any) -> list[tuple[bytes, str]]:
    """(data, partition key) of a Kinesis sample's records; undecodable data is sent as its
    base64 text, so the function still sees (and quarantines) a bad record."""
    out = []
    for r in event["Records"]:
        k = r["kinesis"]
        try:
            data = base64.b64decode(k["data"], validate=True)
        except ValueError:
            data = str(k["data"]).encode()
        out.append((data, str(k.get("partitionKey") or "sample")))
    return out
