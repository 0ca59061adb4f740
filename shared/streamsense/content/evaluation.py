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

The table does not know a title's full list of variants (the catalogue does), only those that
were shown. So the evaluated policy of a fold chooses among the variants the *other* fold
showed (the others get probability 0; taking the variants of both folds would let each
evaluated impression's own variant into the candidate list, and a title seen once would
"choose" its only logged variant with probability 1), and a title the other fold never showed
is served by the logging policy (each such impression scores its own logged reward).

Estimators (see ``ope``): IPW, self-normalized IPW and doubly robust, the DR reward model
being the other fold's posterior-mean play rate (at its average slot mix). They are computed
from the table's evaluation cells (``store.Cells``), which hold exactly the sums these
estimators and their delta-method standard errors need, because the policy and the reward
model are constant within a cell. Intervals are normal (estimate +- z * se).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from streamsense.content.features import Context, arm_features, context_matrix
from streamsense.content.model import (
    PolicyConfig,
    Posterior,
    TitleStats,
    VariantStats,
    posterior,
    thompson_probabilities,
)
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


class _Memo:
    """Posterior and Thompson probabilities keyed by their numeric inputs. The probabilities are
    a deterministic function of the statistics (in posterior order) and the arm patterns (draws
    are seeded by the config), and most long-tail titles share a handful of statistics (one
    impression, no play, ...), so this turns thousands of solves into hundreds."""

    def __init__(self, config: PolicyConfig) -> None:
        self.config = config
        self.cache: dict[tuple[object, ...], tuple[Posterior, np.ndarray]] = {}

    def solve(self, stats: TitleStats, variants: tuple[str, ...], arm: np.ndarray) -> tuple[Posterior, np.ndarray]:
        names = (*variants, *sorted(set(stats.variants) - set(variants)))
        key = (
            len(variants),
            tuple(tuple(stats.variants.get(n, VariantStats()).to_list()) for n in names),
            arm.shape,
            arm.tobytes(),
        )
        hit = self.cache.get(key)
        if hit is None:
            post = posterior(stats, variants, self.config)
            hit = self.cache[key] = (post, thompson_probabilities(post, arm, self.config, self.config.seed))
        return hit


def learned_policy(
    title_id: str,
    state: TitleState,
    config: PolicyConfig | None = None,
    candidates: Sequence[str] | None = None,
    memo: _Memo | None = None,
) -> TitlePolicy:
    """The policy for the title now; ``candidates`` is the title's variant list when known (from
    the catalogue; variants never shown get the prior), else the variants with statistics."""
    config = config or PolicyConfig()
    memo = memo or _Memo(config)
    variants = tuple(sorted(candidates)) if candidates is not None else tuple(sorted(v for v, s in state.stats.variants.items() if s.n))
    if not variants:
        raise ValueError(f"title {title_id!r} has no statistics")
    context = Context(position=0)
    post, all_probs = memo.solve(state.stats, variants, arm_features([context], variants))
    probs = all_probs[0]
    rates = post.rates(context_matrix(context, variants)[None].astype(float))[0]
    chosen = max(range(len(variants)), key=lambda i: (probs[i], rates[i], -i))
    return TitlePolicy(
        title_id=title_id,
        variants=variants,
        shown={v: state.stats.variants[v].n if v in state.stats.variants else 0 for v in variants},
        plays={v: state.stats.variants[v].plays if v in state.stats.variants else 0 for v in variants},
        rate={v: float(r) for v, r in zip(variants, rates, strict=True)},
        probabilities={v: float(p) for v, p in zip(variants, probs, strict=True)},
        chosen=variants[chosen],
        policy=f"{config.name}/{state.stats.digest()}",
    )


def learned_policies(
    states: Mapping[str, TitleState], config: PolicyConfig | None = None, candidates: Mapping[str, Sequence[str]] | None = None
) -> dict[str, TitlePolicy]:
    """learned_policy for every title with statistics."""
    from threadpoolctl import threadpool_limits

    config = config or PolicyConfig()
    candidates = candidates or {}
    memo = _Memo(config)
    with threadpool_limits(1):  # thousands of tiny solves: BLAS threads only contend (10x slower on a busy host)
        return {t: learned_policy(t, s, config, candidates.get(t), memo) for t, s in sorted(states.items()) if s.stats.impressions}


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
    logging_fallback: int  # evaluated impressions of titles the other fold never showed
    #: title -> (policy learned from fold 1, which scores fold 0; from fold 0, scoring fold 1):
    #: variant -> probability for a member with no history of the title; None = the logging
    #: policy (the other fold never showed the title).
    fold_probabilities: dict[str, tuple[dict[str, float] | None, dict[str, float] | None]]
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


