"""What the content bandit has learned, read back from the ``content`` table.

- ``learned_policy``: per title, the variant the policy would show now (to a member with no
  history of the title, the common case) with its choice probabilities and the model's
  estimated play rates.
- ``cross_fitted_value``: the off-policy value of the learned policy on the logged impressions,
  next to the logging policy's observed play rate on the same impressions. Each impression
  sits in one of two folds (``store.fold_of``); fold 0 is scored with the policy learned from
  fold 1 alone and vice versa, so no impression is scored by a policy that learned from it
  (scoring the full-data policy on its own training impressions would pick each title's
  luckiest variant and then credit it with that luck). The figure is therefore the value of
  a policy that learned from half the impressions: a conservative estimate of the policy now
  served, which learned from all of them.

Estimators (see ``ope``): IPW, self-normalized IPW and doubly robust, the DR reward model
being the other fold's posterior-mean play rate. They are computed from the table's
evaluation cells (``store.Cells``), which hold exactly the sums these estimators and their
delta-method standard errors need, because the policy and the reward model are constant
within a cell. Intervals are normal (estimate +- z * se).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from streamsense.content.features import Context, arm_features, context_matrix
from streamsense.content.model import PolicyConfig, posterior, thompson_probabilities
from streamsense.content.ope import Estimate
from streamsense.content.store import W_SCALE, Pattern, TitleState

Z95 = 1.959963984540054


@dataclass(frozen=True)
class TitlePolicy:
    title_id: str
    variants: tuple[str, ...]  # every variant the title has statistics for (sorted)
    shown: dict[str, int]
    plays: dict[str, int]
    rate: dict[str, float]  # posterior-mean play rate at slot 0, member with no history of the title
    probabilities: dict[str, float]  # what the policy serves that member now
    chosen: str  # the most probable variant (ties: higher estimated rate, then name)
    policy: str  # config name + digest of the statistics


def learned_policy(title_id: str, state: TitleState, config: PolicyConfig | None = None) -> TitlePolicy:
    config = config or PolicyConfig()
    variants = tuple(sorted(state.stats.variants))
    if not variants:
        raise ValueError(f"title {title_id!r} has no statistics")
    post = posterior(state.stats, variants, config)
    context = Context(position=0)
    probs = thompson_probabilities(post, arm_features([context], variants), config, np.random.default_rng(config.seed))[0]
    rates = post.rates(context_matrix(context, variants)[None].astype(float))[0]
    chosen = max(range(len(variants)), key=lambda i: (probs[i], rates[i], -i))
    return TitlePolicy(
        title_id=title_id,
        variants=variants,
        shown={v: state.stats.variants[v].n for v in variants},
        plays={v: state.stats.variants[v].plays for v in variants},
        rate={v: float(r) for v, r in zip(variants, rates, strict=True)},
        probabilities={v: float(p) for v, p in zip(variants, probs, strict=True)},
        chosen=variants[chosen],
        policy=f"{config.name}/{state.stats.digest()}",
    )


@dataclass(frozen=True)
class PolicyValue:
    impressions: int  # evaluated impressions (every applied impression with a cell)
    plays: int
    logged: Estimate  # the logging policy's observed play rate on them
    ipw: Estimate  # the learned (cross-fitted) policy's estimated play rate
    snipw: Estimate
    dr: Estimate
    with_history: int  # evaluated impressions whose member had played the title before
    titles: int
    #: title -> (policy learned from fold 1, which scores fold 0; from fold 0, scoring fold 1):
    #: variant -> probability for a member with no history of the title.
    fold_probabilities: dict[str, tuple[dict[str, float], dict[str, float]]]
    policy: str

    @property
    def lift_snipw(self) -> float:
        return self.snipw.value / self.logged.value if self.logged.value > 0 else float("nan")


def _estimate(value: float, se: float) -> Estimate:
    return Estimate(value, value - Z95 * se, value + Z95 * se, se)


def _mean_estimate(total: float, total_sq: float, n: int) -> Estimate:
    """Mean of n per-impression terms from their sum and sum of squares, with its standard error."""
    mean = total / n
    var = max(total_sq - n * mean * mean, 0.0) / (n - 1) if n > 1 else float("nan")
    return _estimate(mean, math.sqrt(var / n) if n > 1 else float("nan"))


def _fold_policy(
    state: TitleState,
    fold: int,
    variants: tuple[str, ...],
    patterns: list[Pattern],
    buckets: list[tuple[int, Pattern]],
    config: PolicyConfig,
) -> tuple[dict[Pattern, np.ndarray], dict[tuple[int, Pattern], np.ndarray]]:
    """Choice probabilities per pattern and reward-model rates per (bucket, pattern) of the
    policy learned from the fold other than ``fold``."""
    stats = state.fold_stats(1 - fold)
    post = posterior(stats, variants, config)
    contexts = [Context(0, bool(p), dict(p)) for p in patterns]
    probs = thompson_probabilities(post, arm_features(contexts, variants), config, np.random.default_rng(config.seed))
    rates = {}
    for b, p in buckets:
        z = context_matrix(Context(b, bool(p), dict(p)), variants)[None].astype(float)
        rates[(b, p)] = np.clip(post.rates(z)[0], 0.0, 1.0)
    return dict(zip(patterns, probs, strict=True)), rates


def cross_fitted_value(states: Mapping[str, TitleState], config: PolicyConfig | None = None) -> PolicyValue:
    config = config or PolicyConfig()
    n = plays = with_history = 0
    s_ipw = s_ipw2 = 0.0
    sw = swr = sww = swwr = 0.0
    s_dr = s_dr2 = 0.0
    fold_probs: dict[str, tuple[dict[str, float], dict[str, float]]] = {}
    for title_id in sorted(states):
        state = states[title_id]
        variants = tuple(sorted(state.stats.variants))
        if not variants:
            continue
        index = {v: i for i, v in enumerate(variants)}
        per_fold: list[dict[str, float]] = []
        for fold in (0, 1):
            cells = {k: v for k, v in state.cells.data.items() if k[0] == fold}
            patterns = sorted({k[3] for k in cells} | {()})
            buckets = sorted({(k[2], k[3]) for k in cells})
            probs, rates = _fold_policy(state, fold, variants, patterns, buckets, config)
            per_fold.append({v: float(p) for v, p in zip(variants, probs[()], strict=True)})
            for (_, variant, bucket, pattern), (c_n, c_r, c_w, c_wr, c_ww, c_wwr) in cells.items():
                pi = float(probs[pattern][index[variant]])
                w, wr, ww, wwr = c_w / W_SCALE, c_wr / W_SCALE, c_ww / W_SCALE, c_wwr / W_SCALE
                n += c_n
                plays += c_r
                with_history += c_n if pattern else 0
                s_ipw += pi * wr
                s_ipw2 += pi * pi * wwr
                sw += pi * w
                swr += pi * wr
                sww += pi * pi * ww
                swwr += pi * pi * wwr
                q = rates[(bucket, pattern)]
                base = float(probs[pattern] @ q)  # sum_a pi(a|x) q(x, a)
                qa = float(q[index[variant]])
                s_dr += c_n * base + pi * (wr - qa * w)
                s_dr2 += c_n * base * base + 2 * base * pi * (wr - qa * w) + pi * pi * (wwr - 2 * qa * wwr + qa * qa * ww)
        fold_probs[title_id] = (per_fold[0], per_fold[1])
    if n == 0:
        raise ValueError("no evaluated impressions in the table")
    snipw = swr / sw if sw > 0 else 0.0
    snipw_se = math.sqrt(max(swwr * (1 - 2 * snipw) + snipw * snipw * sww, 0.0)) / sw if sw > 0 else float("nan")
    return PolicyValue(
        impressions=n,
        plays=plays,
        logged=_mean_estimate(float(plays), float(plays), n),
        ipw=_mean_estimate(s_ipw, s_ipw2, n),
        snipw=_estimate(snipw, snipw_se),
        dr=_mean_estimate(s_dr, s_dr2, n),
        with_history=with_history,
        titles=len(fold_probs),
        fold_probabilities=fold_probs,
        policy=config.name,
    )
