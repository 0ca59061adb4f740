"""The recommendation model: a time-aware blend chosen by measurement (benchmarks.md section 2).

Three signals, each a linear function of what a member has watched, so a new play is folded in
by recomputing one member's scores (no retrain) and every score can be explained by the title
that contributed most to it:

* **EASE** (Steck 2019) item-item weights ``B`` on the "core" titles (>= ``min_count`` plays in
  the training window). The member's history enters with recency weights: the most recent plays
  count fully, older ones decay towards a floor (what members watched last says most about what
  they watch next).
* **What comes next**: time-ordered item-item transitions (title j played within the next few
  plays after title i by the same member, weighted 1/gap), row-normalized and damped by the
  target's popularity. Scored from the member's last ``seq_last`` plays, most recent first.
* **Trending**: plays of the last days, exponentially decayed to "now" (half-life
  ``trend_half_life_days``), computed causally from plays before "now" only.

Each signal is scaled per member by its largest value so that the blend weights mean the same
thing for a member with 5 plays and one with 500. The EASE part is divided by
popularity**``pop_alpha`` so that exposure spreads past the blockbusters (coverage).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.linalg import lapack

DAY_S = 86_400.0


@dataclass(frozen=True)
class RecsParams:
    """Hyperparameters. The defaults are the values chosen on protocol B's validation users
    (time-ordered, as production sees it): ``python -m streamsense_bench.recs_tune b``.
    ``STATIC_PARAMS`` is the choice for protocol A, whose fold-in input is a random subset of a
    member's history (no order to exploit): ``python -m streamsense_bench.recs_tune a``."""

    lam: float = 800.0  # EASE L2 regularization
    min_count: int = 3  # plays a title needs in the window to enter the EASE core
    # The core's size bound: EASE needs 4 n^2 bytes and ~n^3/1.5 flops, so 20,000 titles is
    # ~1.6 GB and minutes of CPU (fits a 10 GB / 15 min Lambda); beyond it only the most-played
    # titles are in the core and the rest are reached through transitions and content.
    max_core: int = 20_000
    recency_floor: float = 0.05  # weight of a member's oldest plays (the newest weigh 1)
    recency_plays: float = 5.0  # e-folding length of the recency decay, in plays
    seq_window: int = 3  # transitions counted up to this many plays ahead
    seq_last: int = 5  # a member's last plays that feed the "what comes next" signal
    w_seq: float = 0.5
    w_trend: float = 0.0
    trend_half_life_days: float = 30.0
    pop_alpha: float = 0.25  # popularity damping of the EASE part (coverage)
    seq_pop_alpha: float = 0.5  # popularity damping of the transition targets
    # Keep each title's 256 strongest incoming EASE weights: the artifact drops from ~100 MB to
    # ~10 MB at no loss on validation (NDCG@10 0.1365 dense vs 0.1390 pruned, 3 seeds).
    ease_keep: int = 256

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, float | int]) -> RecsParams:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})  # type: ignore[arg-type]


#: Chosen on protocol A's validation users (order-free input: no recency, no transitions).
STATIC_PARAMS = RecsParams(lam=400.0, min_count=2, recency_floor=1.0, w_seq=0.0, w_trend=0.05,
                           pop_alpha=0.25, ease_keep=0)


def ease_weights(gram: np.ndarray, lam: float, overwrite: bool = False) -> np.ndarray:
    """EASE closed form in float32 via Cholesky (potrf/potri: ~3x faster than a general inverse):
    P = (G + lam I)^-1, B = -P / diag(P), diag(B) = 0. Works in place on one n x n buffer (the
    peak memory of training is this matrix, 4 n^2 bytes, when ``overwrite`` hands it over)."""
    g = np.asarray(gram, dtype=np.float32)
    # A symmetric C-ordered matrix's transpose is the same matrix in Fortran order: no copy.
    g = g.T if g.flags.c_contiguous and not g.flags.f_contiguous else np.asfortranarray(g)
    if not overwrite and np.shares_memory(g, gram):
        g = g.copy(order="F")
    n = g.shape[0]
    g[np.diag_indices(n)] += np.float32(lam)
    c, info = lapack.spotrf(g, lower=1, overwrite_a=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"Cholesky failed ({info}): increase lam")
    p, info = lapack.spotri(c, lower=1, overwrite_c=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"inverse failed ({info})")
    # potri fills the lower triangle: mirror it to the upper one block by block, in place.
    block = 512
    for s0 in range(0, n, block):
        e0 = min(s0 + block, n)
        diag = p[s0:e0, s0:e0]
        p[s0:e0, s0:e0] = np.tril(diag) + np.tril(diag, -1).T
        p[s0:e0, e0:] = p[e0:, s0:e0].T
    d = np.diag(p).copy()
    p /= -d[None, :]
    p[np.diag_indices(n)] = 0.0
    return p


