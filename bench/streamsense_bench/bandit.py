"""Benchmark 5, dynamic content: the product's variant policy evaluated off-policy on the Open
Bandit Dataset (men campaign, 10,000 uniform-random and 10,000 Bernoulli-TS impressions).

Mapping: the campaign is one title, its 34 items are the variants, the 3 slots are positions,
a click is a play, a user-item affinity is the member's past plays after that variant and
"any affinity > 0" is "has played the title before" (streamsense.content.features).

Protocol (fixed before any evaluation run; nothing is tuned on the evaluation rows):
1. Logged policies: on-policy click rate of each log, with a bootstrap interval.
2. Estimator check: the Bernoulli-TS policy is context-free, so its action distribution per
   slot is estimated by its action frequencies in its own log (clicks unused). IPW, SNIPW and
   DR then estimate its click rate from the uniform-random log alone, to be compared with the
   click rate it actually got. Reward model for DR: logistic regression on item, slot,
   engagement, the item's affinity and the user features, cross-fitted in 5 folds.
3. Product: streamsense.content's Thompson-sampling policy (default PolicyConfig) learns from
   the uniform-random impressions before 2019-11-28 00:00 UTC (Nov 24-27: 5,653 rows) and is
   evaluated on those from then on (Nov 28-30: 4,347 rows): the probabilities it would show
   each item with in each evaluation context are what it would log. DR's reward model is
   cross-fitted over the evaluation rows, each fold's model also trained on the training rows.
   In-run ablation: the same policy without member context (affinity/engagement unused).
4. Cost: choice probabilities for 1,000 contexts as the number of variants grows.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from streamsense.content.features import Context, features
from streamsense.content.model import PolicyConfig, TitleStats, choice_probabilities, merge_all
from streamsense.content.ope import Estimate, crossfit_rewards, evaluate, on_policy

from streamsense_bench.bandit_data import N_ITEMS, ObdLog, action_frequencies, load_obd
from streamsense_bench.common import data_dir, print_table

SPLIT = np.datetime64("2019-11-28T00:00:00")
N_BOOT = 10_000
SEED = 0
VARIANTS = [str(a) for a in range(N_ITEMS)]


def design(log: ObdLog):  # type: ignore[no-untyped-def]
    """Reward-model features of (row, item): item one-hot, slot one-hot, engaged, the item's
    affinity (thermometer >= 1, >= 2) and one-hot user features."""
    user_onehots = [np.eye(int(log.user[:, j].max()) + 1)[log.user[:, j]] for j in range(log.user.shape[1])]
    user = np.hstack(user_onehots)
    engaged = log.engaged.astype(float)[:, None]

    def build(rows: np.ndarray, actions: np.ndarray) -> np.ndarray:
        aff = log.affinity[rows, actions]
        return np.hstack(
            [
                np.eye(N_ITEMS)[actions],
                np.eye(3)[log.position[rows]],
                engaged[rows],
                (aff >= 1).astype(float)[:, None],
                (aff >= 2).astype(float)[:, None],
                user[rows],
            ]
        )

    return build


def train_stats(log: ObdLog, *, contextual: bool = True) -> TitleStats:
    """Feed logged impressions to the product's statistics exactly as the Lambda would."""
    stats = TitleStats()
    engaged = log.engaged
    for i in range(len(log)):
        a = int(log.item[i])
        if contextual:
            z = features(int(log.position[i]), bool(engaged[i]), int(log.affinity[i, a]))
        else:
            z = features(int(log.position[i]), False, 0)
        stats.add(str(a), z, bool(log.click[i]))
    return stats


def contexts(log: ObdLog, *, contextual: bool = True) -> list[Context]:
    engaged = log.engaged
    out = []
    for i in range(len(log)):
        if contextual:
            nz = np.flatnonzero(log.affinity[i])
            out.append(Context(int(log.position[i]), bool(engaged[i]), {str(a): int(log.affinity[i, a]) for a in nz}))
        else:
            out.append(Context(int(log.position[i])))
    return out


def ope(log: ObdLog, rows: np.ndarray, pi: np.ndarray, q: np.ndarray) -> dict[str, Estimate]:
    """OPE of a target distribution pi (n, 34) on log rows ``rows`` with reward model q (n, 34)."""
    items = log.item[rows]
    idx = np.arange(len(rows))
    return evaluate(
        log.click[rows],
        log.pscore[rows],
        pi[idx, items],
        q_logged=q[idx, items],
        q_target=(pi * q).sum(axis=1),
        n_boot=N_BOOT,
        seed=SEED,
    )


