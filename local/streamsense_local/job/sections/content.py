"""Dynamic content: what ``content_bandit`` learned from the replayed impressions.

Product figures come from the ``content`` table as the function wrote it, read through the
domain's own API (``streamsense.content.store.title_states`` and ``.evaluation``): per title the
variant the policy would show now, its choice probabilities and estimated play rates; the
cross-fitted off-policy value of the learned policy on the logged impressions (IPW, SNIPW,
DR) next to the logging policy's observed play rate.

Ground truth (the simulator's hidden per-(home country, creative style) affinities, when the
job passes them in ``ctx.truth["simulator"]["impressions"]``) is joined here, labelled as truth:
for each title the truly best variant for the audience that saw it, how often the learned
choice is that variant, and the true relative change in the click model's per-slot play
probability q (q is proportional to exp(affinity), so the ratio is exact for q; see the notes
for what it leaves out) of the learned policies and of two oracles.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from streamsense.content.evaluation import (
    PolicyValue,
    TitlePolicy,
    cross_fitted_value,
    learned_policies,
)
from streamsense.content.model import PolicyConfig
from streamsense.content.store import TitleState, fold_of, title_states

from streamsense_local.job.sections import JobContext, Section, Table

#: Titles with at least this many impressions are compared with the truly best variant.
MATCH_MIN_IMPRESSIONS = 100
#: Impressions-per-title buckets of the learning-curve table.
BUCKETS = ((1, 9), (10, 99), (100, 999), (1000, None))
TOP_TITLES = 15


@dataclass
class _TitleTruth:
    """Sums over one title's logged impressions of d**position * exp(affinity[home country, v])."""

    impressions: int = 0
    per_variant: dict[str, float] = field(default_factory=lambda: defaultdict(float))  # showing v to all of them
    logged: float = 0.0  # the variant actually shown (uniform logging)
    country_oracle: float = 0.0  # the best variant for each member's home country
    cross_fitted: float = 0.0  # the policy learned from the other fold (what OPE scored)
    variants_offered: int = 0  # the title's number of variants, from the logged propensity


def _lines(events: Any) -> list[dict[str, Any]]:
    out = []
    for e in events:
        out.append(e if isinstance(e, dict) else json.loads(e))
    return out


def _truth_join(truth: dict[str, Any], value: PolicyValue, candidates: dict[str, tuple[str, ...]]) -> dict[str, _TitleTruth]:
    names = list(truth["variants"])
    col = {v: i for i, v in enumerate(names)}
    mult = {c: np.exp(np.asarray(a, dtype=float)) for c, a in truth["affinity"].items()}
    decay = float(truth["position_decay"])
    home = truth.get("home_country") or {}
    out: dict[str, _TitleTruth] = defaultdict(_TitleTruth)
    for e in _lines(truth["events"]):
        p = e["payload"]
        # The member's home country: on the impression when the producer sends it, else from the
        # simulator's account list.
        country = p.get("country") or home.get(e["account_id"])
        probs = value.fold_probabilities.get(p["title_id"])
        variants = candidates.get(p["title_id"])
        if country not in mult or probs is None or not variants:
            continue
        m, d = mult[country], decay ** int(p["position"])
        t = out[p["title_id"]]
        t.impressions += 1
        t.variants_offered = max(t.variants_offered, round(1.0 / float(p["propensity"])))
        for v in variants:
            t.per_variant[v] += d * m[col[v]]
        logged = d * m[col[p["variant_id"]]]
        t.logged += logged
        t.country_oracle += d * max(m[col[v]] for v in variants)
        pi = probs[fold_of(e["event_id"])]
        # The evaluated policy of this impression's fold (None: the logging policy kept serving).
        t.cross_fitted += logged if pi is None else d * sum(pr * m[col[v]] for v, pr in pi.items())
    return dict(out)


def _bucket_name(lo: int, hi: int | None) -> str:
    return f"{lo:,}+" if hi is None else f"{lo:,}-{hi:,}"


def _variant_cell(pol: TitlePolicy) -> str:
    # shown/plays, model rate at slot 0, probability of being shown now
    return "; ".join(
        f"{v} {pol.shown[v]}/{pol.plays[v]} r={pol.rate[v]:.3f} p={pol.probabilities[v]:.2f}" for v in pol.variants
    )