@dataclass
class RecsModel:
    """A trained model over a catalogue of ``n`` titles (indices 0..n-1)."""

    params: RecsParams
    n_items: int
    core: np.ndarray  # int32 indices of the EASE titles
    ease: np.ndarray | sp.csr_matrix  # float32 (len(core), len(core)); sparse when pruned
    seq: sp.csr_matrix  # float32 (n, n) transitions, damped
    pop: np.ndarray  # float32 (n,) plays in the window
    window_end: float  # unix seconds of the newest training play
    trend_end: np.ndarray  # float32 (n,) decayed plays at window_end
    # Training plays sorted by time (kept in memory for trending at earlier times; not saved).
    event_items: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    event_ts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))

    # ---- training ------------------------------------------------------------------------

    @classmethod
    def fit(cls, users: np.ndarray, items: np.ndarray, ts: np.ndarray, n_items: int,
            params: RecsParams | None = None) -> RecsModel:
        """Train on plays (user index, item index, unix seconds); one play per (user, item)
        counts once for EASE, every play counts for transitions and trending."""
        p = params or RecsParams()
        users = np.asarray(users, dtype=np.int64)
        items = np.asarray(items, dtype=np.int64)
        ts = np.asarray(ts, dtype=np.float64)
        n_users = int(users.max()) + 1 if len(users) else 0
        x = sp.csr_matrix((np.ones(len(users), np.float32), (users, items)),
                          shape=(n_users, n_items))
        x.sum_duplicates()
        x.data[:] = 1.0
        pop = np.asarray(x.sum(axis=0)).ravel().astype(np.float32)
        core = np.flatnonzero(pop >= p.min_count)
        if len(core) > p.max_core:
            core = np.sort(core[np.argsort(-pop[core], kind="stable")[: p.max_core]])
        core = core.astype(np.int32)
        xc = x[:, core]
        gram = (xc.T @ xc).toarray()
        ease: np.ndarray | sp.csr_matrix = (ease_weights(gram, p.lam, overwrite=True) if len(core)
                                            else np.zeros((0, 0), np.float32))
        if p.ease_keep and len(core) > p.ease_keep:
            ease = prune_columns(np.asarray(ease), p.ease_keep)
        seq = _transitions(users, items, ts, n_items, p.seq_window, pop, p.seq_pop_alpha)
        order = np.argsort(ts, kind="stable")
        ev_items, ev_ts = items[order].astype(np.int32), ts[order]
        end = float(ev_ts[-1]) if len(ev_ts) else 0.0
        model = cls(params=p, n_items=n_items, core=core, ease=ease, seq=seq, pop=pop,
                    window_end=end, trend_end=np.zeros(n_items, np.float32),
                    event_items=ev_items, event_ts=ev_ts)
        model.trend_end = model._trending_from_events(end)
        return model

    # ---- signals -------------------------------------------------------------------------

    def trending(self, now: float) -> np.ndarray:
        """Plays decayed to ``now`` (half-life in days), from plays at or before ``now`` only."""
        hl = self.params.trend_half_life_days * DAY_S
        if now >= self.window_end or len(self.event_ts) == 0:
            return (self.trend_end * np.float32(0.5 ** (max(0.0, now - self.window_end) / hl))
                    ).astype(np.float32)
        return self._trending_from_events(now)

    def _trending_from_events(self, now: float) -> np.ndarray:
        hl = self.params.trend_half_life_days * DAY_S
        k = int(np.searchsorted(self.event_ts, now, side="right"))
        w = 0.5 ** ((now - self.event_ts[:k]) / hl)
        return np.bincount(self.event_items[:k], weights=w, minlength=self.n_items).astype(np.float32)

    def recency_weights(self, ts: np.ndarray) -> np.ndarray:
        """Weight of each of one member's plays by how many plays ago it was (newest = 1)."""
        p = self.params
        order = np.argsort(-np.asarray(ts, dtype=np.float64), kind="stable")
        age = np.empty(len(order), dtype=np.float64)
        age[order] = np.arange(len(order))
        return (p.recency_floor + (1 - p.recency_floor) * np.exp(-age / p.recency_plays)).astype(np.float32)

    def components(self, histories: Sequence[tuple[np.ndarray, np.ndarray]],
                   now: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray, sp.csr_matrix]:
        """The three raw signals for a batch of members, each (n_members, n_items), plus the
        recency-weighted history matrix (what "because you watched" is computed from).
        ``histories[u] = (item indices, unix seconds)``."""
        p = self.params
        n_u = len(histories)
        rows: list[np.ndarray] = []
        cols: list[np.ndarray] = []
        vals: list[np.ndarray] = []
        srows: list[np.ndarray] = []
        scols: list[np.ndarray] = []
        svals: list[np.ndarray] = []
        for u, (it, t) in enumerate(histories):
            it = np.asarray(it, dtype=np.int64)
            if len(it) == 0:
                continue
            w = self.recency_weights(t)
            rows.append(np.full(len(it), u))
            cols.append(it)
            vals.append(w)
            last = np.argsort(-np.asarray(t, dtype=np.float64), kind="stable")[: p.seq_last]
            srows.append(np.full(len(last), u))
            scols.append(it[last])
            svals.append((0.5 ** np.arange(len(last))).astype(np.float32))
        hist = sp.csr_matrix((_cat(vals, np.float32), (_cat(rows, np.int64), _cat(cols, np.int64))),
                             shape=(n_u, self.n_items))
        last_m = sp.csr_matrix((_cat(svals, np.float32), (_cat(srows, np.int64), _cat(scols, np.int64))),
                               shape=(n_u, self.n_items))
        ease = np.zeros((n_u, self.n_items), dtype=np.float32)
        if len(self.core):
            part = hist[:, self.core] @ self.ease
            ease[:, self.core] = part.toarray() if sp.issparse(part) else part
        seq = np.asarray((last_m @ self.seq).todense(), dtype=np.float32)
        trend = np.stack([self.trending(float(t)) for t in now]) if n_u else np.zeros((0, self.n_items), np.float32)
        return ease, seq, trend, hist

    def scores(self, histories: Sequence[tuple[np.ndarray, np.ndarray]],
               now: Sequence[float]) -> np.ndarray:
        """Blended scores (n_members, n_items); higher is better; history not yet masked."""
        ease, seq, trend, _ = self.components(histories, now)
        return self.blend(ease, seq, trend)

    def blend(self, ease: np.ndarray, seq: np.ndarray, trend: np.ndarray) -> np.ndarray:
        e, s, t, _, _ = self.blend_parts(ease, seq, trend)
        return e + s + t

    def blend_parts(self, ease: np.ndarray, seq: np.ndarray, trend: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The three weighted parts of the blended score, and the per-member factors that turn
        a raw EASE / transition weight into its share of the score (used to explain it):
        part_e[u, i] = raw_e[u, i] * damp[i] * scale_e[u]; part_s[u, i] = raw_s[u, i] * scale_s[u]."""
        p = self.params
        damp = self.ease_damping()
        ease = ease * damp
        scale_e = 1.0 / _row_max(ease)
        scale_s = np.float32(p.w_seq) / _row_max(seq)
        scale_t = np.float32(p.w_trend) / _row_max(trend)
        return (ease * scale_e[:, None], seq * scale_s[:, None], trend * scale_t[:, None],
                scale_e, scale_s)

    def ease_damping(self) -> np.ndarray:
        """Per-title factor on the EASE part: popularity**-pop_alpha (spreads exposure)."""
        if not self.params.pop_alpha:
            return np.ones(self.n_items, dtype=np.float32)
        return np.power(self.pop + 1.0, -self.params.pop_alpha, dtype=np.float32)


def _row_max(m: np.ndarray) -> np.ndarray:
    """Largest absolute value per row (1 for rows of zeros, so they stay zero)."""
    top = (np.abs(m).max(axis=1) if m.size else np.ones(m.shape[0])).astype(np.float32)
    top[top == 0] = 1.0
    return top


def _cat(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)


def prune_columns(b: np.ndarray, keep: int, block: int = 512) -> sp.csr_matrix:
    """Keep, for each target title (column), its ``keep`` largest-magnitude source weights:
    the served artifact shrinks from n^2 to n*keep floats (sparse EASE). Column blocks bound
    the extra memory to n*block values."""
    n_rows, n_cols = b.shape
    keep = min(keep, n_rows)
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    for s0 in range(0, n_cols, block):
        part = np.asarray(b[:, s0:s0 + block])
        mag = np.abs(part)
        top = np.argpartition(-mag, keep - 1, axis=0)[:keep]
        cidx = np.broadcast_to(np.arange(part.shape[1]), top.shape)
        v = part[top, cidx]
        nz = v != 0
        rows.append(top[nz].astype(np.int32))
        cols.append((cidx[nz] + s0).astype(np.int32))
        vals.append(v[nz].astype(np.float32))
    out = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                        shape=(n_rows, n_cols), dtype=np.float32)
    out.sort_indices()
    return out


def _transitions(users: np.ndarray, items: np.ndarray, ts: np.ndarray, n_items: int,
                 window: int, pop: np.ndarray, pop_alpha: float) -> sp.csr_matrix:
    """T[i, j]: how often j was played 1..window plays after i by the same member (weight
    1/gap), row-normalized, columns damped by popularity**pop_alpha."""
    order = np.lexsort((ts, users))
    u, it = users[order], items[order]
    src: list[np.ndarray] = []
    dst: list[np.ndarray] = []
    wts: list[np.ndarray] = []
    for gap in range(1, window + 1):
        same = u[gap:] == u[:-gap]
        src.append(it[:-gap][same])
        dst.append(it[gap:][same])
        wts.append(np.full(int(same.sum()), 1.0 / gap, dtype=np.float32))
    t = sp.csr_matrix((np.concatenate(wts), (np.concatenate(src), np.concatenate(dst))),
                      shape=(n_items, n_items), dtype=np.float32)
    t.sum_duplicates()
    t.setdiag(0.0)
    t.eliminate_zeros()
    row = np.asarray(t.sum(axis=1)).ravel()
    row[row == 0] = 1.0
    damp = np.power(np.maximum(pop, 1.0), -pop_alpha).astype(np.float32)
    return sp.csr_matrix(sp.diags(1.0 / row) @ t @ sp.diags(damp), dtype=np.float32)
