"""Off-policy evaluation: what click (play) rate would a target policy get, estimated from logs
written by another policy that recorded its propensities. Used to vet a policy before it is
trusted (benchmarks.md section 5) and on the product's own impression logs.

For logged rows i with reward r_i, logging propensity p_i of the logged action a_i, target
probability pi_i = pi(a_i | x_i) and importance weight w_i = pi_i / p_i:

- IPW    (inverse propensity weighting):  mean(w r)
- SNIPW  (self-normalized IPW):           sum(w r) / sum(w)
- DR     (doubly robust):                 mean(sum_a pi(a|x) q(x,a) + w (r - q(x, a_i)))

where q is a reward model that must not have been fitted on the rows it is applied to
(``crossfit_rewards`` fits one model per fold on the other folds). Intervals are percentile
bootstrap intervals over logged rows (q held fixed, as in Saito et al.'s Open Bandit Pipeline),
and each estimate also carries its analytic (delta-method) standard error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Estimate:
    value: float
    ci_low: float
    ci_high: float
    se: float

    def as_dict(self) -> dict[str, float]:
        return {"value": self.value, "ci_low": self.ci_low, "ci_high": self.ci_high, "se": self.se}


def importance_weights(target_prob: np.ndarray, pscore: np.ndarray) -> np.ndarray:
    pscore = np.asarray(pscore, dtype=float)
    if np.any(pscore <= 0) or np.any(pscore > 1):
        raise ValueError("logging propensities must lie in (0, 1]")
    return np.asarray(target_prob, dtype=float) / pscore


def ipw(reward: np.ndarray, w: np.ndarray) -> float:
    return float(np.mean(w * reward))


def snipw(reward: np.ndarray, w: np.ndarray) -> float:
    total = float(np.sum(w))
    return float(np.sum(w * reward) / total) if total > 0 else 0.0


def dr(reward: np.ndarray, w: np.ndarray, q_logged: np.ndarray, q_target: np.ndarray) -> float:
    """q_logged: q(x_i, a_i); q_target: sum_a pi(a|x_i) q(x_i, a)."""
    return float(np.mean(q_target + w * (reward - q_logged)))


def _se(terms: np.ndarray) -> float:
    return float(np.std(terms, ddof=1) / np.sqrt(len(terms))) if len(terms) > 1 else float("nan")


def evaluate(
    reward: np.ndarray,
    pscore: np.ndarray,
    target_prob: np.ndarray,
    q_logged: np.ndarray | None = None,
    q_target: np.ndarray | None = None,
    *,
    n_boot: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict[str, Estimate]:
    """IPW, SNIPW and (when q is given) DR estimates with bootstrap CIs; keys ipw/snipw/dr."""
    r = np.asarray(reward, dtype=float)
    w = importance_weights(target_prob, pscore)
    n = len(r)
    if n == 0:
        raise ValueError("no logged rows to evaluate on")
    values = {"ipw": ipw(r, w), "snipw": snipw(r, w)}
    terms: dict[str, np.ndarray] = {"ipw": w * r, "snipw": w * (r - values["snipw"]) / max(float(np.mean(w)), 1e-300)}
    if q_logged is not None and q_target is not None:
        ql, qt = np.asarray(q_logged, dtype=float), np.asarray(q_target, dtype=float)
        values["dr"] = dr(r, w, ql, qt)
        terms["dr"] = qt + w * (r - ql)
    boots = {k: np.empty(n_boot) for k in values}
    rng = np.random.default_rng(seed)
    done = 0
    chunk = max(1, min(n_boot, 4_000_000 // max(n, 1)))
    while done < n_boot:
        b = min(chunk, n_boot - done)
        idx = rng.integers(0, n, size=(b, n))
        wr, ww = (w * r)[idx], w[idx]
        boots["ipw"][done : done + b] = wr.mean(axis=1)
        sums = ww.sum(axis=1)
        boots["snipw"][done : done + b] = np.divide(wr.sum(axis=1), sums, out=np.zeros(b), where=sums > 0)
        if "dr" in values:
            boots["dr"][done : done + b] = terms["dr"][idx].mean(axis=1)
        done += b
    lo, hi = 100 * alpha / 2, 100 * (1 - alpha / 2)
    return {
        k: Estimate(values[k], float(np.percentile(boots[k], lo)), float(np.percentile(boots[k], hi)), _se(terms[k]))
        for k in values
    }


def on_policy(reward: np.ndarray, *, n_boot: int = 2000, alpha: float = 0.05, seed: int = 0) -> Estimate:
    """The logging policy's own click rate (a plain mean) with the same kind of interval."""
    r = np.asarray(reward, dtype=float)
    return evaluate(r, np.ones(len(r)), np.ones(len(r)), n_boot=n_boot, alpha=alpha, seed=seed)["ipw"]


def fold_ids(n: int, k: int, seed: int = 0) -> np.ndarray:
    """A random, balanced assignment of n rows to k folds."""
    rng = np.random.default_rng(seed)
    return rng.permutation(np.arange(n) % k)


def crossfit_rewards(
    design: Callable[[np.ndarray, np.ndarray], np.ndarray],
    rows: np.ndarray,
    actions: np.ndarray,
    reward: np.ndarray,
    n_actions: int,
    *,
    folds: int = 5,
    extra_rows: np.ndarray | None = None,
    extra_actions: np.ndarray | None = None,
    extra_reward: np.ndarray | None = None,
    c: float = 1.0,
    seed: int = 0,
) -> np.ndarray:
    """Cross-fitted reward model q(x, a) for every evaluated row and every action: (n, n_actions).

    ``design(row_indices_into_a_table, actions) -> feature matrix`` builds features; rows are
    indices into the caller's table (evaluated rows in ``rows``, optional non-evaluated rows in
    ``extra_rows`` that every fold may also train on). The model for fold k is an
    L2-regularized logistic regression fitted on the other folds (plus the extra rows), so no
    evaluated row's prediction comes from a model that saw its reward."""
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # small dense fits: BLAS threads only contend (30x slower on a busy host)
        return _crossfit(LogisticRegression, design, rows, actions, reward, n_actions, folds, extra_rows, extra_actions, extra_reward, c, seed)


def _crossfit(
    model_cls: Any,
    design: Callable[[np.ndarray, np.ndarray], np.ndarray],
    rows: np.ndarray,
    actions: np.ndarray,
    reward: np.ndarray,
    n_actions: int,
    folds: int,
    extra_rows: np.ndarray | None,
    extra_actions: np.ndarray | None,
    extra_reward: np.ndarray | None,
    c: float,
    seed: int,
) -> np.ndarray:
    n = len(rows)
    fold = fold_ids(n, folds, seed)
    q = np.empty((n, n_actions))
    for k in range(folds):
        train = fold != k
        x_rows, x_act, y = rows[train], actions[train], reward[train]
        if extra_rows is not None and extra_actions is not None and extra_reward is not None:
            x_rows = np.concatenate([x_rows, extra_rows])
            x_act = np.concatenate([x_act, extra_actions])
            y = np.concatenate([y, extra_reward])
        model = model_cls(C=c, max_iter=5000)
        if len(np.unique(y)) < 2:  # no clicks (or only clicks) to learn from: the base rate
            q[~train] = float(np.mean(y)) if len(y) else 0.0
            continue
        model.fit(design(x_rows, x_act), y)
        held = rows[~train]
        for a in range(n_actions):
            q[~train, a] = model.predict_proba(design(held, np.full(len(held), a)))[:, 1]
    return q
