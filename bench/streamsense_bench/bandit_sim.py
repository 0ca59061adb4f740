"""A semi-synthetic check of the learning loop, where the truth is known (Open Bandit Pipeline's
"synthetic from real" style): the click probability of every (context, item) is a logistic
model fitted on the whole uniform-random OBD log (item, slot, engagement, item affinity, user
features), and contexts are the log's real rows drawn with replacement.

Two questions the 10,000-row log alone cannot answer:
1. Does the product's policy learn? It starts from nothing and is updated in batches of 1,000
   impressions with the clicks it caused, exactly as the Lambda would; after each batch its
   true click rate (sum over items of its probability times the true click probability,
   averaged over all 10,000 contexts) is computed, next to uniform random and the oracle.
2. Do the estimators find the value of such a learned (concentrated) policy? A fresh uniform
   log of the same size as the real one is drawn from the simulator and IPW / SNIPW / DR are
   compared with the known value.

This is a statement about the code and the estimators under a plausible world, not about
ZOZOTOWN's members; it is reported separately from the real-data results.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from streamsense.content.features import feature_matrix
from streamsense.content.model import PolicyConfig, TitleStats, choice_probabilities
from streamsense.content.ope import crossfit_rewards, evaluate

from streamsense_bench.bandit_data import N_ITEMS, ObdLog

CHECKPOINTS = (1_000, 5_000, 10_000, 25_000, 50_000)


def truth(log: ObdLog, build: Any) -> np.ndarray:
    """(n, 34): the simulator's click probability of every item in every logged context."""
    from sklearn.linear_model import LogisticRegression

    rows = np.arange(len(log))
    model = LogisticRegression(C=1.0, max_iter=5000).fit(build(rows, log.item), log.click)
    p = np.empty((len(log), N_ITEMS))
    for a in range(N_ITEMS):
        p[:, a] = model.predict_proba(build(rows, np.full(len(log), a)))[:, 1]
    return p


def _contexts(log: ObdLog, rows: np.ndarray, contextual: bool) -> list[Any]:
    from streamsense_bench.bandit import contexts

    return contexts(log.subset(rows), contextual=contextual)


def learn_online(log: ObdLog, p: np.ndarray, *, contextual: bool, seed: int, batch: int = 1000) -> dict[str, float]:
    """The product learning from its own impressions; its true CTR at each checkpoint."""
    rng = np.random.default_rng(seed)
    config = PolicyConfig(seed=seed)
    variants = [str(a) for a in range(N_ITEMS)]
    all_rows = np.arange(len(log))
    all_ctx = _contexts(log, all_rows, contextual)
    engaged = log.engaged
    stats = TitleStats()
    out: dict[str, float] = {}
    seen = 0
    while seen < CHECKPOINTS[-1]:
        rows = rng.integers(0, len(log), batch)
        pi = choice_probabilities(stats, variants, [all_ctx[r] for r in rows], config, np.random.default_rng(seed + seen))
        actions = _draw(pi, rng)
        clicks = rng.random(batch) < p[rows, actions]
        aff = log.affinity[rows, actions] if contextual else np.zeros(batch, dtype=np.int64)
        z = feature_matrix(log.position[rows], engaged[rows] & contextual, aff)
        stats.add_batch([str(a) for a in actions], z, clicks)
        seen += batch
        if seen in CHECKPOINTS:
            pi_all = choice_probabilities(stats, variants, all_ctx, config)
            out[str(seen)] = float((pi_all * p).sum(axis=1).mean())
    return out


def ope_check(log: ObdLog, p: np.ndarray, build: Any, seed: int) -> dict[str, Any]:
    """Value of a policy learned online (50,000 impressions) estimated from a simulated uniform
    log of 10,000 rows, against its true value."""
    rng = np.random.default_rng(seed + 1)
    config = PolicyConfig(seed=seed)
    variants = [str(a) for a in range(N_ITEMS)]
    stats = TitleStats()
    # A policy to evaluate: trained on 50,000 uniform impressions from the simulator.
    rows = rng.integers(0, len(log), CHECKPOINTS[-1])
    actions = rng.integers(0, N_ITEMS, len(rows))
    clicks = rng.random(len(rows)) < p[rows, actions]
    z = feature_matrix(log.position[rows], log.engaged[rows], log.affinity[rows, actions])
    stats.add_batch([str(a) for a in actions], z, clicks)
    all_rows = np.arange(len(log))
    pi_all = choice_probabilities(stats, variants, _contexts(log, all_rows, True), config)
    true_value = float((pi_all * p).sum(axis=1).mean())

    # The evaluation log: uniform actions in resampled contexts.
    ev_rows = rng.integers(0, len(log), len(log))
    ev_actions = rng.integers(0, N_ITEMS, len(ev_rows))
    ev_clicks = (rng.random(len(ev_rows)) < p[ev_rows, ev_actions]).astype(float)

    def design(idx: np.ndarray, acts: np.ndarray) -> np.ndarray:
        return build(ev_rows[idx], acts)  # type: ignore[no-any-return]

    idx = np.arange(len(ev_rows))
    q = crossfit_rewards(design, idx, ev_actions, ev_clicks, N_ITEMS, folds=5, seed=seed)
    pi = pi_all[ev_rows]
    est = evaluate(
        ev_clicks,
        np.full(len(ev_rows), 1.0 / N_ITEMS),
        pi[idx, ev_actions],
        q_logged=q[idx, ev_actions],
        q_target=(pi * q).sum(axis=1),
        n_boot=2000,
        seed=seed,
    )
    return {
        "true_ctr": true_value,
        "uniform_log_clicks": int(ev_clicks.sum()),
        **{f"ctr_{k}": e.value for k, e in est.items()},
        "ci_low": {f"ctr_{k}": e.ci_low for k, e in est.items()},
        "ci_high": {f"ctr_{k}": e.ci_high for k, e in est.items()},
        "covered": {f"ctr_{k}": bool(e.ci_low <= true_value <= e.ci_high) for k, e in est.items()},
    }


def _draw(pi: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One action per row of a probability matrix (inverse CDF, vectorized)."""
    u = rng.random(len(pi))[:, None]
    return np.minimum((pi.cumsum(axis=1) < u).sum(axis=1), pi.shape[1] - 1)


def run_sim(log: ObdLog, build: Any, seed: int = 0) -> dict[str, Any]:
    p = truth(log, build)
    return {
        "world": {
            "uniform_ctr": float(p.mean()),
            "oracle_ctr": float(p.max(axis=1).mean()),
            "best_single_item_ctr": float(p.mean(axis=0).max()),
        },
        "learning_curve": {
            "product": learn_online(log, p, contextual=True, seed=seed),
            "product_no_context": learn_online(log, p, contextual=False, seed=seed),
        },
        "ope_check": ope_check(log, p, build, seed),
    }
