"""Report sections. Each module here has ``collect(ctx: JobContext) -> Section | None`` that
reads what the functions wrote (tables, queues, buckets of the local stack: ``ctx.stack``) and
joins it with the inputs' ground truth (``ctx.truth``); it never recomputes a product figure on
the side. Anchors (libCacheSim, robustMPC, EASE...) are computed here on the same inputs, next
to the product's figures, and say so. ``None`` means the section has nothing to report (its
source was not replayed)."""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streamsense_local.stack import LocalStack


@dataclass
class Table:
    title: str
    header: list[str]
    rows: list[list[Any]]


@dataclass
class Section:
    title: str
    headline: dict[str, Any] = field(default_factory=dict)  # name -> value, printed and in JSON
    tables: list[Table] = field(default_factory=list)
    plots: list[Path] = field(default_factory=list)  # PNG files under ctx.out
    notes: list[str] = field(default_factory=list)


@dataclass
class JobContext:
    stack: LocalStack
    out: Path  # report folder (plots go to out / "plots")
    truth: dict[str, Any]  # per source: what the report joins against
    data_dir: Path | None
    quick: bool
    timings: dict[str, float] = field(default_factory=dict)

    def messages(self, queue: str) -> list[str]:
        """Every message body in a queue, left in the queue (see ``peek``)."""
        return peek(self.stack, queue)

    def plot_path(self, name: str) -> Path:
        path = self.out / "plots" / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path


_PEEKED: weakref.WeakKeyDictionary[Any, dict[str, list[str]]] = weakref.WeakKeyDictionary()


_PEEK_LOCK = threading.Lock()


def peek(stack: LocalStack, queue: str) -> list[str]:
    """Every message body of a queue, read once after the replay and kept for every reader
    (report sections, the state snapshot): nothing writes to the queues any more by then, and
    SQS has no non-destructive read, so the messages stay in flight (hidden for 12 hours)
    rather than being made visible again and read twice."""
    with _PEEK_LOCK:  # the snapshot saves while the sections read: one reader drains a queue
        return _peek(stack, queue)


def _peek(stack: LocalStack, queue: str) -> list[str]:
    cache = _PEEKED.setdefault(stack, {})
    if queue not in cache:
        sqs = stack.client("sqs")
        url = stack.queue_url(queue)
        bodies: list[str] = []
        while True:
            msgs = sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=43_200
            ).get("Messages", [])
            if not msgs:
                break
            bodies.extend(m["Body"] for m in msgs)
        cache[queue] = bodies
    return list(cache[queue])
