"""Streaming features for next-window demand, per (region, title).

``FeatureState`` is fed one window at a time (``observe``) and never sees anything else, so a
forecast made after observing windows ``0 .. w-1`` cannot depend on window ``w`` or later: the
backtests rely on that structure, not on care at each call site.

What it keeps, all updated in O(R x T) per window (plus O(R^2 x T) for the transfer counts):
- the last few windows of demand per region (as shares of the region's window total, so a
  quiet night and a busy evening are comparable) and of the global signal;
- per (region, title): windows present, current streak, first and last window present;
- per title: first window seen anywhere, the most regions it was ever present in;
- region-to-region *transfer* counts, learned from the past only: of the titles present in
  region b and absent from region a in one window, how many were present in a the next
  window. ``transfer()`` turns them into P(arrives in a | present in b), smoothed toward the
  overall rate; it is what "charts in a neighbouring or same-language market first" means here.
"""

from __future__ import annotations

from collections import deque

import numpy as np

#: The feature columns, in order (the model and the tests refer to them by name).
FEATURES = (
    "own1",  # share of the region's demand last window
    "own2",
    "own3",
    "own_period",  # share one period ago (same time yesterday for sub-day windows)
    "streak",  # consecutive windows present up to the last one
    "present",  # windows present in this region so far
    "since_last",  # windows since last present here (large if never)
    "since_first_here",  # windows since first present here (-1 if never)
    "regions1",  # fraction of reporting regions where present, last window
    "regions2",
    "regions3",
    "mean_share1",  # mean share where present, last window
    "max_share1",
    "arrive1",  # noisy-or of transfer probabilities from regions where present, last window
    "arrive2",  # the same from two windows ago
    "arrive_sum",  # transfer-weighted sum of other regions' shares, last window
    "near1",  # fraction of this region's 10 strongest sources where present, last window
    "global1",  # log1p of the global signal, last window
    "global2",
    "age",  # windows since first seen anywhere
    "peak_regions",  # the most regions it was ever present in, as a fraction
    "since_release",  # windows since release on the launch calendar (-99 unknown; <= 0 upcoming)
    "group",  # title category
    "regions_delta",  # regions1 - regions2: spreading or fading
    "ewma_short",  # exponentially weighted share here (half-life ewma_halflives[0] windows)
    "ewma_long",  # ... (half-life ewma_halflives[1]): the steady level a noisy window hides
    "pooled_short",  # the same averaged over all reporting regions (shrinkage target)
    "pooled_long",
    "similar_short",  # the same averaged over the other regions, weighted by taste similarity
    "similar_long",
)
F = {name: i for i, name in enumerate(FEATURES)}

NEVER = 999.0
UNKNOWN_RELEASE = -99.0


