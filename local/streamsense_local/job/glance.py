"""The report's first section: the run's headline figures next to the benchmarks' (the last
`make bench` results on this machine), each with the rule that says whether they agree.

Only figures the sections already computed from what the functions wrote are used; this
module adds no measurement of its own, only the comparison. The run and the benchmarks differ
in data size and protocol by design (every section says how), so most rules compare what the
figure claims (the product ahead of its anchor, a goal met) rather than the decimals; where the
decimals are comparable the tolerance is the sampling error of the run's figure.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamsense_local.job.sections import Section, Table
from streamsense_local.job.sections.cache import BENCH_CAPACITY  # the job's sites' capacity share

HEADER = ["area", "figure", "this run", "benchmark", "agreement rule", "agree", "why they differ"]


def bench_dir() -> Path:
    """STREAMSENSE_BENCH_DIR, else the checkout's bench-results/ (where `make bench` writes)."""
    env = os.environ.get("STREAMSENSE_BENCH_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[3] / "bench-results"


def _get(d: Mapping[str, Any] | None, path: str) -> Any:
    cur: Any = d
    for part in path.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return None
        cur = cur[part]
    return cur


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


@dataclass(frozen=True)
class Row:
    area: str
    figure: str
    run: float | None
    bench: float | None
    rule: str
    agree: bool | None  # None: one side missing
    why: str

    def cells(self) -> list[Any]:
        verdict = "n/a" if self.agree is None else ("yes" if self.agree else "no")
        return [self.area, self.figure, self.run, self.bench, self.rule, verdict, self.why]


def _both(run: float | None, bench: float | None, test: Callable[[float, float], bool]) -> bool | None:
    return None if run is None or bench is None else bool(test(run, bench))


def ap_se(ap: float, positives: int) -> float:
    """Rough standard error of an average precision measured on ``positives`` frauds (the
    binomial error of a precision over that many positives)."""
    return math.sqrt(max(ap * (1 - ap), 0.0) / positives) if positives > 0 else math.inf


def auc_se(auc: float, positives: int, negatives: int) -> float:
    """Hanley & McNeil (1982) standard error of an AUC."""
    if positives <= 0 or negatives <= 0:
        return math.inf
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (positives - 1) * (q1 - auc * auc) + (negatives - 1) * (q2 - auc * auc)) / (positives * negatives)
    return math.sqrt(max(var, 0.0))


def _fraud(h: Mapping[str, Any], bench: Mapping[str, Any] | None) -> list[Row]:
    frauds = int(_num(h.get("handbook_eval_frauds")) or 0)
    payments = int(_num(h.get("handbook_eval_scored")) or 0)
    why = ("the run scores one evaluation window of a customer subset with the model fraud_trainer "
           "trained on the subset's export; the benchmark averages 4 test weeks of every customer")
    rows = []
    ap, b_ap, b_ap_sd = _num(h.get("handbook_ap")), _num(_get(bench, "protocol_b.product.ap")), _num(_get(bench, "protocol_b.product_std.ap")) or 0.0
    if ap is not None:
        tol = 2 * math.hypot(ap_se(ap, frauds), b_ap_sd)
        rows.append(Row("fraud", f"handbook payments: average precision ({frauds} frauds)", ap, b_ap,
                        f"|run - bench| <= 2 x sqrt(se_run^2 + sd_bench^2) = {tol:.3f}",
                        _both(ap, b_ap, lambda r, b: abs(r - b) <= tol), why))
    auc, b_auc, b_auc_sd = _num(h.get("handbook_auc")), _num(_get(bench, "protocol_b.product.auc")), _num(_get(bench, "protocol_b.product_std.auc")) or 0.0
    if auc is not None:
        tol = 2 * math.hypot(auc_se(auc, frauds, payments - frauds), b_auc_sd)
        rows.append(Row("fraud", "handbook payments: ROC AUC", auc, b_auc,
                        f"|run - bench| <= 2 x sqrt(se_run^2 + sd_bench^2) = {tol:.3f} (Hanley-McNeil)",
                        _both(auc, b_auc, lambda r, b: abs(r - b) <= tol), why))
    return rows


