"""Exact sliding windows over many entities at once, vectorized with numpy.

These kernels are the single definition of every windowed feature. The Lambda applies them to a
batch (the stored logs of the batch's entities plus the batch's own events); offline training
and the benchmark apply them to the whole history at once. Same code, same numbers.

Layout: the entries of many entities are sorted by (entity index, time, tie order). A window
``(t - lo, t - hi]`` of one entity is then a contiguous index range ``[a, b)``, found with one
``searchsorted`` over a composite int64 key (entity * span + time offset), and counts and sums are
differences of prefix sums. Times are int64 milliseconds since the epoch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

MS_PER_DAY = 86_400_000
MS_PER_HOUR = 3_600_000
MS_PER_MINUTE = 60_000
#: label_ts of an entry whose label has not arrived.
NO_LABEL = np.iinfo(np.int64).max


@dataclass(frozen=True)
class SortedEntries:
    """Entries of many entities sorted by (key, ts, tie); ``order[i]`` is where input row i went."""

    key: I64
    ts: I64
    order: I64  # input row -> sorted position
    _composite: I64
    _t0: int
    _span: int

    @classmethod
    def build(cls, key: I64, ts: I64, tie: npt.NDArray[np.integer] | None = None, *, max_lookback_ms: int = 0) -> SortedEntries:
        key = np.asarray(key, dtype=np.int64)
        ts = np.asarray(ts, dtype=np.int64)
        tie_arr = np.zeros(len(ts), dtype=np.uint64) if tie is None else np.asarray(tie)
        if len(ts) > 1 and bool((ts[1:] >= ts[:-1]).all()) and bool((tie_arr[1:] >= tie_arr[:-1]).all()):
            perm = np.argsort(key, kind="stable")  # already in (ts, tie) order: much cheaper
        else:
            perm = np.lexsort((tie_arr, ts, key))
        order = np.empty(len(perm), dtype=np.int64)
        order[perm] = np.arange(len(perm), dtype=np.int64)
        skey, sts = key[perm], ts[perm]
        t0 = int(sts.min()) - max_lookback_ms - 1 if len(sts) else 0
        # Every query time t - lookback maps into [1, span): a key's band never bleeds into its
        # neighbour's.
        span = (int(sts.max()) - t0 + 2) if len(sts) else 2
        if len(skey) and (int(skey.max()) + 1) * span >= 2**62:
            raise OverflowError("too many entities x time range for one composite key")
        composite = skey * span + (sts - t0)
        return cls(skey, sts, order, composite, t0, span)

    def __len__(self) -> int:
        return len(self.ts)

    def _probe(self, qkey: I64, t: I64) -> I64:
        off = np.clip(np.asarray(t, dtype=np.int64) - self._t0, 0, self._span - 1)
        return np.asarray(qkey, dtype=np.int64) * self._span + off

    def upto(self, qkey: I64, t: I64) -> I64:
        """Index just past the last entry of entity ``qkey`` with ts <= t."""
        probe = self._probe(qkey, t)
        if len(probe) > 1 and not bool((probe[1:] >= probe[:-1]).all()):
            # searchsorted is several times faster on sorted needles (cache-friendly).
            perm = np.argsort(probe)
            out = np.empty(len(probe), dtype=np.int64)
            out[perm] = np.searchsorted(self._composite, probe[perm], side="right")
            return out
        return np.searchsorted(self._composite, probe, side="right").astype(np.int64)

    def window(self, qkey: I64, qts: I64, lo_ms: int, hi_ms: int) -> tuple[I64, I64]:
        """Index range [a, b) of the entries of qkey with ts in (qts - lo_ms, qts - hi_ms]."""
        return self.upto(qkey, qts - lo_ms), self.upto(qkey, qts - hi_ms)

    def window_incl_self(self, pos: I64, lo_ms: int) -> tuple[I64, I64]:
        """Entries of the same entity in (t - lo_ms, t] up to and including the entry at sorted
        position ``pos`` (same-time entries after it in tie order are not yet seen)."""
        pos = np.asarray(pos, dtype=np.int64)
        a = self.upto(self.key[pos], self.ts[pos] - lo_ms)
        return a, pos + 1

    def previous(self, pos: I64) -> I64:
        """Sorted position of the same entity's entry just before ``pos``, or -1."""
        pos = np.asarray(pos, dtype=np.int64)
        prev = pos - 1
        ok = (prev >= 0) & (self.key[np.maximum(prev, 0)] == self.key[pos])
        return np.where(ok, prev, -1)


