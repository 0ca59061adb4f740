"""Off-policy estimators on a log small enough to compute by hand."""

from __future__ import annotations

import numpy as np
import pytest
from streamsense.content.ope import (
    crossfit_rewards,
    evaluate,
    fold_ids,
    importance_weights,
    on_policy,
)

# Four logged rows: reward, logging propensity of the logged action, target probability of it.
R = np.array([1.0, 0.0, 1.0, 0.0])
P = np.array([0.5, 0.25, 0.5, 0.25])
PI = np.array([1.0, 0.5, 0.0, 0.25])  # weights 2, 2, 0, 1
Q_LOGGED = np.array([0.5, 0.2, 0.4, 0.1])
Q_TARGET = np.array([0.6, 0.3, 0.2, 0.1])


def test_estimators_by_hand() -> None:
    assert importance_weights(PI, P).tolist() == [2.0, 2.0, 0.0, 1.0]
    est = evaluate(R, P, PI, Q_LOGGED, Q_TARGET, n_boot=4000, seed=1)
    # IPW: (2*1 + 2*0 + 0*1 + 1*0) / 4
    assert est["ipw"].value == 0.5
    # SNIPW: 2 / (2 + 2 + 0 + 1)
    assert est["snipw"].value == pytest.approx(0.4, abs=1e-15)
    # DR: terms 0.6 + 2(1 - 0.5), 0.3 + 2(0 - 0.2), 0.2 + 0(1 - 0.4), 0.1 + 1(0 - 0.1) = 1.6, -0.1, 0.2, 0.0
    assert est["dr"].value == pytest.approx(1.7 / 4, abs=1e-15)
    # Analytic SE of IPW: terms 2, 0, 0, 0 have sample sd 1, so 1 / sqrt(4).
    assert est["ipw"].se == pytest.approx(0.5, abs=1e-15)
    # Bootstrap of IPW: 2 * Binomial(4, 1/4) / 4, whose 2.5% and 97.5% quantiles are 0 and 1.5.
    assert (est["ipw"].ci_low, est["ipw"].ci_high) == (0.0, 1.5)
    for e in est.values():
        assert e.ci_low <= e.value <= e.ci_high


def test_without_a_reward_model_there_is_no_dr_and_bad_propensities_are_refused() -> None:
    assert set(evaluate(R, P, PI, n_boot=10)) == {"ipw", "snipw"}
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        evaluate(R, np.array([0.5, 0.0, 0.5, 0.25]), PI, n_boot=10)
    with pytest.raises(ValueError, match="no logged rows"):
        evaluate(np.array([]), np.array([]), np.array([]), n_boot=10)


def test_target_equal_to_logger_gives_the_logged_mean() -> None:
    rng = np.random.default_rng(0)
    r = (rng.random(500) < 0.1).astype(float)
    p = rng.uniform(0.1, 0.9, 500)
    est = evaluate(r, p, p, n_boot=200)
    assert est["ipw"].value == pytest.approx(r.mean(), abs=1e-15)
    assert est["snipw"].value == pytest.approx(r.mean(), abs=1e-15)
    assert on_policy(r, n_boot=200).value == pytest.approx(r.mean(), abs=1e-15)


def test_cross_fitting_never_uses_a_rows_own_reward() -> None:
    rng = np.random.default_rng(4)
    n, k = 300, 3
    x = rng.normal(size=(n, 2))
    actions = rng.integers(0, k, n)
    reward = (rng.random(n) < 0.3).astype(float)

    def design(rows: np.ndarray, acts: np.ndarray) -> np.ndarray:
        return np.hstack([np.eye(k)[acts], x[rows]])

    rows = np.arange(n)
    q = crossfit_rewards(design, rows, actions, reward, k, folds=5, seed=7)
    assert q.shape == (n, k) and np.all((q > 0) & (q < 1))
    flipped = reward.copy()
    flipped[0] = 1 - flipped[0]
    q2 = crossfit_rewards(design, rows, actions, flipped, k, folds=5, seed=7)
    fold = fold_ids(n, 5, seed=7)
    same_fold = fold == fold[0]
    assert np.array_equal(q2[same_fold], q[same_fold])  # row 0's own fold never saw its reward
    assert not np.allclose(q2[~same_fold], q[~same_fold])  # the other folds' models did
    assert np.bincount(fold).tolist() == [60] * 5
