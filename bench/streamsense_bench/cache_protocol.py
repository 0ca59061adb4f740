"""Benchmark 3a's protocol (benchmarks.md section 3a): for every week w from the 5th on and
every country c that published week w, a ranked hint list made from weeks before w only,
scored against c's 20 titles of week w.

Metrics per country-week, then averaged over country-weeks (new-entry recall over the
country-weeks that have new entries, i.e. all of them here):
- recall@K = |hints[:K] & chart| / 20, K = 10, 20, 40;
- rank-weighted recall@20: a charted title at rank r (within its category) weighs 1/r;
- new-entry recall@40: of the chart's titles not in c's list of week w-1, the share in hints[:40].

Anchors: persistence (c's list of w-1 in chart order, then the global count), the global count
(number of countries charting a title in w-1; ties by best rank, then title), and their union
(interleaved, duplicates dropped).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from streamsense.caching.forecast import DemandForecaster, ForecastConfig

from streamsense_bench.cache_top10 import Top10

FIRST_WEEK = 4  # the 5th week (0-based index 4): the first with four weeks of history
VALIDATION_WEEKS = range(4, 16)  # tuning happens here only (2021-08-01 .. 2021-10-17)
K_MAX = 40
METRICS = ("recall10", "recall20", "recall40", "weighted_recall20", "new_entry_recall40")

#: The product's 3a configuration, chosen on VALIDATION_WEEKS by cache_tune (see its docstring):
#: a weekly refit (retrain_every=1) and stronger regularization; every other setting tried moved
#: the validation criterion by less than its noise or made it worse.
PRODUCT_CONFIG = ForecastConfig(
    objective="presence",
    scorer="gbm",
    candidate_window=4,
    own_window=26,
    negative_rate=0.05,
    retrain_every=1,
    min_train_windows=3,
    max_iter=100,
    learning_rate=0.1,
    max_depth=4,
    min_samples_leaf=500,
    l2_regularization=10.0,
)

HintFn = Callable[[int, int], Sequence[int]]  # (week, country) -> title indices, best first


@dataclass
class Scores:
    """Per country-week metric values (rows) for one method."""

    weeks: np.ndarray
    countries: np.ndarray
    values: np.ndarray  # [n, 5] in METRICS order; new-entry NaN where no new entry

    def mean(self, weeks: Iterable[int] | None = None) -> dict[str, float]:
        sel = np.ones(len(self.weeks), bool) if weeks is None else np.isin(self.weeks, list(weeks))
        v = self.values[sel]
        out = {}
        for i, m in enumerate(METRICS):
            col = v[:, i][~np.isnan(v[:, i])]
            out[m] = float(col.mean()) if len(col) else float("nan")
        return out


def score_country_week(top: Top10, week: int, country: int, hints: Sequence[int]) -> np.ndarray:
    chart = top.rank[week, country]
    hits = np.zeros(len(top.titles), bool)
    h = np.asarray(list(hints)[:K_MAX], np.int64)
    if len(h) != len(set(h.tolist())):
        raise ValueError("hints must not repeat a title")
    out = np.zeros(len(METRICS))
    listed = chart > 0
    for i, k in enumerate((10, 20, 40)):
        hits[:] = False
        hits[h[:k]] = True
        out[i] = (hits & listed).sum() / listed.sum()
    hits[:] = False
    hits[h[:20]] = True
    weight = np.where(listed, 1.0 / np.maximum(chart, 1), 0.0)
    out[3] = weight[hits].sum() / weight.sum()
    new = listed & (top.rank[week - 1, country] == 0)
    hits[:] = False
    hits[h[:40]] = True
    out[4] = (new & hits).sum() / new.sum() if new.any() else np.nan
    return out


def evaluate(top: Top10, hint_fn: HintFn, weeks: Iterable[int] | None = None) -> Scores:
    weeks = range(FIRST_WEEK, len(top.weeks)) if weeks is None else weeks
    rows, ws, cs = [], [], []
    for w in weeks:
        for c in range(len(top.countries)):
            if not top.observed[w, c]:
                continue  # no list to score (Russia after 2022-02-27)
            rows.append(score_country_week(top, w, c, hint_fn(w, c)))
            ws.append(w)
            cs.append(c)
    return Scores(np.array(ws), np.array(cs), np.array(rows))


# ---- anchors --------------------------------------------------------------------------


def global_count(top: Top10, week: int) -> list[int]:
    """Titles by the number of countries charting them in ``week`` (ties: best rank, title)."""
    listed = top.rank[week] > 0
    n = listed.sum(axis=0)
    best = np.where(listed, top.rank[week], 99).min(axis=0)
    t = np.flatnonzero(n)
    order = sorted(t, key=lambda i: (-int(n[i]), int(best[i]), top.titles[i]))
    return [int(i) for i in order]


def previous_list(top: Top10, week: int, country: int) -> list[int]:
    """c's chart of ``week`` in chart order (F1, T1, F2, T2, ...); empty if unpublished."""
    r = top.rank[week, country]
    t = np.flatnonzero(r)
    return [int(i) for i in sorted(t, key=lambda i: (int(r[i]), not bool(top.is_film[i])))]