def slot_mix(stats: TitleStats) -> np.ndarray:
    """The share of a title's impressions in slot buckets 1, 2 and 3+ (the position features)."""
    n = stats.impressions
    if not n:
        return np.zeros(3)
    return np.asarray(sum(s.z[:3] for s in stats.variants.values()), dtype=float) / n


def _fold_policy(
    stats: TitleStats, variants: tuple[str, ...], patterns: list[Pattern], memo: _Memo
) -> tuple[dict[Pattern, np.ndarray], dict[Pattern, np.ndarray]]:
    """Choice probabilities and reward-model rates per pattern of the policy learned from
    ``stats`` (the other fold's). The cells do not keep the slot, so the reward model is the
    posterior-mean rate at the other fold's average slot mix (DR stays unbiased whatever the
    reward model; a coarser one only costs variance)."""
    contexts = [Context(0, bool(p), dict(p)) for p in patterns]
    post, probs = memo.solve(stats, variants, arm_features(contexts, variants))
    mix = slot_mix(stats)
    rates = {}
    for p, c in zip(patterns, contexts, strict=True):
        z = context_matrix(c, variants).astype(float)
        z[:, :3] = mix
        rates[p] = np.clip(post.rates(z[None])[0], 0.0, 1.0)
    return dict(zip(patterns, probs, strict=True)), rates


def cross_fitted_value(states: Mapping[str, TitleState], config: PolicyConfig | None = None) -> PolicyValue:
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # as in learned_policies
        return _cross_fitted_value(states, config or PolicyConfig())


def _cross_fitted_value(states: Mapping[str, TitleState], config: PolicyConfig) -> PolicyValue:
    memo = _Memo(config)
    n = plays = with_history = fallback = 0
    s_ipw = s_ipw2 = 0.0
    sw = swr = sww = swwr = 0.0
    s_dr = s_dr2 = 0.0
    fold_probs: dict[str, tuple[dict[str, float] | None, dict[str, float] | None]] = {}
    for title_id in sorted(states):
        state = states[title_id]
        per_fold: list[dict[str, float] | None] = []
        for fold in (0, 1):
            cells = {k: v for k, v in state.cells.data.items() if k[0] == fold}
            other = state.fold_stats(1 - fold)
            variants = tuple(sorted(v for v, st in other.variants.items() if st.n))
            if not variants:  # served by the logging policy: pi = p, every weight is 1
                per_fold.append(None)
                for (_, _, pattern), (c_n, c_r, *_rest) in cells.items():
                    n += c_n
                    plays += c_r
                    fallback += c_n
                    with_history += c_n if pattern else 0
                    s_ipw += c_r
                    s_ipw2 += c_r
                    sw += c_n
                    swr += c_r
                    sww += c_n
                    swwr += c_r
                    s_dr += c_r
                    s_dr2 += c_r
                continue
            index = {v: i for i, v in enumerate(variants)}
            patterns = sorted({k[2] for k in cells} | {()})
            probs, rates = _fold_policy(other, variants, patterns, memo)
            per_fold.append({v: float(p) for v, p in zip(variants, probs[()], strict=True)})
            for (_, variant, pattern), (c_n, c_r, c_w, c_wr, c_ww, c_wwr) in cells.items():
                if variant not in index:  # never shown by the other fold: the policy cannot choose it
                    n += c_n
                    plays += c_r
                    with_history += c_n if pattern else 0
                    q = rates[pattern]
                    base = float(probs[pattern] @ q)
                    s_dr += c_n * base
                    s_dr2 += c_n * base * base
                    continue
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
                q = rates[pattern]
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
        logging_fallback=fallback,
        fold_probabilities=fold_probs,
        policy=config.name,
    )