def _recs(h: Mapping[str, Any], bench: Mapping[str, Any] | None) -> list[Row]:
    run = _num(h.get("ndcg10"))
    anchors = [v for k, v in h.items() if k.startswith("anchor_") and k.endswith("_ndcg10") and _num(v) is not None]
    if run is None or not anchors:
        return []
    margin = run - max(float(a) for a in anchors)
    b_prod = _num(_get(bench, "protocol_b.product.ndcg10"))
    anchors_b = _get(bench, "protocol_b.anchors")
    b_anchors = [_num(_get(v, "ndcg10")) for v in anchors_b.values()] if isinstance(anchors_b, Mapping) else []
    b_margin = b_prod - max(a for a in b_anchors if a is not None) if b_prod is not None and any(a is not None for a in b_anchors) else None
    return [Row("recommendations", "NDCG@10: product - best anchor", round(margin, 4), None if b_margin is None else round(b_margin, 4),
                "same sign (the product ahead of every anchor, or not, in both)",
                _both(margin, b_margin, lambda r, b: (r > 0) == (b > 0)),
                "the run scores the few members active at the end of ml-latest-small against all their next plays "
                "(one time cutoff); protocol B holds out 10% of each of ~61 members' plays, 10 seeds")]


QOE_FAMILIES = (("wifi", "fcc-sd"), ("ethernet", "fcc-hd"), ("cellular_3g", "norway-3g"))


def _qoe(h: Mapping[str, Any], bench: Mapping[str, Any] | None) -> list[Row]:
    rows = []
    for network, family in QOE_FAMILIES:
        run = _num(h.get(f"{network}_qoe_mean_ratio"))
        if run is None:
            continue
        b = _num(_get(bench, f"{family}.goal.qoe_mean_ratio"))
        rows.append(Row("ABR", f"QoE mean, hinted player / robustMPC: {network} ({family} traces)", run, b,
                        "same side of 1.0 (the hint helps, or not, in both)",
                        _both(run, b, lambda r, b: (r >= 1.0) == (b >= 1.0)),
                        "the run's hints come from the simulator's minute-scale heartbeats over many segments; "
                        "the benchmark's from per-chunk telemetry of one segment per family"))
    return rows


def _cache(h: Mapping[str, Any], bench: Mapping[str, Any] | None, capacity: str) -> list[Row]:
    run = _num(h.get("hints_reactive_gap_closed"))
    if run is None:
        return []
    b = _num(_get(bench, f"sim.{capacity}.product.gap_closed"))
    return [Row("caching", f"share of the LRU-to-Belady gap closed (hints + reactive share, {capacity.replace('pct', ' %')} capacity)", run, b,
                "same side of the 0.5 goal",
                _both(run, b, lambda r, b: (r >= 0.5) == (b >= 0.5)),
                "the run's requests are the replayed plays of a day or two at a few sites; the benchmark's trace is "
                "the simulator's long-tailed CDN trace over many windows")]


def _content(h: Mapping[str, Any], bench: Mapping[str, Any] | None) -> list[Row]:
    run = _num(h.get("estimated_lift_snipw"))
    if run is None:
        return []
    b_prod, b_log = _num(_get(bench, "product.ctr_snipw")), _num(_get(bench, "logged.random.ctr"))
    b = None if b_prod is None or not b_log else round(b_prod / b_log, 4)
    return [Row("dynamic content", "learned policy / logging policy, play or click rate (SNIPW)", run, b,
                "same side of 1.0",
                _both(run, b, lambda r, b: (r > 1.0) == (b > 1.0)),
                "the run: the simulator's impressions, logging = the artwork served during the replay; "
                "the benchmark: Open Bandit's random log, clicks")]


BENCHMARKS = ("fraud", "recs", "abr", "cache", "bandit")


def _load(path: Path) -> Mapping[str, Any] | None:
    """A benchmark's last result; None when it was never run here or the file is unreadable."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, Mapping) else None


def section(sections: Sequence[Section], directory: Path | None = None) -> Section:
    directory = directory or bench_dir()
    bench = {n: _load(directory / f"{n}.json") for n in BENCHMARKS}

    def headline(prefix: str) -> Mapping[str, Any]:
        return next((s.headline for s in sections if s.title.startswith(prefix)), {})

    rows = [
        *_fraud(headline("Fraud"), bench["fraud"]),
        *_recs(headline("Recommendations"), bench["recs"]),
        *_qoe(headline("ABR QoE"), bench["abr"]),
        *_cache(headline("Predictive caching"), bench["cache"], BENCH_CAPACITY),
        *_content(headline("Dynamic content"), bench["bandit"]),
    ]
    out = Section("This run next to the benchmarks")
    out.headline = {
        "figures_compared": sum(r.agree is not None for r in rows),
        "agree": sum(r.agree is True for r in rows),
        "disagree": sum(r.agree is False for r in rows),
        "benchmarks_found": ", ".join(n for n in BENCHMARKS if bench[n] is not None) or "none",
    }
    out.tables.append(Table("headline figures: this run (from what the functions wrote) and the last `make bench` here", HEADER,
                            [r.cells() for r in rows]))
    out.notes.append(f"Benchmark results read from {directory}; a figure with no benchmark result says n/a "
                     "(run `make bench` or `make bench BENCH=name`). Each section below explains its figures.")
    return out
