"""Save the local stack's state after a run and load it into a new one, so `query` can read
what the functions wrote long after `make run` stopped its stack. Tables are kept in DynamoDB's
own JSON (types exact), objects as files, queue messages as JSON lines."""

from __future__ import annotations

import base64
import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from streamsense_local.job.sections import peek
from streamsense_local.stack import LocalStack


def _encode(value: Any) -> Any:
    """DynamoDB JSON with binary ("B"/"BS") as base64, as the AWS CLI writes it."""
    if isinstance(value, dict):
        return {k: (base64.b64encode(v).decode() if k == "B" else [base64.b64encode(b).decode() for b in v] if k == "BS" else _encode(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: (base64.b64decode(v) if k == "B" else [base64.b64decode(b) for b in v] if k == "BS" else _decode(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def save(stack: LocalStack, dest: Path) -> dict[str, int]:
    if dest.exists():
        shutil.rmtree(dest)
    (dest / "tables").mkdir(parents=True)
    (dest / "buckets").mkdir()
    (dest / "queues").mkdir()
    counts: dict[str, int] = {}

    def scan(name: str) -> list[dict[str, Any]]:
        ddb = stack.client("dynamodb")
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"TableName": stack.physical("table", name)}
        while True:
            resp = ddb.scan(**kwargs)
            items.extend(resp.get("Items", []))
            if not resp.get("LastEvaluatedKey"):
                return items
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    names = [t.name for t in stack.system.tables]
    with ThreadPoolExecutor(max_workers=4) as pool:  # moto's server is threaded
        for name, items in zip(names, pool.map(scan, names), strict=True):
            (dest / "tables" / f"{name}.json").write_text(json.dumps(_encode(items)))
            counts[f"table:{name}"] = len(items)
    for bucket in stack.system.buckets:
        root = dest / "buckets" / bucket.name
        root.mkdir()
        objects = stack.objects(bucket.name)
        for key in objects:
            path = root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(stack.get_object(bucket.name, key))
        counts[f"bucket:{bucket.name}"] = len(objects)
    for queue in stack.system.queues:
        bodies = peek(stack, queue.name)
        (dest / "queues" / f"{queue.name}.jsonl").write_text("".join(json.dumps(b) + "\n" for b in bodies))
        counts[f"queue:{queue.name}"] = len(bodies)
    (dest / "counts.json").write_text(json.dumps(counts, indent=1, sort_keys=True))
    return counts


def load(stack: LocalStack, src: Path) -> None:
    if not (src / "counts.json").exists():
        raise FileNotFoundError(f"no saved run at {src}: run `make run` first")
    ddb = stack.client("dynamodb")
    for table in stack.system.tables:
        path = src / "tables" / f"{table.name}.json"
        items = _decode(json.loads(path.read_text())) if path.exists() else []
        name = stack.physical("table", table.name)
        for i in range(0, len(items), 25):
            ddb.batch_write_item(RequestItems={name: [{"PutRequest": {"Item": it}} for it in items[i : i + 25]]})
    for bucket in stack.system.buckets:
        root = src / "buckets" / bucket.name
        if root.exists():
            for path in sorted(p for p in root.rglob("*") if p.is_file()):
                stack.put_object(bucket.name, str(path.relative_to(root)), path.read_bytes())
    for queue in stack.system.queues:
        path = src / "queues" / f"{queue.name}.jsonl"
        if path.exists():
            bodies = [json.loads(line) for line in path.read_text().splitlines() if line]
            if bodies:
                stack.send_messages(queue.name, bodies)
