"""Demand history: what was watched where, window by window.

One array per kind of signal, indexed ``[window, region, title]``; everything a forecaster may
read for window ``w`` is ``history.upto(w)`` (windows ``0 .. w-1``), which is how backtests keep
the future out of reach. The same container holds a weekly chart (3a: a chart score per country,
10 for a number one, 0 when not listed) and counted plays per fill window (the product and 3b).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class DemandHistory:
    regions: list[str]
    titles: list[str]
    demand: np.ndarray  # [W, R, T] float32, >= 0; 0 = not seen / not charted
    observed: np.ndarray  # [W, R] bool: the region reported that window (missing weeks stay False)
    global_demand: np.ndarray | None = None  # [W, T] float32: a service-wide signal (hours viewed)
    group: np.ndarray | None = None  # [T] int8: title category (films / TV), quotas are per group
    release: np.ndarray | None = None  # [T] int32: window a title is released (the launch calendar), -1 = unknown
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        W, R, T = self.demand.shape
        if self.observed.shape != (W, R):
            raise ValueError(f"observed has shape {self.observed.shape}, expected {(W, R)}")
        if len(self.regions) != R or len(self.titles) != T:
            raise ValueError("regions/titles do not match the demand array")
        if self.global_demand is not None and self.global_demand.shape != (W, T):
            raise ValueError("global_demand must be [W, T]")
        if self.group is None:
            self.group = np.zeros(T, np.int8)
        if self.release is None:
            self.release = np.full(T, -1, np.int32)

    @property
    def n_windows(self) -> int:
        return int(self.demand.shape[0])

    def window(self, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(demand [R, T], observed [R], global [T] or None) of one window."""
        g = None if self.global_demand is None else self.global_demand[w]
        return self.demand[w], self.observed[w], g

    def upto(self, w: int) -> DemandHistory:
        """The history as it was known when window ``w`` started (windows before ``w``)."""
        if not 0 <= w <= self.n_windows:
            raise IndexError(w)
        return DemandHistory(
            regions=self.regions,
            titles=self.titles,
            demand=self.demand[:w],
            observed=self.observed[:w],
            global_demand=None if self.global_demand is None else self.global_demand[:w],
            group=self.group,
            release=self.release,
            extra={k: v[:w] if isinstance(v, np.ndarray) and v.shape[:1] == (self.n_windows,) else v for k, v in self.extra.items()},
        )
