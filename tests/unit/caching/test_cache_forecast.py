"""The forecaster's features and scores on a tiny hand-made history (exact values), and the
backtest's guarantee that a forecast never reads the future."""

from __future__ import annotations

import numpy as np
import pytest
from streamsense.caching.features import F
from streamsense.caching.forecast import DemandForecaster, ForecastConfig

# 3 regions (A, B, C) x 4 titles (t0..t3), plays per window.
HISTORY = np.array(
    [
        # w0: t0 everywhere; t1 only in B
        [[4, 0, 0, 0], [2, 2, 0, 0], [1, 0, 0, 0]],
        # w1: t1 arrives in A (it was in B); t2 appears in C
        [[2, 2, 0, 0], [2, 2, 0, 0], [1, 0, 1, 0]],
    ],
    dtype=np.float32,
)
ALL = np.ones(3, bool)


def fed(config: ForecastConfig | None = None, release: np.ndarray | None = None) -> DemandForecaster:
    fc = DemandForecaster(["A", "B", "C"], ["t0", "t1", "t2", "t3"], config or ForecastConfig(scorer="trend", objective="volume", ewma_halflives=(1.0, 1.0)), release=release)
    for w in range(len(HISTORY)):
        fc.observe(HISTORY[w], ALL)
    return fc


def test_shares_streaks_and_breadth() -> None:
    st = fed().state
    r = np.array([0, 0, 1, 2, 2])
    t = np.array([0, 1, 1, 2, 3])
    X = st.matrix(r, t)
    assert X[:, F["own1"]].tolist() == [0.5, 0.5, 0.5, 0.5, 0.0]
    assert X[:, F["own2"]].tolist() == [1.0, 0.0, 0.5, 0.0, 0.0]
    assert X[:, F["streak"]].tolist() == [2, 1, 2, 1, 0]
    assert X[:, F["present"]].tolist() == [2, 1, 2, 1, 0]
    assert X[:, F["since_last"]].tolist() == [0, 0, 0, 0, 999]
    assert X[:, F["since_first_here"]].tolist() == [1, 0, 1, 0, -1]
    assert X[:, F["regions1"]].tolist() == pytest.approx([1.0, 2 / 3, 2 / 3, 1 / 3, 0.0])
    assert X[:, F["regions_delta"]].tolist() == pytest.approx([0.0, 1 / 3, 1 / 3, 1 / 3, 0.0])
    assert X[:, F["age"]].tolist() == [1, 1, 1, 0, -1]  # t1 was first seen (in B) at w0


def test_transfer_counts_learn_who_leads() -> None:
    st = fed().state
    # From w0 to w1: region A lacked t1, t2, t3; of those B had t1 (arrived in A), C had none.
    # B lacked t2, t3: nobody had them. C lacked t1, t2, t3: B had t1 (did not arrive).
    assert st.pairs.tolist() == [[0, 1, 0], [0, 0, 0], [0, 1, 0]]
    assert st.arrivals.tolist() == [[0, 1, 0], [0, 0, 0], [0, 0, 0]]
    a = st.transfer()
    base = 1 / 2  # 1 arrival of 2 pairs, the smoothing target
    assert a[0, 1] == pytest.approx((1 + 5 * base) / (1 + 5))
    assert a[2, 1] == pytest.approx((0 + 5 * base) / (1 + 5))
    assert a[1, 0] == pytest.approx(base)  # no evidence: the overall rate
    assert np.diag(a).tolist() == [0, 0, 0]
    # The trend source of t2 for A: only C has it.
    assert st.trend_source(0, 2) == 2
    assert st.trend_source(0, 3) is None


