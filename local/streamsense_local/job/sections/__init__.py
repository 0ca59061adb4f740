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

    def plot_path(self, name: str) -> Path:
        path = self.out / "plots" / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path