def prefix(values: npt.ArrayLike) -> F64:
    """Prefix sums with a leading 0 so that sum over [a, b) is p[b] - p[a]."""
    out = np.zeros(len(np.asarray(values)) + 1, dtype=np.float64)
    np.cumsum(np.asarray(values, dtype=np.float64), out=out[1:])
    return out


def range_sum(p: F64, a: I64, b: I64) -> F64:
    return p[b] - p[a]


def known_label_count(
    entries: SortedEntries,
    fraud: npt.NDArray[np.integer],
    label_ts: I64,
    qkey: I64,
    qts: I64,
    lo_ms: int,
    hi_ms: int,
) -> F64:
    """For each query: entries of its entity with ts in (qts - lo_ms, qts - hi_ms] whose fraud
    label was already known at qts (label_ts <= qts). Labels arrive late and in any order, so a
    label only counts from the moment its label event occurred. ``fraud``/``label_ts`` are in
    the entries' input order.

    Computed as (all fraud-labeled entries in the window) minus (those labeled after qts). Entry j
    is in query q's window iff ts_j + hi <= qts < ts_j + lo, so "labeled too late for q" is
    ts_j + hi <= qts < min(ts_j + lo, label_ts_j): a range of queries per labeled entry, found with
    searchsorted over the queries sorted by (entity, time) and applied with a difference array.
    """
    qkey = np.asarray(qkey, dtype=np.int64)
    qts = np.asarray(qts, dtype=np.int64)
    fraud_sorted = np.zeros(len(entries), dtype=np.float64)
    fraud_sorted[entries.order] = np.asarray(fraud, dtype=np.float64)
    a, b = entries.window(qkey, qts, lo_ms, hi_ms)
    total = range_sum(prefix(fraud_sorted), a, b)

    labeled = np.flatnonzero(fraud_sorted > 0)
    if not len(labeled) or not len(qts):
        return total
    label_sorted = np.full(len(entries), NO_LABEL, dtype=np.int64)
    label_sorted[entries.order] = np.asarray(label_ts, dtype=np.int64)
    j_key = entries.key[labeled]
    start_t = entries.ts[labeled] + hi_ms
    end_t = np.minimum(entries.ts[labeled] + lo_ms, label_sorted[labeled])  # exclusive
    keep = end_t > start_t
    if not keep.any():
        return total
    j_key, start_t, end_t = j_key[keep], start_t[keep], end_t[keep]
    # Queries and bounds on one composite scale of their own (no clipping at the edges).
    t0 = int(min(qts.min(), start_t.min())) - 1
    span = int(max(qts.max(), end_t.max())) - t0 + 2
    qcomp = qkey * span + (qts - t0)
    perm = None
    if len(qcomp) > 1 and not bool((qcomp[1:] >= qcomp[:-1]).all()):
        perm = np.argsort(qcomp, kind="stable")
        qcomp = qcomp[perm]
    qa = np.searchsorted(qcomp, j_key * span + (start_t - t0), side="left")
    qb = np.searchsorted(qcomp, j_key * span + (end_t - t0), side="left")
    diff = np.zeros(len(qts) + 1, dtype=np.float64)
    np.add.at(diff, qa, 1.0)
    np.add.at(diff, qb, -1.0)
    late = np.cumsum(diff[:-1])
    if perm is not None:
        unsorted = np.empty_like(late)
        unsorted[perm] = late
        late = unsorted
    return total - late
