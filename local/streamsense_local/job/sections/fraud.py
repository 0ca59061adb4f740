"""Fraud: what fraud_scorer wrote to ``decisions`` and investigation to ``cases``, joined with the
inputs' ground truth.

- decisions by event type and outcome, and by reason (each rule that fired; "model score" when
  the model alone moved a decision off allow);
- the handbook's evaluation payments: precision-recall of the scores stored in the decisions
  (PR curve, AP, AUC, precision/recall of review+block), next to the benchmark's figures;
- the simulator's traffic: detection per attack type (events and attacks), false-positive rate
  overall, by country, by device type and per legitimate-trap kind;
- cases opened, by recommended action.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from streamsense_local.job.sections import JobContext, Section, Table

FLAGGED = ("challenge", "review", "block")
ACTIONS = ("allow", *FLAGGED)
# The benchmark's protocol B product figures, read from its last run (bench-results/fraud.json).
BENCH_RESULT = Path(__file__).resolve().parents[4] / "bench-results" / "fraud.json"


def _rate(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def _bench() -> dict[str, float] | None:
    try:
        product = json.loads(BENCH_RESULT.read_text())["protocol_b"]["product"]
    except (OSError, KeyError, ValueError):
        return None
    return {k: round(float(product[k]), 4) for k in ("ap", "auc", "cp100")}


def _by_outcome(decisions: list[dict[str, Any]]) -> Table:
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for d in decisions:
        counts[str(d.get("event_type"))][str(d.get("action"))] += 1
    rows = [[t, *[c[a] for a in ACTIONS], sum(c.values())] for t, c in sorted(counts.items())]
    total = Counter(str(d.get("action")) for d in decisions)
    rows.append(["all", *[total[a] for a in ACTIONS], len(decisions)])
    return Table("decisions by event type and outcome", ["event type", *ACTIONS, "total"], rows)


def _reasons(d: dict[str, Any]) -> list[str]:
    rules = [str(r.get("rule")) for r in d.get("rules") or []]
    if not rules and d.get("action") != "allow":
        return ["model score"]
    return rules


def _by_reason(decisions: list[dict[str, Any]]) -> Table:
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for d in decisions:
        for reason in _reasons(d):
            counts[reason][str(d.get("action"))] += 1
    rows = [[r, *[c[a] for a in ACTIONS], sum(c.values())] for r, c in sorted(counts.items())]
    return Table("decisions by reason (a decision counts once per rule that fired)", ["reason", *ACTIONS, "decisions"], rows)


def _handbook(ctx: JobContext, decisions: list[dict[str, Any]], section: Section) -> None:
    import numpy as np
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

    truth = ctx.truth.get("handbook") or {}
    eval_ids: set[str] = set(truth.get("eval_event_ids") or ())
    if not eval_ids:
        return
    fraud_ids: set[str] = set(truth.get("fraud_event_ids") or ())
    evald = [d for d in decisions if d.get("event_id") in eval_ids]
    # The live model's score and action; with no live model (fraud_trainer publishes a candidate,
    # scored in shadow until promoted) the candidate's, as the decision stored them.
    live = [(float(d["score"]), str(d.get("action")), d) for d in evald if d.get("score") is not None]
    shadow = [(float(d["shadow"]["score"]), str(d["shadow"].get("action")), d) for d in evald
              if d.get("score") is None and isinstance(d.get("shadow"), dict) and d["shadow"].get("score") is not None]
    scored = live if len(live) >= len(shadow) else shadow
    h = section.headline
    h["handbook_eval_payments"] = len(eval_ids)
    h["handbook_eval_decided"] = len(evald)
    h["handbook_eval_scored"] = len(scored)
    h["handbook_score_source"] = "live" if scored is live else "shadow"
    if scored is shadow:
        versions = sorted({str(d["shadow"].get("version")) for _, _, d in shadow})
        section.notes.append(
            f"No live fraud model decided the handbook payments (the run does not promote the model fraud_trainer "
            f"published): precision-recall uses the candidate's shadow scores and actions stored in the decisions "
            f"({', '.join(versions)})."
        )
    y = np.array([d["event_id"] in fraud_ids for _, _, d in scored], dtype=np.int8)
    s = np.array([sc for sc, _, _ in scored])
    h["handbook_eval_frauds"] = int(y.sum())
    flagged = np.array([a in ("review", "block") for _, a, _ in scored], dtype=bool)
    tp = int((flagged & (y == 1)).sum())
    h["handbook_review_block"] = int(flagged.sum())
    h["handbook_review_block_precision"] = _rate(tp, int(flagged.sum()))
    h["handbook_review_block_recall"] = _rate(tp, int(y.sum()))
    both = bool(0 < y.sum() < len(y))
    h["handbook_ap"] = round(float(average_precision_score(y, s)), 4) if both else None
    h["handbook_auc"] = round(float(roc_auc_score(y, s)), 4) if both else None
    bench = _bench()
    rows: list[list[Any]] = [[f"local run ({h['handbook_score_source']} scores in the decisions)", h["handbook_ap"], h["handbook_auc"], len(scored), int(y.sum())]]
    if bench is not None:
        h["bench_protocol_b_ap"], h["bench_protocol_b_auc"] = bench["ap"], bench["auc"]
        rows.append(["benchmark protocol B, product (bench-results/fraud.json)", bench["ap"], bench["auc"], "", ""])
    else:
        section.notes.append("No bench-results/fraud.json: run `make bench BENCH=fraud` for the benchmark's figures.")
    section.tables.append(Table("handbook evaluation payments: model scores as written in the decisions", ["", "AP", "AUC", "payments", "frauds"], rows))
    section.notes.append(
        "Handbook figures differ from the benchmark's by design: the run replays one neighbourhood of the "
        "handbook's map (10% of customers, most of the payments at their terminals; a seeded 2% in quick "
        "mode), so one evaluation week holds ~70 frauds and its AP has a 95% interval of about +-0.11; the "
        "features' warm-up is 35 days (in quick mode the 30-day customer windows are not full); the model "
        f"is the one fraud_trainer trained on the neighbourhood's export ({truth.get('export_key', '?')}), "
        "not the benchmark's; and the benchmark averages 4 test weeks over every customer. Offline with "
        "the product's features, this neighbourhood's week reaches only AP ~0.59 / AUC ~0.78 even with "
        "complete features and a model trained on every customer (other neighbourhoods: AP 0.55-0.86)."
    )
    if not scored:
        section.notes.append(
            "No model score (live or shadow) is stored on the handbook's evaluation payments: fraud_trainer "
            "published no model in this run (see the functions section's quarantine), so rules alone decided."
        )
    if both:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        precision, recall, _ = precision_recall_curve(y, s)
        fig, ax = plt.subplots(figsize=(5, 4))
        ax.step(recall, precision, where="post", label=f"local run, AP {h['handbook_ap']}")
        ax.scatter([h["handbook_review_block_recall"] or 0.0], [h["handbook_review_block_precision"] or 0.0], color="red", zorder=3, label="review+block")
        ax.axhline(float(y.mean()), color="grey", linestyle=":", label="fraud share")
        if bench is not None:
            ax.plot([], [], " ", label=f"benchmark protocol B AP {bench['ap']}")
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_title("Fraud: handbook evaluation payments")
        ax.legend(loc="upper right", fontsize=8)
        path = ctx.plot_path("fraud_pr")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        section.plots.append(path)


def _fpr_table(title: str, key: str, groups: Iterable[tuple[str, list[dict[str, Any]]]]) -> Table:
    rows = []
    for name, ds in groups:
        flagged = sum(d.get("action") in FLAGGED for d in ds)
        rows.append([name, len(ds), flagged, _rate(flagged, len(ds))])
    return Table(title, [key, "legit decisions", "flagged", "FPR"], rows)


def _simulator(ctx: JobContext, decisions: list[dict[str, Any]], section: Section) -> None:
    truth = ctx.truth.get("simulator") or {}
    if "attacks" not in truth:
        return
    attacks: dict[str, dict[str, Any]] = truth["attacks"]
    traps: dict[str, dict[str, Any]] = truth.get("legit_traps") or {}
    context: dict[str, dict[str, Any]] = truth.get("event_context") or {}
    home: dict[str, str] = (truth.get("impressions") or {}).get("home_country") or {}
    # Simulator accounts are "acc-<n>" (handbook customers "c<n>", MovieLens members "ml-<n>").
    sim = [d for d in decisions if str(d.get("account_id", "")).startswith("acc-")]
    attack_d = [d for d in sim if d.get("event_id") in attacks]
    legit = [d for d in sim if d.get("event_id") not in attacks]
    h = section.headline
    events_by_type: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for d in attack_d:
        events_by_type[str(attacks[d["event_id"]].get("attack_type"))].append(d)
    truth_by_type: Counter[str] = Counter(str(a.get("attack_type")) for a in attacks.values())
    rows = []
    for kind in sorted(truth_by_type):
        ds = events_by_type.get(kind, [])
        hit = sum(d.get("action") in FLAGGED for d in ds)
        ids: dict[str, bool] = {}
        for d in ds:
            aid = str(attacks[d["event_id"]].get("attack_id", d["event_id"]))
            ids[aid] = ids.get(aid, False) or d.get("action") in FLAGGED
        rows.append([kind, truth_by_type[kind], len(ds), hit, _rate(hit, len(ds)), len(ids), sum(ids.values()), _rate(sum(ids.values()), len(ids))])
        h[f"sim_detection_{kind}"] = _rate(hit, len(ds))
    section.tables.append(
        Table(
            "simulator attacks: detection (flagged = challenge, review or block)",
            ["attack type", "attack events", "decided", "flagged", "event detection", "attacks decided", "attacks flagged", "attack detection"],
            rows,
        )
    )
    if not attacks:
        # attack rates are per 100,000 accounts a day: a small, short run may draw none
        section.notes.append(
            "The simulator injected no attack in this run (rates are per 100,000 accounts a day, so a few hundred "
            "accounts over a day draw about none): no detection rate, only false positives on legitimate traffic."
        )
    flagged_attacks = sum(d.get("action") in FLAGGED for d in attack_d)
    flagged_legit = sum(d.get("action") in FLAGGED for d in legit)
    h["sim_attack_decisions"] = len(attack_d)
    h["sim_detection_rate"] = _rate(flagged_attacks, len(attack_d))
    h["sim_legit_decisions"] = len(legit)
    h["sim_legit_flagged"] = flagged_legit
    h["sim_fpr"] = _rate(flagged_legit, len(legit))

    def grouped(key: Any) -> list[tuple[str, list[dict[str, Any]]]]:
        g: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for d in legit:
            g[key(d)].append(d)
        return sorted(g.items())

    if context:
        section.tables.append(_fpr_table("false positives on legitimate simulator events, by country (of the event)", "country",
                                         grouped(lambda d: str(context.get(d["event_id"], {}).get("country") or "?"))))
        section.tables.append(_fpr_table("false positives on legitimate simulator events, by device type", "device type",
                                         grouped(lambda d: str(context.get(d["event_id"], {}).get("device_type") or "?"))))
    else:
        section.tables.append(_fpr_table("false positives on legitimate simulator events, by country (account's home)", "country",
                                         grouped(lambda d: str(home.get(d["account_id"]) or "?"))))
        section.notes.append("No per-event context in the simulator truth: FPR by region uses the account's home country, and no split by device type.")
    trap_groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for d in legit:
        for kind in (traps.get(d["event_id"]) or {}).get("traps", []) or ["none"]:
            trap_groups[str(kind)].append(d)
    section.tables.append(_fpr_table("false positives on legitimate simulator events, by legit-trap kind", "trap", sorted(trap_groups.items())))


def _cases(cases: list[dict[str, Any]], section: Section) -> None:
    section.headline["cases_opened"] = len(cases)
    section.headline["case_accounts"] = len({c.get("account_id") for c in cases})
    by: Counter[tuple[str, str]] = Counter((str(c.get("trigger", {}).get("action")), str(c.get("recommended_action"))) for c in cases)
    section.tables.append(Table("cases opened, by decision and recommended action", ["decision", "recommended action", "cases"],
                                [[a, r, n] for (a, r), n in sorted(by.items())]))


def collect(ctx: JobContext) -> Section | None:
    names = {t.name for t in ctx.stack.system.tables}
    if "decisions" not in names:
        return None
    decisions = [d for d in ctx.stack.scan("decisions") if str(d.get("sk", "")).startswith("dec#")]
    cases = ctx.stack.scan("cases") if "cases" in names else []
    section = Section("Fraud: decisions, precision-recall, attack detection, cases")
    by_action = Counter(str(d.get("action")) for d in decisions)
    section.headline["decisions"] = len(decisions)
    for a in ACTIONS:
        section.headline[f"decisions_{a}"] = by_action[a]
    section.tables.append(_by_outcome(decisions))
    section.tables.append(_by_reason(decisions))
    _handbook(ctx, decisions, section)
    _simulator(ctx, decisions, section)
    _cases(cases, section)
    return section
