"""Serving logic on top of the model: per member a ranked top-N with a score and a reason per
title, per region trending rows, per title similar titles, cold start and new titles.

* Already-watched titles are never recommended.
* A member with no known plays gets their region's trending titles (the global ones when the
  region has too few plays), reason "trending in your region".
* A title with no plays in the training window (a new release from the catalogue) cannot be
  scored by the collaborative model; up to ``NEW_SLOTS`` such titles whose genres/tags are
  close to the member's recent plays are placed at fixed positions, reason "new and similar
  to Y", until a retrain sees their plays.
* Every other reason is exact: the title the member watched whose weight contributed most
  to the recommended title's score ("because you watched X"), or trending when the
  popularity part of the blend outweighs every personal contribution.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from streamsense.recs.data import GLOBAL_REGION, Catalogue, Plays, content_matrix
from streamsense.recs.model import RecsModel, RecsParams

NEW_SLOTS = (2, 7)  # 0-based positions where new titles may be placed in a top-N
NEW_MIN_SIMILARITY = 0.3  # content cosine a new title needs to the member's taste
MIN_REGION_PLAYS = 50  # below this, a region's trending row falls back to the global one
HISTORY_CAP = 5_000  # newest titles kept per member: the already-watched filter reads them all
SCORING_CAP = 500  # newest titles the model scores from (older plays say little about taste)


@dataclass(frozen=True)
class Rec:
    title: str
    score: float
    reason: str  # "because_you_watched" | "trending_in_region" | "new_and_similar" | "popular"
    because: str | None = None  # the title id the reason names
    text: str = ""  # the row's caption, e.g. "Because you watched Heat (1995)"

    def to_item(self) -> dict[str, object]:
        out: dict[str, object] = {"title": self.title, "score": round(self.score, 6),
                                  "reason": self.reason, "text": self.text}
        if self.because is not None:
            out["because"] = self.because
        return out


@dataclass
class MemberState:
    """What serving knows about a member: title -> unix seconds of the latest play, region."""

    history: dict[str, int] = field(default_factory=dict)
    region: str = GLOBAL_REGION

    def add(self, title: str, ts: int) -> bool:
        """Record a play; False when it changes nothing (a replayed event): idempotent."""
        if self.history.get(title, -1) >= ts:
            return False
        self.history[title] = ts
        if len(self.history) > HISTORY_CAP:
            for old in sorted(self.history, key=self.history.__getitem__)[: len(self.history) - HISTORY_CAP]:
                del self.history[old]
        return True


@dataclass
class Recommender:
    model: RecsModel
    titles: np.ndarray  # str, index space of the model
    names: np.ndarray  # str
    content: sp.csr_matrix  # (n, f) L2-normalized content features
    regions: np.ndarray  # str
    region_trend: np.ndarray  # float32 (len(regions), n) decayed plays per region
    region_plays: np.ndarray  # int64 plays per region in the window
    new_titles: np.ndarray  # int indices of catalogue titles with no plays
    min_region_plays: int = MIN_REGION_PLAYS
    index: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.index = {str(t): i for i, t in enumerate(self.titles)}
        ease: Any = self.model.ease
        self._ease_csc: Any = ease.tocsc() if sp.issparse(ease) else np.asarray(ease)
        self._core_pos = np.full(len(self.titles), -1, dtype=np.int64)
        self._core_pos[self.model.core] = np.arange(len(self.model.core))

    # ---- training ------------------------------------------------------------------------

    @classmethod
    def train(cls, plays: Plays, catalogue: Catalogue | None = None,
              params: RecsParams | None = None) -> Recommender:
        cat = catalogue or Catalogue.empty()
        titles = np.array(sorted(set(plays.title.tolist()) | set(cat.title.tolist())), dtype=str)
        index = {t: i for i, t in enumerate(titles)}
        members, member_idx = np.unique(plays.member, return_inverse=True)
        del members
        item_idx = np.array([index[t] for t in plays.title], dtype=np.int64)
        model = RecsModel.fit(member_idx, item_idx, plays.ts, len(titles), params)
        names = titles.copy().astype(object)
        genres: list[tuple[str, ...]] = [() for _ in titles]
        tags: list[tuple[str, ...]] = [() for _ in titles]
        for t, nm, g, tg in zip(cat.title, cat.name, cat.genres, cat.tags, strict=True):
            i = index[str(t)]
            names[i], genres[i], tags[i] = str(nm), g, tg
        regions = np.array(sorted(set(plays.region.tolist()) | {GLOBAL_REGION}), dtype=str)
        trend = np.zeros((len(regions), len(titles)), dtype=np.float32)
        counts = np.zeros(len(regions), dtype=np.int64)
        hl = model.params.trend_half_life_days * 86_400.0
        decay = 0.5 ** ((model.window_end - plays.ts.astype(np.float64)) / hl)
        for r, name in enumerate(regions):
            mask = np.ones(len(plays), bool) if name == GLOBAL_REGION else plays.region == name
            trend[r] = np.bincount(item_idx[mask], weights=decay[mask], minlength=len(titles))
            counts[r] = int(mask.sum())
        played = np.zeros(len(titles), dtype=bool)
        played[item_idx] = True
        return cls(model=model, titles=titles, names=names.astype(str),
                   content=content_matrix(genres, tags), regions=regions, region_trend=trend,
                   region_plays=counts, new_titles=np.flatnonzero(~played))

    # ---- rows ----------------------------------------------------------------------------

    def name(self, i: int) -> str:
        return str(self.names[i])

    def _region_row(self, region: str) -> int:
        where = np.flatnonzero(self.regions == region)
        if len(where) and self.region_plays[where[0]] >= self.min_region_plays:
            return int(where[0])
        return int(np.flatnonzero(self.regions == GLOBAL_REGION)[0])

    def trending(self, region: str = GLOBAL_REGION, n: int = 20,
                 exclude: Sequence[int] = ()) -> list[Rec]:
        """A region's trending titles, then the global ones when the region is unknown, too
        small, or runs out (titles in ``exclude`` skipped)."""
        taken = set(int(i) for i in exclude)
        out: list[Rec] = []
        rows = [self._region_row(region)]
        if self.regions[rows[0]] != GLOBAL_REGION:
            rows.append(int(np.flatnonzero(self.regions == GLOBAL_REGION)[0]))
        for r in rows:
            scores = self.region_trend[r].astype(np.float64).copy()
            scores[np.fromiter(taken, dtype=np.int64, count=len(taken))] = -np.inf
            scores[scores <= 0] = -np.inf
            regional = self.regions[r] != GLOBAL_REGION
            reason = "trending_in_region" if regional else "popular"
            text = f"Trending in {self.regions[r]}" if regional else "Popular on streamsense"
            for i in _top(scores, n - len(out)):
                out.append(Rec(str(self.titles[i]), float(scores[i]), reason, None, text))
                taken.add(int(i))
            if len(out) >= n:
                break
        return out

    def similar_all(self, n: int = 20, block: int = 1024) -> dict[str, list[tuple[str, float]]]:
        """``similar`` for every title at once (the trainer's per-title rows), vectorized."""
        out: dict[str, list[tuple[str, float]]] = {}
        ease: Any = self.model.ease
        core = self.model.core
        dense = ease.toarray() if sp.issparse(ease) else np.asarray(ease)
        sym = dense + dense.T
        has = np.zeros(len(self.titles), dtype=bool)
        for start in range(0, len(core), block):
            rows = sym[start:start + block]
            for k, row in enumerate(rows):
                i = int(core[start + k])
                full = np.full(len(self.titles), -np.inf)
                full[core] = row
                full[i] = -np.inf
                full[full <= 0] = -np.inf
                top = _top_fast(full, n)
                if len(top):
                    has[i] = True
                    out[str(self.titles[i])] = [(str(self.titles[j]), float(full[j])) for j in top]
        rest = np.flatnonzero(~has)
        for start in range(0, len(rest), block):
            idx = rest[start:start + block]
            sims = (self.content[idx] @ self.content.T).toarray().astype(np.float64)
            for k, i in enumerate(idx):
                row = sims[k]
                row[i] = -np.inf
                row[row <= 0] = -np.inf
                top = _top_fast(row, n)
                if len(top):
                    out[str(self.titles[i])] = [(str(self.titles[j]), float(row[j])) for j in top]
        return out

    def similar(self, title: str, n: int = 20) -> list[tuple[str, float]]:
        """Titles most like ``title``: symmetrized EASE weights for titles with plays, content
        similarity (genres, tags) for the others."""
        i = self.index.get(title)
        if i is None:
            return []
        scores = np.zeros(len(self.titles), dtype=np.float64)
        pos = self._core_pos[i]
        if pos >= 0:
            ease: Any = self.model.ease
            row = ease[pos].toarray().ravel() if sp.issparse(ease) else np.asarray(ease[pos])
            col = (self._ease_csc[:, [pos]].toarray().ravel() if sp.issparse(self._ease_csc)
                   else self._ease_csc[:, pos])
            scores[self.model.core] = row + col
        scores[i] = 0.0
        if not (scores > 0).any():
            scores = (self.content @ self.content[i].T).toarray().ravel().astype(np.float64)
        scores[i] = -np.inf
        scores[scores <= 0] = -np.inf
        return [(str(self.titles[j]), float(scores[j])) for j in _top(scores, n)]

    # ---- per member ----------------------------------------------------------------------

    def recommend_many(self, members: Sequence[MemberState], n: int = 20) -> list[list[Rec]]:
        """Top-n per member, vectorized over the batch."""
        # Every kept title is filtered out; only the newest SCORING_CAP are scored from.
        known = [np.array([self.index[t] for t in m.history if t in self.index], dtype=np.int64)
                 for m in members]
        times = [np.array([m.history[str(self.titles[i])] for i in k], dtype=np.float64)
                 for m, k in zip(members, known, strict=True)]
        newest = [np.argsort(-ts, kind="stable")[:SCORING_CAP] for ts in times]
        known_s = [k[o] for k, o in zip(known, newest, strict=True)]
        times_s = [ts[o] for ts, o in zip(times, newest, strict=True)]
        warm = [u for u, k in enumerate(known) if len(k)]
        out: list[list[Rec]] = []
        parts = None
        if warm:
            hist = [(known_s[u], times_s[u]) for u in warm]
            now = [float(times_s[u].max()) for u in warm]
            ease, seq, trend, weights = self.model.components(hist, now)
            parts = self.model.blend_parts(ease, seq, trend)
            damp = self.model.ease_damping()
        row_of = {u: r for r, u in enumerate(warm)}
        for u, member in enumerate(members):
            if u not in row_of or parts is None:
                out.append(self.trending(member.region, n, exclude=known[u].tolist()))
                continue
            r = row_of[u]
            e, s, t = parts[0][r], parts[1][r], parts[2][r]
            scores = (e + s + t).astype(np.float64)
            scores[known[u]] = -np.inf
            scores[self.new_titles] = -np.inf
            # Only titles the member's plays actually point to are personal picks; the rest of
            # the list is backfilled from trending (a score of 0 says nothing about the member).
            scores[scores <= 0] = -np.inf
            top = _top(scores, n)
            x = weights[r].toarray().ravel()[known_s[u]]
            source = self._sources(top, known_s[u], times_s[u], x, float(parts[3][r]), float(parts[4][r]),
                                   damp)
            recs = []
            for k, i in enumerate(top):
                title = str(self.titles[i])
                if t[i] > e[i] + s[i] or source[k] < 0:
                    # The blend's trending part is the global one (the model's), so say so.
                    recs.append(Rec(title, float(scores[i]), "popular", None, "Popular on streamsense"))
                else:
                    j = int(source[k])
                    recs.append(Rec(title, float(scores[i]), "because_you_watched", str(self.titles[j]),
                                    f"Because you watched {self.name(j)}"))
            if len(recs) < n:
                taken = [*known[u].tolist(), *top.tolist()]
                recs += self.trending(member.region, n - len(recs), exclude=taken)
            out.append(self._with_new_titles(recs, known[u], times[u], n))
        return out

    def recommend(self, member: MemberState, n: int = 20) -> list[Rec]:
        return self.recommend_many([member], n)[0]

    def _sources(self, top: np.ndarray, items: np.ndarray, ts: np.ndarray, x: np.ndarray,
                 scale_e: float, scale_s: float, damp: np.ndarray) -> np.ndarray:
        """For each recommended title, the watched title with the largest share of its personal
        score: EASE weight x recency weight (x the title's damping and the member's scale),
        plus the what-comes-next transition from the member's last plays. -1 when no watched
        title contributes positively."""
        contrib = np.zeros((len(items), len(top)), dtype=np.float64)
        pos_t = self._core_pos[top]
        src = self._core_pos[items]
        ok_s, ok_t = src >= 0, pos_t >= 0
        if ok_s.any() and ok_t.any():
            cols: Any = self._ease_csc[:, pos_t[ok_t]]
            block = cols.toarray() if sp.issparse(cols) else np.asarray(cols)
            contrib[np.ix_(ok_s, ok_t)] += (x[ok_s, None] * block[src[ok_s]]
                                            * (damp[top[ok_t]] * scale_e)[None, :])
        if scale_s:
            last = np.argsort(-ts, kind="stable")[: self.model.params.seq_last]
            rows = self.model.seq[items[last]][:, top].toarray()
            contrib[last] += (0.5 ** np.arange(len(last)))[:, None] * rows * scale_s
        best = contrib.argmax(axis=0)
        found = contrib[best, np.arange(len(top))] > 0
        return np.where(found, items[best], -1)

    def _with_new_titles(self, recs: list[Rec], items: np.ndarray, ts: np.ndarray, n: int) -> list[Rec]:
        if not len(self.new_titles) or not self.content.nnz:
            return recs
        recent = items[np.argsort(-ts, kind="stable")[:20]]
        profile = np.asarray(self.content[recent].sum(axis=0)).ravel()
        norm = np.linalg.norm(profile)
        if norm == 0:
            return recs
        sims = (self.content[self.new_titles] @ (profile / norm)).astype(np.float64)
        # A member may already have played a "new" title (after the training window).
        sims[np.isin(self.new_titles, items)] = -np.inf
        order = [int(k) for k in np.argsort(-sims, kind="stable")[: len(NEW_SLOTS)]
                 if sims[k] >= NEW_MIN_SIMILARITY]
        for slot, k in zip(NEW_SLOTS, order, strict=False):
            new = int(self.new_titles[k])
            if slot >= n:
                break
            like = (self.content[recent] @ self.content[new].T).toarray().ravel()
            j = int(recent[int(np.argmax(like))])
            rec = Rec(str(self.titles[new]), float(sims[k]), "new_and_similar", str(self.titles[j]),
                      f"New and similar to {self.name(j)}")
            recs.insert(min(slot, len(recs)), rec)
        return recs[:n]


def _top(scores: np.ndarray, n: int) -> np.ndarray:
    """Indices of the n best finite scores, best first, ties by index (deterministic)."""
    finite = np.flatnonzero(np.isfinite(scores))
    if len(finite) == 0:
        return finite
    order = np.lexsort((finite, -scores[finite]))
    return finite[order[:n]]


def _top_fast(scores: np.ndarray, n: int) -> np.ndarray:
    """``_top`` for long rows: partition first, then order the few candidates."""
    finite = np.isfinite(scores)
    k = int(finite.sum())
    if k <= n:
        return _top(scores, n)
    part = np.argpartition(-np.where(finite, scores, -np.inf), n)[: n + 1]
    # Ties at the boundary are resolved by index like _top: include every tied candidate.
    cut = np.sort(scores[part])[::-1][n - 1]
    cand = np.flatnonzero(scores >= cut)
    order = np.lexsort((cand, -scores[cand]))
    return cand[order[:n]]


def states_from_plays(plays: Plays) -> dict[str, MemberState]:
    """Each member's latest play per title and most frequent region, from an export."""
    states: dict[str, MemberState] = {}
    region_counts: dict[str, dict[str, int]] = {}
    for m, t, ts, r in zip(plays.member, plays.title, plays.ts, plays.region, strict=True):
        st = states.setdefault(str(m), MemberState())
        st.history[str(t)] = max(int(ts), st.history.get(str(t), -1))
        rc = region_counts.setdefault(str(m), {})
        rc[str(r)] = rc.get(str(r), 0) + 1
    for m, st in states.items():
        st.region = max(sorted(region_counts[m]), key=region_counts[m].__getitem__)
        if len(st.history) > HISTORY_CAP:
            keep = sorted(st.history, key=st.history.__getitem__)[-HISTORY_CAP:]
            st.history = {t: st.history[t] for t in keep}
    return states


def merge_history(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
    out = dict(a)
    for t, ts in b.items():
        out[t] = max(ts, out.get(t, -1))
    return out