class FeatureState:
    """Everything the forecaster knows, built from observed windows only."""

    def __init__(
        self,
        n_regions: int,
        n_titles: int,
        *,
        group: np.ndarray | None = None,
        release: np.ndarray | None = None,
        period: int | None = None,
        transfer_prior: float = 5.0,
        transfer_decay: float = 1.0,
        ewma_halflives: tuple[float, float] = (2.0, 8.0),
    ) -> None:
        R, T = n_regions, n_titles
        self.R, self.T = R, T
        self.group = np.zeros(T, np.float32) if group is None else group.astype(np.float32)
        self.release = np.full(T, -1, np.int64) if release is None else release.astype(np.int64)
        self.period = period
        self.transfer_prior = transfer_prior
        self.transfer_decay = transfer_decay
        self.n = 0  # windows observed
        keep = max(3, (period or 0)) + 1
        self.shares: deque[np.ndarray] = deque(maxlen=keep)  # [R, T] float32, newest last
        self.present_lags: deque[np.ndarray] = deque(maxlen=keep)  # [R, T] bool
        self.observed_lags: deque[np.ndarray] = deque(maxlen=keep)  # [R] bool
        self.global_lags: deque[np.ndarray] = deque(maxlen=keep)  # [T] float32
        self.windows_present = np.zeros((R, T), np.float32)
        self.streak = np.zeros((R, T), np.float32)
        self.first_here = np.full((R, T), -1, np.int64)
        self.last_here = np.full((R, T), -1, np.int64)
        self.first_any = np.full(T, -1, np.int64)
        self.last_any = np.full(T, -1, np.int64)  # last window present anywhere (or global)
        self.peak_regions = np.zeros(T, np.float32)
        self.ewma_alpha = tuple(1.0 - 0.5 ** (1.0 / h) for h in ewma_halflives)
        self.ewma = [np.zeros((R, T), np.float32) for _ in ewma_halflives]
        self.ewma_weight = [np.zeros(R, np.float32) for _ in ewma_halflives]  # bias correction
        self.pairs = np.zeros((R, R))  # [a, b]: titles present in b, absent from a (both reporting)
        self.arrivals = np.zeros((R, R))  # ... of which present in a the next window

    # ---- updates ------------------------------------------------------------------------

    def observe(self, demand: np.ndarray, observed: np.ndarray, global_demand: np.ndarray | None = None) -> None:
        """Append one window: demand [R, T] (>= 0), observed [R] (region reported), global [T]."""
        demand = np.asarray(demand, np.float32)
        if demand.shape != (self.R, self.T):
            raise ValueError(f"demand has shape {demand.shape}, expected {(self.R, self.T)}")
        if (demand < 0).any():
            raise ValueError("demand must be >= 0")
        observed = np.asarray(observed, bool)
        demand = np.where(observed[:, None], demand, 0.0)
        present = demand > 0
        totals = demand.sum(axis=1, keepdims=True)
        share = np.divide(demand, totals, out=np.zeros_like(demand), where=totals > 0)
        if self.present_lags:
            prev, prev_obs = self.present_lags[-1], self.observed_lags[-1]
            both = (prev_obs & observed).astype(np.float64)
            absent = (~prev).astype(np.float64) * both[:, None]  # [a, t]
            src = prev.astype(np.float64)  # [b, t]
            self.pairs = self.pairs * self.transfer_decay + absent @ src.T
            self.arrivals = self.arrivals * self.transfer_decay + (absent * present) @ src.T
        g = np.log1p(np.asarray(global_demand, np.float32)) if global_demand is not None else np.log1p(demand.sum(axis=0))
        w = self.n
        self.windows_present += present
        # A region that did not report keeps its streak frozen rather than broken.
        self.streak = np.where(present, self.streak + 1, np.where(observed[:, None], 0.0, self.streak))
        self.first_here = np.where(present & (self.first_here < 0), w, self.first_here)
        self.last_here = np.where(present, w, self.last_here)
        seen = present.any(axis=0) | (g > 0)
        self.first_any = np.where(seen & (self.first_any < 0), w, self.first_any)
        self.last_any = np.where(seen, w, self.last_any)
        n_obs = max(int(observed.sum()), 1)
        self.peak_regions = np.maximum(self.peak_regions, present.sum(axis=0) / n_obs)
        for i, alpha in enumerate(self.ewma_alpha):
            # Regions that did not report keep their average (no decay toward zero).
            upd = observed[:, None]
            self.ewma[i] = np.where(upd, (1 - alpha) * self.ewma[i] + alpha * share, self.ewma[i])
            self.ewma_weight[i] = np.where(observed, (1 - alpha) * self.ewma_weight[i] + alpha, self.ewma_weight[i])
        self.shares.append(share)
        self.present_lags.append(present)
        self.observed_lags.append(observed)
        self.global_lags.append(g)
        self.n += 1

    # ---- reads --------------------------------------------------------------------------

    def transfer(self) -> np.ndarray:
        """P(title arrives in region a next window | present in b now, absent from a), [a, b]."""
        total_pairs = self.pairs.sum()
        base = self.arrivals.sum() / total_pairs if total_pairs > 0 else 0.0
        k = self.transfer_prior
        a = (self.arrivals + k * base) / (self.pairs + k)
        np.fill_diagonal(a, 0.0)
        return a

    def _lag(self, deq: deque[np.ndarray], k: int, like: np.ndarray) -> np.ndarray:
        return deq[-k] if len(deq) >= k else np.zeros_like(like)

    def candidates(self, window: int, own_window: int, upcoming: bool = True) -> np.ndarray:
        """[R, T] bool: titles worth scoring for the next window in each region: seen anywhere
        in the last ``window`` windows, seen in the region in the last ``own_window`` windows,
        or on the launch calendar for the next window."""
        recent_any = (self.last_any >= 0) & (self.last_any >= self.n - window)
        own = (self.last_here >= 0) & (self.last_here >= self.n - own_window)
        cand = own | recent_any[None, :]
        if upcoming:
            launch = (self.release >= 0) & (self.release <= self.n) & (self.release >= self.n - window)
            cand |= launch[None, :]
        return cand

    def matrix(self, regions: np.ndarray, titles: np.ndarray) -> np.ndarray:
        """Feature rows for the pairs (regions[i], titles[i]), columns as ``FEATURES``."""
        n = len(regions)
        out = np.zeros((n, len(FEATURES)), np.float32)
        if self.n == 0:
            out[:, F["since_last"]] = NEVER
            out[:, F["since_first_here"]] = -1
            out[:, F["age"]] = -1
            out[:, F["since_release"]] = self._since_release(titles)
            out[:, F["group"]] = self.group[titles]
            return out
        zero_rt = self.shares[-1]
        s = [self._lag(self.shares, k, zero_rt) for k in (1, 2, 3)]
        p = [self._lag(self.present_lags, k, zero_rt > 0) for k in (1, 2, 3)]
        o = [self._lag(self.observed_lags, k, np.zeros(self.R, bool)) for k in (1, 2, 3)]
        r_, t_ = regions, titles
        for i in range(3):
            out[:, F[f"own{i + 1}"]] = s[i][r_, t_]
        if self.period and len(self.shares) >= self.period:
            out[:, F["own_period"]] = self.shares[-self.period][r_, t_]
        out[:, F["streak"]] = self.streak[r_, t_]
        out[:, F["present"]] = self.windows_present[r_, t_]
        last = self.last_here[r_, t_]
        out[:, F["since_last"]] = np.where(last >= 0, self.n - 1 - last, NEVER)
        first = self.first_here[r_, t_]
        out[:, F["since_first_here"]] = np.where(first >= 0, self.n - 1 - first, -1)
        frac = []
        for i in range(3):
            cnt = p[i].sum(axis=0)
            frac.append(cnt / max(int(o[i].sum()), 1))
            out[:, F[f"regions{i + 1}"]] = frac[i][t_]
        cnt1 = p[0].sum(axis=0)
        out[:, F["mean_share1"]] = (s[0].sum(axis=0) / np.maximum(cnt1, 1))[t_]
        out[:, F["max_share1"]] = s[0].max(axis=0)[t_]
        a = self.transfer()
        log_miss = np.log1p(-np.clip(a, 0.0, 0.999))  # [a, b]
        arrive1 = 1.0 - np.exp(log_miss @ p[0].astype(np.float64))  # [R, T]
        arrive2 = 1.0 - np.exp(log_miss @ p[1].astype(np.float64))
        out[:, F["arrive1"]] = arrive1[r_, t_]
        out[:, F["arrive2"]] = arrive2[r_, t_]
        out[:, F["arrive_sum"]] = (a @ s[0])[r_, t_]
        top = np.argsort(-a, axis=1, kind="stable")[:, :10]  # [R, 10]
        near = p[0][top].mean(axis=1)  # [R, T]
        out[:, F["near1"]] = near[r_, t_]
        zero_t = np.zeros(self.T, np.float32)
        out[:, F["global1"]] = self._lag(self.global_lags, 1, zero_t)[t_]
        out[:, F["global2"]] = self._lag(self.global_lags, 2, zero_t)[t_]
        fa = self.first_any[t_]
        out[:, F["age"]] = np.where(fa >= 0, self.n - 1 - fa, -1)
        out[:, F["peak_regions"]] = self.peak_regions[t_]
        out[:, F["since_release"]] = self._since_release(t_)
        out[:, F["group"]] = self.group[t_]
        out[:, F["regions_delta"]] = (frac[0] - frac[1])[t_]
        levels = []
        for i, name in enumerate(("short", "long")):
            wgt = np.maximum(self.ewma_weight[i], 1e-9)[:, None]
            level = self.ewma[i] / wgt  # [R, T], unbiased early on
            levels.append(level)
            out[:, F[f"ewma_{name}"]] = level[r_, t_]
            reporting = self.ewma_weight[i] > 0
            pooled = level[reporting].mean(axis=0) if reporting.any() else np.zeros(self.T, np.float32)
            out[:, F[f"pooled_{name}"]] = pooled[t_]
        sim = self.similarity(levels[1])
        for i, name in enumerate(("short", "long")):
            out[:, F[f"similar_{name}"]] = (sim @ levels[i])[r_, t_]
        return out

    def similarity(self, level: np.ndarray) -> np.ndarray:
        """[a, b] weights (rows sum to 1, zero diagonal): cosine similarity of the regions'
        long-run title mixes, negatives and self cut off. Learned from observed windows only."""
        norm = np.linalg.norm(level, axis=1)
        unit = np.divide(level, norm[:, None], out=np.zeros_like(level), where=norm[:, None] > 0)
        cos = np.clip(unit @ unit.T, 0.0, None).astype(np.float64)
        np.fill_diagonal(cos, 0.0)
        total = cos.sum(axis=1, keepdims=True)
        return np.divide(cos, total, out=np.zeros_like(cos), where=total > 0).astype(np.float32)

    def _since_release(self, titles: np.ndarray) -> np.ndarray:
        rel = self.release[titles]
        # The forecast is for window self.n: a title released in it has since_release 0.
        return np.where(rel >= 0, self.n - rel, UNKNOWN_RELEASE).astype(np.float32)

    def trend_source(self, region: int, title: int) -> int | None:
        """The region whose last window most explains an arrival here (None if none)."""
        if not self.present_lags:
            return None
        col = self.present_lags[-1][:, title].copy()
        col[region] = False
        if not col.any():
            return None
        a = self.transfer()[region]
        return int(np.argmax(np.where(col, a, -1.0)))