class Anchors:
    def __init__(self, top: Top10) -> None:
        self.top = top
        self._global: dict[int, list[int]] = {}

    def _g(self, week: int) -> list[int]:
        if week not in self._global:
            self._global[week] = global_count(self.top, week)
        return self._global[week]

    def persistence(self, week: int, country: int) -> list[int]:
        own = previous_list(self.top, week - 1, country)
        seen = set(own)
        return own + [t for t in self._g(week - 1) if t not in seen]

    def global_(self, week: int, country: int) -> list[int]:
        return self._g(week - 1)

    def union(self, week: int, country: int) -> list[int]:
        out: list[int] = []
        seen: set[int] = set()
        for a, b in zip(self.persistence(week, country), self._g(week - 1), strict=False):
            for t in (a, b):
                if t not in seen:
                    seen.add(t)
                    out.append(t)
        return out


# ---- the product ------------------------------------------------------------------------


def product_hints(
    top: Top10,
    config: ForecastConfig = PRODUCT_CONFIG,
    weeks: Iterable[int] | None = None,
    k: int = K_MAX,
    progress: Callable[[int, int], None] | None = None,
) -> dict[tuple[int, int], list[int]]:
    """Walk forward: observe week w-1, forecast week w. The forecaster is only ever handed
    past weeks (``DemandHistory.window``), so a hint for week w cannot depend on week w or
    later. Returns the top ``k`` titles per (week, country)."""
    history = top.history()
    weeks = list(range(FIRST_WEEK, len(top.weeks)) if weeks is None else weeks)
    last = max(weeks)
    fc = DemandForecaster(history.regions, history.titles, config, group=history.group)
    out: dict[tuple[int, int], list[int]] = {}
    for w in range(0, last + 1):
        if w in weeks:
            forecast = fc.forecast()
            for c in range(len(history.regions)):
                out[(w, c)] = [int(t) for t in forecast.ranked[c][:k]]
            if progress is not None:
                progress(w, last)
        if w == last:
            break
        demand, observed, global_demand = history.window(w)
        fc.observe(demand, observed, global_demand)
    return out


#: Kinds of a chart title of (week w, country c), by what the history before w says about it.
ENTRY_KINDS = (
    "stayer",  # in c's list of w-1
    "back_here",  # in c's lists before w-1, not in w-1
    "elsewhere_last_week",  # never in c's lists; in another country's or a global list of w-1
    "elsewhere_earlier",  # never in c's lists; in some list before w-1 only
    "launch",  # in no list before w: no history can name it
)


def entry_breakdown(top: Top10, hints: dict[str, HintFn], weeks: Iterable[int] | None = None, ks: Sequence[int] = (20, 40)) -> dict[str, dict[str, float]]:
    """Per kind of chart title: its share of all chart entries, and each method's recall@k on
    it (pooled over country-weeks). It says where recall is lost and what no history can reach."""
    weeks = list(range(FIRST_WEEK, len(top.weeks)) if weeks is None else weeks)
    listed = top.rank > 0
    in_any = listed.any(axis=1) | (top.global_rank > 0)  # [W, T]
    before_any: np.ndarray = np.cumsum(in_any, axis=0) - in_any  # lists before week w, [W, T]
    before_here: np.ndarray = np.cumsum(listed, axis=0) - listed  # [W, C, T]
    counts = np.zeros(len(ENTRY_KINDS))
    found = {(m, k): np.zeros(len(ENTRY_KINDS)) for m in hints for k in ks}
    for w in weeks:
        for c in range(len(top.countries)):
            if not top.observed[w, c]:
                continue
            t = np.flatnonzero(listed[w, c])
            kind = np.select(
                [listed[w - 1, c, t], before_here[w - 1, c, t] > 0, in_any[w - 1, t], before_any[w - 1, t] > 0],
                [0, 1, 2, 3],
                default=4,
            )
            np.add.at(counts, kind, 1)
            for m, fn in hints.items():
                h = list(fn(w, c))
                for k in ks:
                    hit = np.isin(t, h[:k])
                    np.add.at(found[(m, k)], kind[hit], 1)
    total = counts.sum()
    out: dict[str, dict[str, float]] = {}
    for i, name in enumerate(ENTRY_KINDS):
        row = {"share": float(counts[i] / total)}
        for (m, k), v in found.items():
            row[f"{m}_recall{k}"] = float(v[i] / counts[i]) if counts[i] else float("nan")
        out[name] = row
    return out


def run_3a(
    top: Top10, config: ForecastConfig = PRODUCT_CONFIG, progress: Callable[[int, int], None] | None = None
) -> tuple[dict[str, Scores], dict[str, dict[str, float]]]:
    """The product and the anchors scored on every country-week from FIRST_WEEK, and the
    breakdown of chart titles by kind (product and persistence)."""
    anchors = Anchors(top)
    hints = product_hints(top, config, progress=progress)
    product: HintFn = lambda w, c: hints[(w, c)]  # noqa: E731
    scores = {
        "product": evaluate(top, product),
        "persistence": evaluate(top, anchors.persistence),
        "global": evaluate(top, anchors.global_),
        "union": evaluate(top, anchors.union),
    }
    return scores, entry_breakdown(top, {"product": product, "persistence": anchors.persistence})
