"""Cache-fill hints for one edge site and one fill window: which titles to hold, best first,
within the site's capacity to the byte, without needless churn.

The choice is a knapsack solved greedily by value density (predicted requests per byte, or
predicted bytes served per byte when the site optimizes byte hits): take titles in density
order and skip any that no longer fits, so smaller titles further down can still use the space
left. Churn control is hysteresis: a title the site already holds (from the previous window's
hints) has its density raised by ``keep_margin`` (10% by default), so it is swapped out only
for a title that is *clearly* better, never for a marginally better one.

Order and ties are deterministic: density (after hysteresis) descending, then predicted demand
descending, then title id ascending.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

Objective = Literal["requests", "bytes"]


@dataclass(frozen=True)
class Site:
    """An edge site: the region whose demand it serves and how many bytes it can hold."""

    site_id: str
    region: str
    capacity_bytes: int

    def __post_init__(self) -> None:
        if self.capacity_bytes < 0:
            raise ValueError("capacity_bytes must be >= 0")


@dataclass(frozen=True)
class HintEntry:
    title_id: str
    rank: int  # 1 = fill first
    predicted_demand: float  # forecast for the window (requests, or a score for chart data)
    bytes: int
    kept: bool  # the site held it in the previous window
    reason: str  # "own", "trend", "global", "calendar"
    source: str | None = None  # the region a trend comes from
    detail: str = ""

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "title_id": self.title_id,
            "rank": self.rank,
            "predicted_demand": round(float(self.predicted_demand), 6),
            "bytes": int(self.bytes),
            "kept": self.kept,
            "reason": self.reason,
        }
        if self.source is not None:
            out["source"] = self.source
        if self.detail:
            out["detail"] = self.detail
        return out


@dataclass(frozen=True)
class Selection:
    """The planner's decision before explanations: title indices in fill order."""

    titles: np.ndarray  # int64 indices into the caller's arrays, fill order
    used_bytes: int
    kept: np.ndarray  # bool per chosen title
    dropped: np.ndarray  # previously held titles not chosen


def select(
    demand: np.ndarray,
    sizes: np.ndarray,
    capacity: int,
    *,
    previous: np.ndarray | None = None,
    keep_margin: float = 0.1,
    objective: Objective = "requests",
    title_keys: Sequence[str] | None = None,
    min_demand: float = 0.0,
) -> Selection:
    """Choose titles for one site. ``demand``, ``sizes`` (bytes, > 0) and ``previous`` (bool:
    held last window) are aligned arrays over the candidate titles; ``title_keys`` (ids) break
    the last ties (index order if absent). Titles with demand <= ``min_demand`` are never chosen."""
    demand = np.asarray(demand, np.float64)
    sizes = np.asarray(sizes, np.int64)
    n = len(demand)
    if sizes.shape != (n,) or (sizes <= 0).any():
        raise ValueError("sizes must be positive and aligned with demand")
    held = np.zeros(n, bool) if previous is None else np.asarray(previous, bool)
    value = demand if objective == "requests" else demand * sizes
    density = value / sizes
    density = np.where(held, density * (1.0 + keep_margin), density)
    tie = np.arange(n) if title_keys is None else np.argsort(np.argsort(np.asarray(title_keys, dtype=object)))
    order = np.lexsort((tie, -demand, -density))
    order = order[demand[order] > min_demand]
    # The prefix that fits whole, then (same order) whatever still fits in the space left.
    cum = np.cumsum(sizes[order])
    k = int(np.searchsorted(cum, capacity, side="right"))
    chosen = [int(i) for i in order[:k]]
    used = int(cum[k - 1]) if k else 0
    rest = order[k:]
    for i in rest[sizes[rest] <= capacity - used]:
        s = int(sizes[i])
        if used + s <= capacity:
            chosen.append(int(i))
            used += s
    idx = np.asarray(chosen, np.int64)
    kept = held[idx] if n else np.zeros(0, bool)
    mask = np.zeros(n, bool)
    mask[idx] = True
    return Selection(idx, used, kept, np.flatnonzero(held & ~mask))


def plan_site(
    site: Site,
    titles: Sequence[str],
    demand: np.ndarray,
    sizes: np.ndarray,
    *,
    previous: Sequence[str] = (),
    reasons: Mapping[str, tuple[str, str | None, str]] | None = None,
    keep_margin: float = 0.1,
    objective: Objective = "requests",
) -> list[HintEntry]:
    """The site's hints for one window: ordered entries within ``site.capacity_bytes``.
    ``reasons`` maps a title id to (reason, source region, detail) from the forecaster."""
    held_set = set(previous)
    held = np.array([t in held_set for t in titles], bool)
    sel = select(demand, sizes, site.capacity_bytes, previous=held, keep_margin=keep_margin, objective=objective, title_keys=titles)
    out: list[HintEntry] = []
    for rank, (i, kept) in enumerate(zip(sel.titles, sel.kept, strict=True), start=1):
        tid = titles[int(i)]
        reason, source, detail = (reasons or {}).get(tid, ("own" if kept else "trend", None, ""))
        out.append(HintEntry(tid, rank, float(demand[i]), int(sizes[i]), bool(kept), reason, source, detail))
    return out