def _rel(estimate: float, truth: float) -> float:
    return abs(estimate - truth) / truth


def cost_curve() -> dict[str, float]:
    """Milliseconds to compute choice probabilities for 1,000 contexts, by number of variants."""
    rng = np.random.default_rng(SEED)
    out: dict[str, float] = {}
    for v in (4, 16, 64):
        variants = [f"v{i}" for i in range(v)]
        stats = TitleStats()
        for _ in range(5000):
            a = int(rng.integers(v))
            stats.add(variants[a], features(int(rng.integers(4)), bool(rng.random() < 0.05), 0), bool(rng.random() < 0.01))
        ctxs = [
            Context(int(rng.integers(4)), True, {variants[int(rng.integers(v))]: 1}) if rng.random() < 0.05 else Context(int(rng.integers(4)))
            for _ in range(1000)
        ]
        started = time.perf_counter()
        choice_probabilities(stats, variants, ctxs)
        out[f"variants_{v}"] = round((time.perf_counter() - started) * 1000, 1)
    return out


def run() -> dict[str, Any]:
    root = data_dir() / "bandits" / "obd"
    rnd = load_obd(root, "random")
    bts = load_obd(root, "bts")
    results: dict[str, Any] = {}

    # 1. Logged policies, whole week and the evaluation window.
    in_eval_r = rnd.timestamp >= SPLIT
    in_eval_b = bts.timestamp >= SPLIT
    logged: dict[str, Any] = {}
    for name, log, window in (("random", rnd, in_eval_r), ("bts", bts, in_eval_b)):
        week = on_policy(log.click, n_boot=N_BOOT, seed=SEED)
        late = on_policy(log.click[window], n_boot=N_BOOT, seed=SEED)
        logged[name] = {
            "ctr": week.value, "ci_low": week.ci_low, "ci_high": week.ci_high, "rows": len(log), "clicks": int(log.click.sum()),
            "eval_window": {"ctr": late.value, "ci_low": late.ci_low, "ci_high": late.ci_high, "rows": int(window.sum()), "clicks": int(log.click[window].sum())},
        }
    results["logged"] = logged

    # 2. Estimator check: Bernoulli-TS's value estimated from the random log vs its own CTR.
    build = design(rnd)
    all_rows = np.arange(len(rnd))
    q_all = crossfit_rewards(build, all_rows, rnd.item, rnd.click, N_ITEMS, folds=5, seed=SEED)
    check: dict[str, Any] = {}
    for window_name, r_mask, b_log in (("week", np.ones(len(rnd), bool), bts), ("eval_window", in_eval_r, bts.subset(in_eval_b))):
        rows = all_rows[r_mask]
        freq = action_frequencies(b_log)
        pi = freq[rnd.position[rows]]
        q = q_all[rows] if window_name == "week" else crossfit_rewards(build, rows, rnd.item[rows], rnd.click[rows], N_ITEMS, folds=5, seed=SEED)
        est = ope(rnd, rows, pi, q)
        truth = float(b_log.click.mean())
        check[window_name] = {
            "on_policy_ctr": truth,
            **{f"ctr_{k}": e.value for k, e in est.items()},
            "ci_low": {f"ctr_{k}": e.ci_low for k, e in est.items()},
            "ci_high": {f"ctr_{k}": e.ci_high for k, e in est.items()},
            "relative_error": {f"ctr_{k}": _rel(e.value, truth) for k, e in est.items()},
            "covered": {f"ctr_{k}": bool(e.ci_low <= truth <= e.ci_high) for k, e in est.items()},
        }
    results["estimator_check"] = {"bts": check}

    # 3. The product's policy: trained before SPLIT, evaluated after, on the random log.
    train = rnd.subset(~in_eval_r)
    eval_rows = all_rows[in_eval_r]
    train_rows = all_rows[~in_eval_r]
    q_eval = crossfit_rewards(
        build, eval_rows, rnd.item[eval_rows], rnd.click[eval_rows], N_ITEMS, folds=5,
        extra_rows=train_rows, extra_actions=rnd.item[train_rows], extra_reward=rnd.click[train_rows], seed=SEED,
    )
    evaluated = rnd.subset(in_eval_r)
    config = PolicyConfig(seed=SEED)
    policies: dict[str, Any] = {}
    started = time.perf_counter()
    train_bts = bts.subset(~in_eval_b)
    for name, contextual, logs in (
        ("product", True, (train, train_bts)),
        ("product_random_logs_only", True, (train,)),
        ("product_no_context", False, (train, train_bts)),
    ):
        t0 = time.perf_counter()
        stats = merge_all([train_stats(log, contextual=contextual) for log in logs])
        pi = choice_probabilities(stats, VARIANTS, contexts(evaluated, contextual=contextual), config)
        fit_s = time.perf_counter() - t0
        est = ope(rnd, eval_rows, pi, q_eval)
        policies[name] = {
            **{f"ctr_{k}": e.value for k, e in est.items()},
            "ci_low": {f"ctr_{k}": e.ci_low for k, e in est.items()},
            "ci_high": {f"ctr_{k}": e.ci_high for k, e in est.items()},
            "se": {f"ctr_{k}": e.se for k, e in est.items()},
            "effective_sample_size": float(_ess(pi[np.arange(len(eval_rows)), rnd.item[eval_rows]] * N_ITEMS)),
            "max_weight": float(pi.max() * N_ITEMS),
            "train_and_score_s": round(fit_s, 3),
        }
    policy_s = time.perf_counter() - started
    results["product"] = policies["product"]
    results["anchors"] = {k: v for k, v in policies.items() if k != "product"}
    engaged_eval = evaluated.engaged
    has_aff = evaluated.affinity.sum(axis=1) > 0
    results["protocol"] = {
        "campaign": "men",
        "split": f"train: random log before {SPLIT} UTC ({len(train)} rows, {int(train.click.sum())} clicks) "
        f"and bts log before it ({len(train_bts)} rows, {int(train_bts.click.sum())} clicks); "
        f"evaluate: random log from then on ({len(eval_rows)} rows, {int(evaluated.click.sum())} clicks)",
        "train_rows": len(train) + len(train_bts),
        "eval_rows": len(eval_rows),
        "eval_rows_engaged": int(engaged_eval.sum()),
        "eval_rows_with_affinity": int(has_aff.sum()),
        "policy": config.name,
        "bootstrap": N_BOOT,
        "reward_model": "logistic regression (C=1), 5-fold cross-fitted",
        "policy_s": round(policy_s, 2),
    }
    results["cost_ms_per_1000_contexts"] = cost_curve()

    # Tables.
    print_table(
        "Logged policies (on-policy click rate, 95% bootstrap CI)",
        ["policy", "window", "rows", "clicks", "ctr", "ci_low", "ci_high"],
        [
            [name, w, d["rows"], d["clicks"], d["ctr"], d["ci_low"], d["ci_high"]]
            for name in ("random", "bts")
            for w, d in (("Nov 24-30", logged[name]), ("Nov 28-30", logged[name]["eval_window"]))
        ],
    )
    print_table(
        "Estimator check: Bernoulli-TS value estimated from the random log vs its on-policy CTR",
        ["window", "on-policy", "estimator", "estimate", "ci_low", "ci_high", "rel. error", "CI covers"],
        [
            [w, c["on_policy_ctr"], k, c[k], c["ci_low"][k], c["ci_high"][k], c["relative_error"][k], c["covered"][k]]
            for w, c in check.items()
            for k in ("ctr_ipw", "ctr_snipw", "ctr_dr")
        ],
    )
    print_table(
        "Product policy, off-policy on the random log Nov 28-30 (trained on Nov 24-27)",
        ["policy", "estimator", "ctr", "ci_low", "ci_high", "vs random (Nov 28-30)", "vs bts (Nov 28-30)", "vs bts (week)"],
        [
            [name, k, p[k], p["ci_low"][k], p["ci_high"][k],
             p[k] / logged["random"]["eval_window"]["ctr"], p[k] / logged["bts"]["eval_window"]["ctr"], p[k] / logged["bts"]["ctr"]]
            for name, p in policies.items()
            for k in ("ctr_ipw", "ctr_snipw", "ctr_dr")
        ],
    )
    print_table(
        "Cost: choice probabilities for 1,000 contexts",
        ["variants", "ms"],
        [[k.removeprefix("variants_"), v] for k, v in results["cost_ms_per_1000_contexts"].items()],
    )
    return results


def _ess(w: np.ndarray) -> float:
    """Kish effective sample size of importance weights."""
    return float(w.sum() ** 2 / (w**2).sum()) if np.any(w) else 0.0