def test_trend_score_is_level_plus_arrival_plus_launch() -> None:
    release = np.array([-1, -1, -1, 2])  # t3 launches in the window being forecast
    fc = fed(ForecastConfig(scorer="trend", objective="volume", ewma_halflives=(1.0, 1.0), level_weights=(1.0, 0.0, 0.0)), release)
    f = fc.forecast()
    # Region C: t0 share .5 (w1), t2 share .5 (w1); EWMA with half-life 1 and bias correction:
    # level = (.5*.5 + .5*1) / (.5 + .25) for t0 = 1.0 ... computed exactly below.
    w = np.array([0.25, 0.5])  # weights of w0, w1 after two updates with alpha = .5
    t0_c = (w * np.array([1.0, 0.5])).sum() / w.sum()
    t2_c = (w * np.array([0.0, 0.5])).sum() / w.sum()
    scores = dict(zip(f.ranked[2].tolist(), f.scores[2].tolist(), strict=True))
    assert scores[0] == pytest.approx(t0_c)
    assert scores[2] == pytest.approx(t2_c)
    # t1 is not in C: its score is the arrival chance from A and B times its mean share there.
    a = fc.state.transfer()
    p_arrive = 1 - (1 - a[2, 0]) * (1 - a[2, 1])
    assert scores[1] == pytest.approx(p_arrive * 0.5, rel=1e-6)
    # t3 has no history: only the launch prior, learned from no launch yet = 0, so it is not scored > 0.
    assert scores[3] == 0.0
    # t1 (.354) edges out t2 (.333): two regions had it, at half their plays each.
    assert f.ranked[2].tolist() == [0, 1, 2, 3]


def test_explanations_name_the_source() -> None:
    fc = fed()
    why = fc.explain_many(2, np.array([0, 1]))
    assert why[0].kind == "own"
    # A had no chance to show its rate to C (no evidence: the overall .5); B had t1 at w0 and
    # C did not follow (.42): A is named.
    assert (why[1].kind, why[1].source) == ("trend", "A")
    assert fc.explain(2, 1) == why[1]


def _history(seed: int, windows: int, regions: int, titles: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.pareto(1.2, titles) + 0.1
    out = np.zeros((windows, regions, titles), np.float32)
    for w in range(windows):
        out[w] = rng.poisson(base[None, :] * rng.lognormal(0, 0.5, (regions, titles)))
    return out


@pytest.mark.parametrize("scorer", ["trend", "gbm"])
def test_a_future_only_title_is_never_used(scorer: str) -> None:
    """Plant a title that exists only from window 8 on, everywhere and hugely. Forecasts for
    windows 0..8 must be bit-identical with and without it, and never name it; the forecaster
    only sees windows through observe(), so window 8 is read after its forecast is made."""
    W, R, T = 12, 4, 30
    clean = _history(1, W, R, T)
    planted = clean.copy()
    future = T - 1
    clean[:, :, future] = 0
    planted[:, :, future] = 0
    planted[8:, :, future] = 1_000_000
    cfg = ForecastConfig(objective="volume", scorer=scorer, min_train_windows=2, retrain_every=2, max_iter=20, min_samples_leaf=5, negative_rate=0.5)  # type: ignore[arg-type]

    def walk(data: np.ndarray) -> list[list[tuple[list[int], list[float]]]]:
        fc = DemandForecaster([str(r) for r in range(R)], [str(t) for t in range(T)], cfg)
        out = []
        for w in range(W):
            f = fc.forecast()
            out.append([(f.ranked[r].tolist(), f.scores[r].tolist()) for r in range(R)])
            fc.observe(data[w], np.ones(R, bool))
        return out

    a, b = walk(clean), walk(planted)
    for w in range(9):
        assert a[w] == b[w], f"forecast for window {w} changed when the future changed"
        assert all(future not in ranked for ranked, _ in b[w])
    # ... and from window 9 on it is known and forecast (the plant is not a dead title).
    assert all(future in ranked and scores[ranked.index(future)] > 0 for ranked, scores in b[9])


def test_labeled_rows_per_window_are_capped_and_reweighted() -> None:
    """max_window_rows thins a window's labeled rows (memory at catalogue x site scale) and
    scales their weight so the window still counts as many rows as it had."""
    data = _history(2, 4, 3, 30)
    uncapped = DemandForecaster(["a", "b", "c"], [str(t) for t in range(30)], ForecastConfig(objective="volume", negative_rate=1.0))
    capped = DemandForecaster(["a", "b", "c"], [str(t) for t in range(30)], ForecastConfig(objective="volume", negative_rate=1.0, max_window_rows=10))
    for w in range(4):
        uncapped.observe(data[w], np.ones(3, bool), refit=False)
        capped.observe(data[w], np.ones(3, bool), refit=False)
    full = [len(y) for _, _, y, _ in uncapped._train]
    # Candidates are the titles seen anywhere so far (Poisson zeros leave some unseen early on).
    assert full == [78, 87, 90]
    assert [len(y) for _, _, y, _ in capped._train] == [10, 10, 10]
    assert [wt.tolist() for _, _, _, wt in capped._train] == [[np.float32(n / 10)] * 10 for n in full]
