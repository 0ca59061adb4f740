"""The report's comparison of the run's headline figures with the benchmarks' results."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from streamsense_local.job import glance
from streamsense_local.job.sections import Section


def _bench(tmp_path: Path) -> Path:
    (tmp_path / "fraud.json").write_text(json.dumps(
        {"protocol_b": {"product": {"ap": 0.71, "auc": 0.87}, "product_std": {"ap": 0.012, "auc": 0.016}}}))
    (tmp_path / "abr.json").write_text(json.dumps({"fcc-sd": {"goal": {"qoe_mean_ratio": 1.158}},
                                                   "fcc-hd": {"goal": {"qoe_mean_ratio": 1.067}}}))
    (tmp_path / "bandit.json").write_text(json.dumps({"product": {"ctr_snipw": 0.004}, "logged": {"random": {"ctr": 0.005}}}))
    (tmp_path / "recs.json").write_text(json.dumps({"protocol_b": {"product": {"ndcg10": 0.12}, "anchors": {
        "ease": {"ndcg10": 0.093}, "popularity": {"ndcg10": 0.046}}}}))
    (tmp_path / "cache.json").write_text(json.dumps({"sim": {"5pct": {"product": {"gap_closed": 0.64}}}}))
    return tmp_path


def test_standard_errors_match_their_formulas() -> None:
    assert glance.ap_se(0.64, 100) == pytest.approx(0.048)
    assert glance.ap_se(0.5, 0) == math.inf
    # Hanley & McNeil at AUC 0.9, 50 + 50: Q1 = 0.8182, Q2 = 0.8526,
    # var = (0.09 + 49 * 0.00818 + 49 * 0.04263) / 2500 = 0.0010319 -> SE 0.03212.
    assert glance.auc_se(0.9, 50, 50) == pytest.approx(0.03212, abs=1e-5)


def test_rows_rules_and_verdicts(tmp_path: Path) -> None:
    fraud = Section("Fraud: decisions", headline={"handbook_ap": 0.62, "handbook_auc": 0.70,
                                                   "handbook_eval_frauds": 100, "handbook_eval_scored": 10_100})
    cache = Section("Predictive caching: x", headline={"hints_reactive_gap_closed": 0.31})
    qoe = Section("ABR QoE by trace family", headline={"wifi_qoe_mean_ratio": 0.97, "ethernet_qoe_mean_ratio": 1.02})
    content = Section("Dynamic content", headline={"estimated_lift_snipw": 0.98})
    recs = Section("Recommendations: lists", headline={"ndcg10": 0.14, "anchor_ease_ndcg10": 0.04, "anchor_pop_ndcg10": 0.02})
    out = glance.section([fraud, qoe, content, recs, cache], _bench(tmp_path))
    rows = {r[1]: r for r in out.tables[0].rows}
    ap = rows["handbook payments: average precision (100 frauds)"]
    # tolerance 2 * hypot(sqrt(.62 * .38 / 100), .012) = 0.0999: 0.09 apart agrees.
    assert ap[2:4] == [0.62, 0.71] and ap[5] == "yes" and "0.100" in ap[4]
    auc = rows["handbook payments: ROC AUC"]
    assert auc[5] == "no"  # 0.17 apart, far outside the AUC's small error at 100 frauds
    assert rows["QoE mean, hinted player / robustMPC: wifi (fcc-sd traces)"][5] == "no"
    assert rows["QoE mean, hinted player / robustMPC: ethernet (fcc-hd traces)"][5] == "yes"
    lift = rows["learned policy / logging policy, play or click rate (SNIPW)"]
    assert lift[3] == 0.8 and lift[5] == "yes"  # neither beats its logging policy
    margin = rows["NDCG@10: product - best anchor"]
    assert margin[2] == 0.1 and margin[3] == 0.027 and margin[5] == "yes"
    gap = rows["share of the LRU-to-Belady gap closed (hints + reactive share, 5 % capacity)"]
    assert gap[2:4] == [0.31, 0.64] and gap[5] == "no"  # the run misses the 0.5 goal, the bench meets it
    assert out.headline == {"figures_compared": 7, "agree": 4, "disagree": 3,
                            "benchmarks_found": "fraud, recs, abr, cache, bandit"}


def test_no_benchmarks_and_no_sections(tmp_path: Path) -> None:
    (tmp_path / "fraud.json").write_text("{not json")  # a broken result counts as absent
    out = glance.section([], tmp_path)
    assert out.tables[0].rows == []
    assert out.headline["benchmarks_found"] == "none"
