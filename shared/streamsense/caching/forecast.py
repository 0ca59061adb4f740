"""Next-window demand per (region, title): the product's forecaster.

It is a streaming object: ``observe(window)`` appends what happened, ``forecast()`` scores the
next window. Training data are made the same way: when a window is observed, the features the
forecaster had for it *before* seeing it are labeled with what happened and kept (all
positives, titles the region had, and a seeded sample of the other candidates, reweighted), so
the model is only ever fitted on windows that lie in the past of every forecast it makes.

Two scorers over the same features (``streamsense.caching.features``), chosen by measurement:
- ``trend``: closed form, no fitting: the region's own recent share (persistence) + the chance
  the title arrives from the regions where it is present now (learned transfer probabilities)
  x the share it has there + the launch calendar's prior for titles released in the window;
- ``gbm``: scikit-learn's HistGradientBoosting over the features, refitted every few windows
  on the labeled past: a classifier for "will it be in the region's chart" (objective
  ``presence``) or a Poisson regressor of its share of the region's plays (``volume``). Until
  enough windows are labeled, ``gbm`` falls back to ``trend``.

Every scored pair can say why (``explain``): the region's own history, a trend from a named
source region, the global signal, or the launch calendar.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from threadpoolctl import threadpool_limits

from streamsense.caching.features import FEATURES, F, FeatureState

Objective = Literal["presence", "volume"]
VOLUME_SCALE = 1000.0
SCORE_CHUNK = 131_072  # candidate rows scored at once
Scorer = Literal["trend", "gbm"]


@dataclass(frozen=True)
class ForecastConfig:
    objective: Objective = "presence"
    scorer: Scorer = "gbm"
    candidate_window: int = 4  # titles seen anywhere in the last N windows are candidates
    own_window: int = 26  # ... and titles seen in the region in the last N windows
    period: int | None = None  # windows per day for sub-day windows (a same-time-yesterday lag)
    transfer_prior: float = 5.0
    transfer_decay: float = 1.0  # < 1 forgets old region-to-region evidence
    ewma_halflives: tuple[float, float] = (2.0, 8.0)  # windows
    # trend scorer
    # weights of (own short EWMA, own long EWMA, all-region short EWMA) in the volume trend
    level_weights: tuple[float, float, float] = (0.5, 0.3, 0.2)
    arrival_weight: float = 1.0
    launch_weight: float = 1.0
    # gbm scorer
    negative_rate: float = 0.05  # share of easy negatives kept for training (reweighted)
    retrain_every: int = 4
    min_train_windows: int = 3
    min_train_rows: int = 2000  # below this a fitted model is noise: stay with the trend scorer
    max_train_rows: int = 400_000
    max_window_rows: int | None = None  # labeled rows kept per window (seeded draw, reweighted): bounds memory
    max_train_windows: int | None = None
    max_iter: int = 100
    learning_rate: float = 0.1
    max_depth: int | None = 4
    min_samples_leaf: int = 200
    l2_regularization: float = 0.0
    volume_loss: Literal["poisson", "squared_error"] = "poisson"
    threads: int = 1  # OpenMP threads for fit/predict: 1 is fastest on a shared or 1-2 vCPU box
    seed: int = 0


@dataclass(frozen=True)
class Reason:
    kind: Literal["own", "trend", "global", "calendar"]
    source: str | None = None  # the trend's source region
    detail: str = ""


@dataclass
class Forecast:
    """Scores for window ``window`` (the next one), per region, best first."""

    window: int
    regions: list[str]
    titles: list[str]
    ranked: list[np.ndarray]  # per region: title indices, best first
    scores: list[np.ndarray]  # per region: the matching scores
    features: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # region -> (titles, X)

    def top(self, region: int, k: int) -> list[tuple[int, float]]:
        return [(int(t), float(s)) for t, s in zip(self.ranked[region][:k], self.scores[region][:k], strict=True)]


class QuantileBinner:
    """Per-feature quantile codes (at most 255 distinct values), computed before boosting.

    HistGradientBoosting bins features itself, but with sample weights and fewer than 200,000
    rows it finds every threshold with its own weighted-percentile sort (seconds per fit);
    handed at most 255 distinct values per column it takes them as they are. The thresholds
    here are plain quantiles of the training rows, the same at predict time."""

    def __init__(self, thresholds: list[np.ndarray]) -> None:
        self.thresholds = thresholds

    @classmethod
    def fit(cls, X: np.ndarray, bins: int = 255) -> QuantileBinner:
        qs = np.linspace(0, 1, bins + 1)[1:-1]
        return cls([np.unique(np.quantile(X[:, j], qs)) for j in range(X.shape[1])])

    def transform(self, X: np.ndarray) -> np.ndarray:
        out = np.empty(X.shape, np.float32)
        for j, th in enumerate(self.thresholds):
            out[:, j] = np.searchsorted(th, X[:, j], side="left")
        return out


@dataclass(frozen=True)
class FittedModel:
    binner: QuantileBinner
    model: object
    config: ForecastConfig


class DemandForecaster:
    def __init__(
        self,
        regions: list[str],
        titles: list[str],
        config: ForecastConfig | None = None,
        *,
        group: np.ndarray | None = None,
        release: np.ndarray | None = None,
    ) -> None:
        self.config = cfg = config or ForecastConfig()
        self.regions = list(regions)
        self.titles = list(titles)
        self.state = FeatureState(
            len(regions),
            len(titles),
            group=group,
            release=release,
            period=cfg.period,
            transfer_prior=cfg.transfer_prior,
            transfer_decay=cfg.transfer_decay,
            ewma_halflives=cfg.ewma_halflives,
        )
        self.launch_share = np.zeros(len(regions))  # learned mean share of a launch in its window
        self._launch_n = np.zeros(len(regions))
        self._rows_cache: tuple[int, np.ndarray, np.ndarray, np.ndarray] | None = None
        self._train: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []  # (window, X, y, weight)
        self._model: object | None = None
        self._binner: QuantileBinner | None = None
        self._model_window = -1
        self.fits = 0

    # ---- input --------------------------------------------------------------------------

    def observe(
        self,
        demand: np.ndarray,
        observed: np.ndarray,
        global_demand: np.ndarray | None = None,
        *,
        refit: bool = True,
        label: bool = True,
    ) -> None:
        """Append window ``self.state.n``; label the features held for it; refit if due
        (``refit=False`` when replaying a history whose only forecast comes at the end: call
        ``fit()`` once after the last window; ``label=False`` when a fitted model is reused
        (``use``): no training rows are needed then)."""
        demand = np.asarray(demand, np.float32)
        observed = np.asarray(observed, bool)
        w = self.state.n
        if w >= 1 and label and self.config.scorer == "gbm":
            self._label(w, demand, observed)
        self._learn_launches(w, demand, observed)
        self.state.observe(demand, observed, global_demand)
        self._rows_cache = None
        if refit:
            self._maybe_fit()

    def _label(self, w: int, demand: np.ndarray, observed: np.ndarray) -> None:
        """Keep the features the forecaster had for window ``w``, labeled with what happened.
        Which rows are kept depends only on the labels, the last window's shares and a seeded
        draw, so the rows (and their features) are the same whether or not a forecast was made."""
        if self._rows_cache is not None and self._rows_cache[0] == self.state.n:
            r, t = self._rows_cache[1], self._rows_cache[2]
        else:
            r, t = np.nonzero(self.state.candidates(self.config.candidate_window, self.config.own_window))
        totals = demand.sum(axis=1)
        share = np.divide(demand[r, t], totals[r], out=np.zeros(len(r), np.float32), where=totals[r] > 0)
        # Shares are scaled to "per 1,000 requests": Poisson boosting takes Newton steps of
        # (y - p) / p, which explode when targets are of the order of 1e-5.
        y = (share > 0).astype(np.float32) if self.config.objective == "presence" else share * VOLUME_SCALE
        own1 = self.state.shares[-1][r, t]
        rng = np.random.default_rng([self.config.seed, w])
        rate = self.config.negative_rate
        hard = (y > 0) | (own1 > 0)
        keep = (hard | (rng.random(len(y)) < rate)) & observed[r]
        weight = np.where(hard, 1.0, 1.0 / rate).astype(np.float32)
        cap = self.config.max_window_rows
        n_keep = int(keep.sum())
        if cap is not None and n_keep > cap:
            # At catalogue x site scale the labeled rows of every window would not fit in a
            # Lambda's memory before the fit's own subsample: thin them here, same reweighting.
            picked = np.flatnonzero(keep)
            drop = picked[rng.permutation(n_keep)[cap:]]
            keep[drop] = False
            weight = weight * np.float32(n_keep / cap)
        if self._rows_cache is not None and self._rows_cache[0] == self.state.n:
            X = self._rows_cache[3][keep]
        else:
            X = self.state.matrix(r[keep], t[keep])
        self._train.append((w, X, y[keep], weight[keep]))

    def _learn_launches(self, w: int, demand: np.ndarray, observed: np.ndarray) -> None:
        launched = np.flatnonzero(self.state.release == w)
        if not len(launched):
            return
        totals = demand.sum(axis=1)
        for r in np.flatnonzero(observed & (totals > 0)):
            mean = float(demand[r, launched].sum() / totals[r] / len(launched))
            self._launch_n[r] += 1
            self.launch_share[r] += (mean - self.launch_share[r]) / self._launch_n[r]

    # ---- model --------------------------------------------------------------------------

    def fit(self) -> None:
        """Fit the model now on every labeled window (what a replay calls at its end)."""
        self._maybe_fit(force=True)

    def _maybe_fit(self, force: bool = False) -> None:
        cfg = self.config
        if cfg.scorer != "gbm" or len(self._train) < cfg.min_train_windows:
            return
        if not force and self._model is not None and self.state.n - self._model_window < cfg.retrain_every:
            return
        rows = self._train if cfg.max_train_windows is None else self._train[-cfg.max_train_windows :]
        X = np.concatenate([r[1] for r in rows])
        y = np.concatenate([r[2] for r in rows])
        wt = np.concatenate([r[3] for r in rows])
        if len(y) < cfg.min_train_rows:
            return
        if len(y) > cfg.max_train_rows:
            # A seeded subsample, reweighted: the fit's cost stays bounded at any scale.
            pick = np.random.default_rng([cfg.seed, self.state.n]).random(len(y)) < cfg.max_train_rows / len(y)
            X, y, wt = X[pick], y[pick], wt[pick] * (len(pick) / max(int(pick.sum()), 1))
        if cfg.objective == "presence" and len(np.unique(y)) < 2:
            return
        if cfg.objective == "volume" and not (y > 0).any():
            return
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        params = dict(
            max_iter=cfg.max_iter,
            learning_rate=cfg.learning_rate,
            max_depth=cfg.max_depth,
            min_samples_leaf=cfg.min_samples_leaf,
            l2_regularization=cfg.l2_regularization,
            early_stopping=False,
            random_state=cfg.seed,
        )
        model: HistGradientBoostingClassifier | HistGradientBoostingRegressor
        if cfg.objective == "presence":
            model = HistGradientBoostingClassifier(**params)  # type: ignore[arg-type]
        else:
            model = HistGradientBoostingRegressor(loss=cfg.volume_loss, **params)  # type: ignore[arg-type]
        with threadpool_limits(cfg.threads):
            binner = QuantileBinner.fit(X)
            model.fit(binner.transform(X), y, sample_weight=wt)
        self._binner = binner
        self._model = model
        self._model_window = self.state.n
        self.fits += 1

    def fitted(self) -> FittedModel | None:
        """The fitted scorer (binner + boosted trees), to reuse in a later forecast."""
        if self._model is None or self._binner is None:
            return None
        return FittedModel(self._binner, self._model, self.config)

    def use(self, fitted: FittedModel) -> None:
        """Score with a model fitted earlier (on windows in the past of this forecast) instead
        of fitting one: the features do not depend on title ids, so it fits any catalogue."""
        if fitted.config != self.config:
            raise ValueError("the fitted model was made with another forecaster config")
        self._binner, self._model = fitted.binner, fitted.model
        self._model_window = self.state.n

    def _rows(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = self.state.n
        if self._rows_cache is not None and self._rows_cache[0] == n:
            return self._rows_cache[1], self._rows_cache[2], self._rows_cache[3]
        cand = self.state.candidates(self.config.candidate_window, self.config.own_window)
        r, t = np.nonzero(cand)
        X = self.state.matrix(r, t)
        self._rows_cache = (n, r, t, X)
        return r, t, X

    # ---- output -------------------------------------------------------------------------

    def trend_scores(self, r: np.ndarray, X: np.ndarray) -> np.ndarray:
        cfg = self.config
        if cfg.objective == "presence":
            # Keep what the region has (ordered by its share), then the likeliest arrivals.
            has = X[:, F["own1"]] > 0
            arrive = cfg.arrival_weight * X[:, F["arrive1"]]
            presence: np.ndarray = np.where(has, 1.0 + X[:, F["own1"]], np.minimum(arrive, 1.0))
            return presence
        ws, wl, wp = cfg.level_weights
        own = ws * X[:, F["ewma_short"]] + wl * X[:, F["ewma_long"]] + wp * X[:, F["pooled_short"]]
        arrival = cfg.arrival_weight * X[:, F["arrive1"]] * X[:, F["mean_share1"]] * (X[:, F["own1"]] == 0)
        since = X[:, F["since_release"]]
        launch = cfg.launch_weight * self.launch_share[r] * (since == 0).astype(np.float32)
        score: np.ndarray = own + arrival + launch
        return score

    def score_rows(self, r: np.ndarray, X: np.ndarray) -> np.ndarray:
        if self.config.scorer == "gbm" and self._model is not None:
            out = np.empty(len(X))
            # In chunks: the binned copy of a million-row candidate matrix is not needed at once.
            for a in range(0, len(X), SCORE_CHUNK):
                out[a : a + SCORE_CHUNK] = self._score_chunk(X[a : a + SCORE_CHUNK])
            return out
        return self.trend_scores(r, X)

    def _score_chunk(self, X: np.ndarray) -> np.ndarray:
        with threadpool_limits(self.config.threads):
            binned = self._binner.transform(X)  # type: ignore[union-attr]
            if self.config.objective == "presence":
                return self._model.predict_proba(binned)[:, 1]  # type: ignore[attr-defined, no-any-return, union-attr]
            # A share is at most 1: a runaway leaf (rare targets far above their prediction)
            # must not push one title past every other.
            pred = self._model.predict(binned) / VOLUME_SCALE  # type: ignore[attr-defined, union-attr]
            return np.clip(pred, 0.0, 1.0)  # type: ignore[no-any-return]

    def forecast(self, keep_features: bool = False) -> Forecast:
        """Scores for the next window, every region, best first (ties: title index)."""
        r, t, X = self._rows()
        s = self.score_rows(r, X) if len(r) else np.zeros(0)
        ranked: list[np.ndarray] = []
        scores: list[np.ndarray] = []
        feats: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        order = np.lexsort((t, -s, r))  # by region, score desc, title index
        r_o, t_o, s_o = r[order], t[order], s[order]
        bounds = np.searchsorted(r_o, np.arange(len(self.regions) + 1))
        for i in range(len(self.regions)):
            a, b = bounds[i], bounds[i + 1]
            ranked.append(t_o[a:b])
            scores.append(s_o[a:b])
            if keep_features:
                feats[i] = (t_o[a:b], X[order][a:b])
        return Forecast(self.state.n, self.regions, self.titles, ranked, scores, feats)

    def explain_many(self, region: int, titles: np.ndarray) -> list[Reason]:
        """``explain`` for many titles of one region at once (what hints publishing calls)."""
        st = self.state
        titles = np.asarray(titles, np.int64)
        if st.n == 0 or not len(titles):
            return [Reason("calendar" if st.release[t] >= 0 else "global") for t in titles]
        own = st.shares[-1][region, titles]
        present = st.present_lags[-1][:, titles].copy()  # [R, n]
        present[region] = False
        a = st.transfer()[region]  # [R]
        src = np.argmax(np.where(present, a[:, None], -1.0), axis=0)
        has_src: np.ndarray = np.asarray(present.any(axis=0))
        frac = present.sum(axis=0) / max(int(st.observed_lags[-1].sum()), 1)
        rel = st.release[titles]
        since = np.where(rel >= 0, st.n - rel, -99)
        last = st.last_here[region, titles]
        out: list[Reason] = []
        for i in range(len(titles)):
            if own[i] > 0:
                out.append(Reason("own", None, f"{own[i]:.4f} of this region's demand last window, {int(st.streak[region, titles[i]])} windows running"))
            elif has_src[i]:
                s = int(src[i])
                out.append(Reason("trend", self.regions[s], f"in {round(frac[i] * 100)}% of regions last window; arrival rate from {self.regions[s]} {a[s]:.3f}"))
            elif 0 <= since[i] <= 1:
                out.append(Reason("calendar", None, "released in or just before the window"))
            elif last[i] >= 0:
                out.append(Reason("own", None, f"last here {st.n - 1 - int(last[i])} windows ago"))
            else:
                out.append(Reason("global", None, "seen elsewhere recently"))
        return out

    def explain(self, region: int, title: int) -> Reason:
        """Why a title is forecast in a region, from what the forecaster saw."""
        return self.explain_many(region, np.array([title]))[0]


__all__ = ["FEATURES", "DemandForecaster", "FittedModel", "Forecast", "ForecastConfig", "Reason"]