def _plot(ctx: JobContext, value: PolicyValue, implied: float | None) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = ["logging\n(observed)", "learned\nIPW", "learned\nSNIPW", "learned\nDR"]
    ests = [value.logged, value.ipw, value.snipw, value.dr]
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    x = np.arange(len(ests))
    vals = np.array([e.value for e in ests])
    err = np.array([[e.value - e.ci_low for e in ests], [e.ci_high - e.value for e in ests]])
    ax.bar(x, vals, color=["#888888", "#4c72b0", "#4c72b0", "#4c72b0"], yerr=err, capsize=4)
    if implied is not None:
        ax.axhline(implied, color="#dd8452", linestyle="--", label="learned policy, implied by the hidden affinities (truth)")
        ax.legend(loc="lower right", fontsize=7)
    ax.set_xticks(x, labels)
    ax.set_ylabel("play rate per impression")
    ax.set_title(f"content_bandit: cross-fitted off-policy value ({value.impressions:,} impressions, 95% CI)", fontsize=9)
    fig.tight_layout()
    path = ctx.plot_path("content_policy_value")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def collect(ctx: JobContext) -> Section | None:
    items = ctx.stack.scan("content")
    states: dict[str, TitleState] = {t: s for t, s in title_states(items).items() if s.stats.impressions}
    if not states:
        return None
    config = PolicyConfig()
    truth = (ctx.truth.get("simulator") or {}).get("impressions")
    # The title's variant list, from the catalogue when the truth carries it (the table only
    # knows the variants that were shown).
    catalogue: dict[str, list[str]] = (truth or {}).get("title_variants") or {}
    policies = learned_policies(states, config, catalogue)
    value = cross_fitted_value(states, config)
    members = sum(1 for i in items if str(i["pk"]).startswith("member#"))
    impressions = sum(s.stats.impressions for s in states.values())
    plays = sum(s.stats.plays for s in states.values())

    section = Section("Dynamic content: what content_bandit learned from the impressions")
    h: dict[str, Any] = {
        "impressions": impressions,
        "plays": plays,
        "titles": len(states),
        "members": members,
        "evaluated_impressions": value.impressions,
        "impressions_with_title_history_share": round(value.with_history / value.impressions, 4),
        "logged_play_rate": round(value.logged.value, 5),
        "logged_play_rate_ci": [round(value.logged.ci_low, 5), round(value.logged.ci_high, 5)],
    }
    for name in ("ipw", "snipw", "dr"):
        est = getattr(value, name)
        h[f"learned_play_rate_{name}"] = round(est.value, 5)
        h[f"learned_play_rate_{name}_ci"] = [round(est.ci_low, 5), round(est.ci_high, 5)]
    h["evaluated_by_logging_fallback"] = value.logging_fallback
    h["estimated_lift_snipw"] = round(value.lift_snipw, 4)
    h["learned_beats_logging_at_95"] = bool(value.snipw.ci_low > value.logged.ci_high)

    joined: dict[str, _TitleTruth] = {}
    if truth and all(k in truth for k in ("affinity", "variants", "position_decay", "events")):
        joined = _truth_join(truth, value, {t: pol.variants for t, pol in policies.items()})
    elif truth is None:
        section.notes.append("No simulator impression truth in this run: the comparison with the hidden affinities is left out.")
    else:
        section.notes.append(
            "The simulator's impression truth lacks the replayed impressions (events): the comparison with the hidden affinities is left out."
        )

    best: dict[str, str] = {}
    # Titles whose whole variant list is known (from the catalogue, or every offered variant was
    # shown): the only ones where "the truly best variant" is defined.
    eligible: set[str] = set()
    if joined:
        for t, tt in joined.items():
            best[t] = max(sorted(tt.per_variant), key=lambda v: tt.per_variant[v])
            if t in catalogue or len(policies[t].variants) >= tt.variants_offered:
                eligible.add(t)
        base = sum(tt.logged for tt in joined.values())
        served = sum(sum(policies[t].probabilities[v] * tt.per_variant[v] for v in tt.per_variant) for t, tt in joined.items())
        title_oracle = sum(tt.per_variant[best[t]] for t, tt in joined.items())
        h["truth_impressions_joined"] = sum(tt.impressions for tt in joined.values())
        h["true_q_lift_learned_cross_fitted"] = round(sum(tt.cross_fitted for tt in joined.values()) / base, 4)
        h["true_q_lift_served_now"] = round(served / base, 4)
        h["true_q_lift_oracle_best_variant_per_title"] = round(title_oracle / base, 4)
        h["true_q_lift_oracle_best_variant_per_country"] = round(sum(tt.country_oracle for tt in joined.values()) / base, 4)
        compared = [t for t in eligible if joined[t].impressions >= MATCH_MIN_IMPRESSIONS]
        h["titles_compared"] = len(compared)
        if compared:
            h["best_variant_match_share"] = round(sum(policies[t].chosen == best[t] for t in compared) / len(compared), 4)
            h["best_variant_match_chance"] = round(float(np.mean([1 / len(policies[t].variants) for t in compared])), 4)
        h["titles_with_a_variant_never_shown"] = sum(
            1 for t, tt in joined.items() if len(policies[t].variants) < tt.variants_offered or min(policies[t].shown.values()) == 0
        )
    section.headline = h

    # ---- tables ----
    top = sorted(states, key=lambda t: (-states[t].stats.impressions, t))[:TOP_TITLES]
    rows = []
    for t in top:
        pol = policies[t]
        row: list[Any] = [t, states[t].stats.impressions, states[t].stats.plays, pol.chosen, round(pol.probabilities[pol.chosen], 3), _variant_cell(pol)]
        if joined:
            row += [best.get(t, ""), "yes" if best.get(t) == pol.chosen else "no"]
        rows.append(row)
    header = ["title", "impressions", "plays", "would show now", "P(show)", "per variant: shown/plays, est. rate at slot 0, P(show)"]
    if joined:
        header += ["truly best (truth)", "match"]
    section.tables.append(Table(f"Learned choice for a member new to the title, top {len(top)} titles by impressions", header, rows))

    def ci(e: Any) -> str:
        return f"[{e.ci_low:.4f}, {e.ci_high:.4f}]"

    logged = value.logged.value
    value_rows: list[list[Any]] = [
        ["logging policy (uniform random), observed", "mean", round(logged, 5), ci(value.logged), 1.0],
        ["learned policy (cross-fitted), product OPE", "IPW", round(value.ipw.value, 5), ci(value.ipw), round(value.ipw.value / logged, 4)],
        ["learned policy (cross-fitted), product OPE", "SNIPW", round(value.snipw.value, 5), ci(value.snipw), round(value.snipw.value / logged, 4)],
        ["learned policy (cross-fitted), product OPE", "DR", round(value.dr.value, 5), ci(value.dr), round(value.dr.value / logged, 4)],
    ]
    if joined:
        for label, key in (
            ("learned policy (cross-fitted), truth", "true_q_lift_learned_cross_fitted"),
            ("policy served now (all impressions), truth", "true_q_lift_served_now"),
            ("anchor: best variant per title (oracle), truth", "true_q_lift_oracle_best_variant_per_title"),
            ("anchor: best variant per home country (oracle), truth", "true_q_lift_oracle_best_variant_per_country"),
        ):
            value_rows.append([label, "q-lift x observed", round(logged * h[key], 5), "", h[key]])
    section.tables.append(
        Table("Play rate per impression on the replayed impressions (lift = vs the logging policy)", ["policy", "estimator", "play rate", "95% CI", "lift"], value_rows)
    )

    curve = []
    for lo, hi in BUCKETS:
        ts = [t for t in states if states[t].stats.impressions >= lo and (hi is None or states[t].stats.impressions <= hi)]
        if not ts:
            continue
        n_imp = sum(states[t].stats.impressions for t in ts)
        row = [_bucket_name(lo, hi), len(ts), n_imp, round(n_imp / impressions, 4), round(float(np.mean([policies[t].probabilities[policies[t].chosen] for t in ts])), 3)]
        if joined:
            tj = [t for t in ts if t in joined]
            base = sum(joined[t].logged for t in tj)
            served = sum(sum(policies[t].probabilities[v] * joined[t].per_variant[v] for v in joined[t].per_variant) for t in tj)
            te = [t for t in tj if t in eligible]
            match = float(np.mean([policies[t].chosen == best[t] for t in te])) if te else math.nan
            chance = float(np.mean([1 / len(policies[t].variants) for t in te])) if te else math.nan
            row += [round(match, 3), round(chance, 3), round(served / base, 4) if base else math.nan]
        curve.append(row)
    cheader = ["impressions per title", "titles", "impressions", "share", "mean P(show) of the choice"]
    if joined:
        cheader += ["match truly best (truth, titles with every variant known)", "chance", "true q-lift served now"]
    section.tables.append(Table("How much each title has been learned, by its traffic", cheader, curve))

    implied = logged * h["true_q_lift_learned_cross_fitted"] if joined else None
    section.plots.append(_plot(ctx, value, implied))

    section.notes += [
        f"Policy {config.name}: Thompson sampling on a per-title linear play-rate model (slot, the member's own history of the "
        "title); it has no country feature and no sharing between titles.",
        "Off-policy value: each impression sits in one of two folds (hash of its event id); each fold is scored with the "
        "policy learned from the other fold only, so the figure is the value of a policy trained on half the impressions "
        "(conservative for the policy served now). Normal 95% intervals from the delta method; DR's reward model is the other "
        "fold's posterior-mean play rate.",
    ]
    if joined:
        section.notes += [
            "Truth: the simulator's click model gives each slot q = base * 0.85**position * genre boost * exp(affinity[home "
            "country, variant]) before a cascade. The q-lifts weight each impression by 0.85**position and exp(affinity) only: "
            "the genre boost and the cascade (earlier slots taking the play) are not in the truth the job passes, so "
            "'q-lift x observed' is an approximation of the true play rate, not an exact one.",
            f"'Truly best' = the title's variant with the highest summed q over the members who saw the title; compared for titles "
            f"with >= {MATCH_MIN_IMPRESSIONS} impressions. The per-country oracle needs a country feature the policy does not have.",
        ]
    return section
