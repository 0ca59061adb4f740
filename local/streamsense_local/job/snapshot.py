"""Save the local stack's state after a run and load it into a new one, so `query` can read
what the functions wrote long after `make run` stopped its stack. Tables are kept in DynamoDB's
own wire JSON (types exact, binary base64, as the AWS CLI writes it), objects as files, queue
messages as JSON lines."""

from __future__ import annotations

import json
import shutil
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from streamsense_local.job.sections import peek
from streamsense_local.stack import LocalStack


class SnapshotError(Exception):
    """A saved run that cannot be restored (a table file missing or unreadable)."""


def check_destination(dest: Path) -> None:
    """Refuse a destination that is not a saved run: save() replaces the folder whole, and a
    mistyped ``--state`` must never delete someone's files."""
    if dest.exists() and not dest.is_dir():
        raise SnapshotError(f"--state {dest} is a file, not a folder")
    if dest.is_dir() and any(dest.iterdir()) and not (dest / "counts.json").exists():
        raise SnapshotError(f"--state {dest} is a folder that holds something other than a saved run; choose an empty or new folder")


def save(stack: LocalStack, dest: Path) -> dict[str, int]:
    check_destination(dest)
    if dest.exists():
        shutil.rmtree(dest)
    (dest / "tables").mkdir(parents=True)
    (dest / "buckets").mkdir()
    (dest / "queues").mkdir()
    counts: dict[str, int] = {}

    names = [t.name for t in stack.system.tables]
    with ThreadPoolExecutor(max_workers=4) as pool:  # moto's server is threaded
        # The wire JSON is the saved format as it is (binary base64).
        for name, items in zip(names, pool.map(stack.scan_raw, names), strict=True):
            (dest / "tables" / f"{name}.json").write_text(json.dumps(items))
            counts[f"table:{name}"] = len(items)
        for bucket in stack.system.buckets:
            root = dest / "buckets" / bucket.name
            root.mkdir()
            keys = list(stack.objects(bucket.name))
            for key, body in zip(keys, pool.map(lambda k, b=bucket.name: stack.get_object(b, k), keys), strict=True):
                path = root / key
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(body)
            counts[f"bucket:{bucket.name}"] = len(keys)
    for queue in stack.system.queues:
        bodies = peek(stack, queue.name)
        (dest / "queues" / f"{queue.name}.jsonl").write_text("".join(json.dumps(b) + "\n" for b in bodies))
        counts[f"queue:{queue.name}"] = len(bodies)
    (dest / "counts.json").write_text(json.dumps(counts, indent=1, sort_keys=True))
    return counts


def load(
    stack: LocalStack,
    src: Path,
    *,
    tables: Collection[str] | None = None,
    buckets: Collection[str] | None = None,
    queues: bool = True,
) -> None:
    """Restore a saved run; ``tables`` / ``buckets`` restrict it to those (None: all)."""
    if not (src / "counts.json").exists():
        raise FileNotFoundError(f"no saved run at {src}: run `make run` first")
    for table in stack.system.tables:
        if tables is not None and table.name not in tables:
            continue
        path = src / "tables" / f"{table.name}.json"
        # save() writes every table, empty or not: a missing or unreadable file is a damaged
        # state, not an empty table (which would make every query answer "not found")
        try:
            items = json.loads(path.read_text())
            if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                raise ValueError("not a list of DynamoDB items")
            stack.batch_write_raw(table.name, items)
        except (OSError, ValueError, RuntimeError) as exc:  # RuntimeError: the local table refused an item
            raise _damaged(src, path, exc) from exc
    for bucket in stack.system.buckets:
        root = src / "buckets" / bucket.name
        if root.exists() and (buckets is None or bucket.name in buckets):
            for path in sorted(p for p in root.rglob("*") if p.is_file()):
                stack.put_object(bucket.name, str(path.relative_to(root)), path.read_bytes())
    for queue in stack.system.queues if queues else ():
        path = src / "queues" / f"{queue.name}.jsonl"
        if path.exists():
            try:
                bodies = [json.loads(line) for line in path.read_text().splitlines() if line]
            except (OSError, ValueError) as exc:
                raise _damaged(src, path, exc) from exc
            if bodies:
                stack.send_messages(queue.name, bodies)


def _damaged(src: Path, path: Path, exc: Exception) -> SnapshotError:
    return SnapshotError(f"saved run at {src} is damaged: {path}: {str(exc)[:300]}; run `make run` again")
