"""Report sections. Each module here has ``collect(ctx: JobContext) -> Section | None`` that
reads what the functions wrote (tables, queues, buckets of the local stack: ``ctx.stack``) and
joins it with the inputs' ground truth (``ctx.truth``); it never recomputes a product figure on
the side. Anchors (libCacheSim, robustMPC, EASE...) are computed here on the same inputs, next
to the product's figures, and say so. ``None`` means the section has nothing to report (its
source was not replayed)."""

from __future__ import annotations

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


def peek(stack: LocalStack, queue: str) -> list[str]:
    """Read every message of a queue without consuming it: receive until empty (each receive
    hides what it returned), then make them all visible again, so any number of readers (report
    sections, the state snapshot) see the same messages."""
    sqs = stack.client("sqs")
    url = stack.queue_url(queue)
    bodies: list[str] = []
    handles: list[str] = []
    while True:
        msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=300).get("Messages", [])
        if not msgs:
            break
        bodies.extend(m["Body"] for m in msgs)
        handles.extend(m["ReceiptHandle"] for m in msgs)
    for i in range(0, len(handles), 10):
        sqs.change_message_visibility_batch(
            QueueUrl=url,
            Entries=[{"Id": str(j), "ReceiptHandle": h, "VisibilityTimeout": 0} for j, h in enumerate(handles[i : i + 10])],
        )
    return bodies
