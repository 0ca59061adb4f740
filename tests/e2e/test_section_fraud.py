"""The report's fraud section and the account query on a tiny local-stack run: a label export
trains a model (fraud_trainer) that is promoted live, then hand-made handbook-style payments and
simulator-style activity go through fraud_scorer (Kinesis -> Lambda -> DynamoDB), review/block
decisions through the investigations queue to investigation (cases), and collect() joins what
they wrote with hand-made ground truth."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from streamsense_local.job.queries import fraud as queries
from streamsense_local.job.sections import JobContext
from streamsense_local.job.sections import fraud as section
from streamsense_local.stack import LocalStack

from infra.system import SYSTEM, System

EVENTS = Path(__file__).resolve().parents[2] / "events"
FRAUD_SYSTEM = System(
    name="fraud-e2e",
    streams=tuple(s for s in SYSTEM.streams if s.name in {"activity", "playback"}),
    tables=tuple(t for t in SYSTEM.tables if t.name in {"fraud_state", "decisions", "cases"}),
    buckets=tuple(b for b in SYSTEM.buckets if b.name in {"exports", "models"}),
    queues=tuple(q for q in SYSTEM.queues if q.name in {"quarantine", "failures", "investigations", "investigations_dlq"}),
    functions=(SYSTEM.function("fraud_scorer"), SYSTEM.function("fraud_trainer"), SYSTEM.function("investigation")),
)
pytestmark = pytest.mark.xdist_group("fraud_section_stack")
T0 = datetime(2024, 12, 3, 12, 0, tzinfo=UTC)
PARIS = {"ip": "90.12.33.5", "asn": 3215, "country": "FR", "city": "Paris", "lat": 48.86, "lon": 2.35}
LISBON = {"ip": "85.243.10.7", "asn": 3243, "country": "PT", "city": "Lisbon", "lat": 38.72, "lon": -9.14}
TOKYO = {"ip": "126.72.4.9", "asn": 17676, "country": "JP", "city": "Tokyo", "lat": 35.68, "lon": 139.69}


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def _payment(eid: str, account: str, at: datetime, amount: float, card: str, merchant: str, **extra: Any) -> dict[str, Any]:
    return {"type": "payment", "version": 1, "event_id": eid, "occurred_at": _iso(at), "account_id": account,
            "payload": {"card_number": card, "merchant_id": merchant, "amount": amount, **extra}}


def _login(eid: str, account: str, at: datetime, device: str, network: dict[str, Any]) -> dict[str, Any]:
    return {"type": "login", "version": 1, "event_id": eid, "occurred_at": _iso(at), "account_id": account,
            "payload": {"email": f"{account}@example.com", "success": True, "device": {"device_id": device, "device_type": "web"}, "network": network}}


def events() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    # handbook-style payments (customers "c<n>", terminals "t<n>"): 3 customers x 4 payments
    for c in range(3):
        for k in range(4):
            amount = [12.5, 40.0, 75.0, 220.0][k] * (1 + c)
            out.append(_payment(f"tx-{c * 10 + k:09d}", f"c{c}", T0 - timedelta(hours=10 - 2 * k - c), amount, f"40000000000000{c:02d}", f"t{k}"))
    # simulator-style traffic: a card-testing burst (acc-0000001), an impossible-travel login
    # (acc-0000002 Lisbon -> Tokyo in 40 min) and an ordinary account (acc-0000003)
    for i in range(4):
        out.append(_payment(f"sim-pay-{i}", "acc-0000001", T0 + timedelta(seconds=20 * i), 1.0, "5500000000000004", "m-streamsense",
                            status="declined", network=PARIS))
    out.append(_login("sim-li-0", "acc-0000002", T0, "d-2", LISBON))
    out.append(_login("sim-li-1", "acc-0000002", T0 + timedelta(minutes=40), "d-x", TOKYO))
    out.append(_login("sim-li-2", "acc-0000003", T0, "d-3", PARIS))
    out.append(_login("sim-li-3", "acc-0000003", T0 + timedelta(hours=2), "d-3", PARIS))
    return sorted(out, key=lambda e: e["occurred_at"])


SHADOW = [_payment(f"tx-{90 + k:09d}", "c9", T0 - timedelta(days=1, hours=4 - k), [9.0, 30.0, 150.0][k], "4000000000000099", "t9") for k in range(3)]
TRUTH: dict[str, Any] = {
    "handbook": {
        "eval_event_ids": {f"tx-{c * 10 + k:09d}" for c in range(3) for k in range(4)} | {"tx-999999999"},  # one never replayed
        "fraud_event_ids": {"tx-000000003", "tx-000000023"},
    },
    "simulator": {
        "attacks": {
            **{f"sim-pay-{i}": {"attack_type": "card_testing", "attack_id": "A1"} for i in range(4)},
            "sim-li-1": {"attack_type": "impossible_travel", "attack_id": "A2"},
        },
        "legit_traps": {"sim-li-3": {"traps": ["traveller"]}},
        "event_context": {
            "sim-li-0": {"country": "PT", "device_type": "web"},
            "sim-li-2": {"country": "FR", "device_type": "tv"},
            "sim-li-3": {"country": "FR", "device_type": "tv"},
        },
    },
}


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    from streamsense.fraud.registry import CANDIDATE_KEY, LIVE_KEY

    with LocalStack.start(FRAUD_SYSTEM) as st:
        export = EVENTS / "fraud_trainer/label-export.setup/buckets/exports/fraud-labels/2024-11 export.csv"
        st.put_object("exports", "fraud-labels/2024-11 export.csv", export.read_bytes())
        st.drain()
        version = json.loads(st.get_object("models", CANDIDATE_KEY))["version"]
        # before promotion: the candidate only scores in shadow, rules decide (customer c9)
        assert st.put_events(SHADOW) == {"activity": len(SHADOW)}
        st.drain()
        st.put_object("models", LIVE_KEY, json.dumps({"version": version}).encode())
        st.processes["fraud_scorer"].stop()  # the model cache reloads with the live model
        assert st.put_events(events()) == {"activity": len(events())}
        st.drain()
        assert st.receive_all("quarantine") == [] and st.receive_all("failures") == []
        yield st


def test_collect(stack: LocalStack, tmp_path: Path) -> None:
    ctx = JobContext(stack=stack, out=tmp_path, truth=TRUTH, data_dir=None, quick=True)
    result = section.collect(ctx)
    assert result is not None
    h = result.headline
    decided = {d["event_id"]: d for d in stack.scan("decisions")}
    assert len(decided) == 23
    shadowed = [decided[f"tx-{90 + k:09d}"] for k in range(3)]
    assert [(d["action"], "score" in d, d["shadow"]["version"]) for d in shadowed] == [("allow", False, decided["tx-000000000"]["model_version"])] * 3
    shadow_truth = {"handbook": {"eval_event_ids": {f"tx-{90 + k:09d}" for k in range(3)}, "fraud_event_ids": {"tx-000000092"}}}
    hs = section.collect(JobContext(stack=stack, out=tmp_path / "shadow", truth=shadow_truth, data_dir=None, quick=True))
    assert hs is not None
    assert [(d["shadow"]["score"], d["shadow"]["action"]) for d in shadowed] == [(0.45, "review"), (0.77, "block"), (0.89, "block")]
    # the fraud has the top shadow score: AP = AUC = 1; all 3 would be reviewed/blocked: precision 1/3
    assert {k: v for k, v in hs.headline.items() if k.startswith("handbook")} == {
        "handbook_eval_payments": 3, "handbook_eval_decided": 3, "handbook_eval_scored": 3, "handbook_score_source": "shadow",
        "handbook_eval_frauds": 1, "handbook_review_block": 3, "handbook_review_block_precision": 0.3333,
        "handbook_review_block_recall": 1.0, "handbook_ap": 1.0, "handbook_auc": 1.0}
    assert any(n.startswith("No live fraud model decided") and shadowed[0]["shadow"]["version"] in n for n in hs.notes)
    bench = json.loads(section.BENCH_RESULT.read_text())["protocol_b"]["product"] if section.BENCH_RESULT.is_file() else None
    # The model trained on the sample export is live and scores every payment high on this
    # traffic (its export is unlike it): payments are reviewed or blocked by score alone, the
    # card-testing ones blocked (model review band + rule); the logins have no model score.
    actions = {k: v["action"] for k, v in sorted(decided.items())}
    assert actions == {
        **{f"tx-{90 + k:09d}": "allow" for k in range(3)},
        "sim-li-0": "allow", "sim-li-1": "challenge", "sim-li-2": "allow", "sim-li-3": "allow",
        "sim-pay-0": "review", "sim-pay-1": "review", "sim-pay-2": "block", "sim-pay-3": "block",
        **{f"tx-{c * 10:09d}": "review" for c in range(3)},
        **{f"tx-{c * 10 + k:09d}": "block" for c in range(3) for k in (1, 2, 3)},
    }
    scores = {k: float(v["score"]) for k, v in decided.items() if k.startswith("tx-") and "score" in v}
    assert {k: scores[k] for k in ("tx-000000003", "tx-000000023", "tx-000000013", "tx-000000022")} == {
        "tx-000000003": 0.93, "tx-000000023": 0.95, "tx-000000013": 0.95, "tx-000000022": 0.93}
    assert max(v for k, v in scores.items() if k not in {"tx-000000003", "tx-000000023", "tx-000000013", "tx-000000022"}) < 0.93
    # frauds tx-3 (0.93) and tx-23 (0.95), each tied with one legit payment and above the other 8:
    # AP = 0.5 x 0.5 (top 2: 1 of 2 is fraud) + 0.5 x 0.5 (top 4: 2 of 4) = 0.5;
    # AUC = (9.5 + 8.5) / 20 = 0.9; all 12 reviewed or blocked: precision 2/12, recall 1.
    assert h == {
        "decisions": 23, "decisions_allow": 6, "decisions_challenge": 1, "decisions_review": 5, "decisions_block": 11,
        "handbook_eval_payments": 13, "handbook_eval_decided": 12, "handbook_eval_scored": 12, "handbook_eval_frauds": 2, "handbook_score_source": "live",
        "handbook_review_block": 12, "handbook_review_block_precision": 0.1667, "handbook_review_block_recall": 1.0,
        "handbook_ap": 0.5, "handbook_auc": 0.9,
        **({"bench_protocol_b_ap": round(bench["ap"], 4), "bench_protocol_b_auc": round(bench["auc"], 4)} if bench else {}),
        "sim_detection_card_testing": 1.0, "sim_detection_impossible_travel": 1.0,
        "sim_attack_decisions": 5, "sim_detection_rate": 1.0, "sim_legit_decisions": 3, "sim_legit_flagged": 0, "sim_fpr": 0.0,
        "cases_opened": 16, "case_accounts": 4,
    }
    tables = {t.title: t for t in result.tables}
    attacks = tables["simulator attacks: detection (flagged = challenge, review or block)"]
    assert attacks.rows == [["card_testing", 4, 4, 4, 1.0, 1, 1, 1.0], ["impossible_travel", 1, 1, 1, 1.0, 1, 1, 1.0]]
    assert tables["false positives on legitimate simulator events, by country (of the event)"].rows == [["FR", 2, 0, 0.0], ["PT", 1, 0, 0.0]]
    assert tables["false positives on legitimate simulator events, by device type"].rows == [["tv", 2, 0, 0.0], ["web", 1, 0, 0.0]]
    assert tables["false positives on legitimate simulator events, by legit-trap kind"].rows == [["none", 2, 0, 0.0], ["traveller", 1, 0, 0.0]]
    assert tables["decisions by reason (a decision counts once per rule that fired)"].rows == [
        ["card_testing", 0, 0, 0, 2, 2], ["impossible_travel", 0, 1, 0, 0, 1], ["model score", 0, 0, 5, 9, 14]]
    assert tables["decisions by event type and outcome"].rows == [["login", 3, 1, 0, 0, 4], ["payment", 3, 0, 5, 11, 19], ["all", 6, 1, 5, 11, 23]]
    assert tables["cases opened, by decision and recommended action"].rows == [
        ["block", "suspend_account", 2], ["block", "suspend_account_and_linked", 9], ["review", "manual_review", 5]]
    assert any("one neighbourhood of the handbook's map (10% of customers" in n and "a seeded 2% in quick mode" in n for n in result.notes)
    assert len(result.plots) == 1 and result.plots[0].stat().st_size > 5_000


def test_account_query(stack: LocalStack) -> None:
    from streamsense.fraud.registry import LIVE_KEY

    live = json.loads(stack.get_object("models", LIVE_KEY))["version"]
    out = queries.account(stack, " acc-0000001 ")
    assert (out["account_id"], out["found"], out["decisions_by_action"]) == ("acc-0000001", True, {"block": 2, "review": 2})
    assert [(d["at"], d["event_id"], d["action"], d["score"]) for d in out["decisions"]] == [
        ("2024-12-03T12:00:00Z", "sim-pay-0", "review", 0.45), ("2024-12-03T12:00:20Z", "sim-pay-1", "review", 0.54),
        ("2024-12-03T12:00:40Z", "sim-pay-2", "block", 0.55), ("2024-12-03T12:01:00Z", "sim-pay-3", "block", 0.54)]
    assert {d["model_version"] for d in out["decisions"]} == {live}
    assert [d["rules"] for d in out["decisions"]] == [[], [], [
        {"rule": "card_testing", "action": "review", "detail": "3 small declines on the card in 1 h"}], [
        {"rule": "card_testing", "action": "review", "detail": "4 small declines on the card in 1 h"}]]
    assert out["decisions"][2]["top_features"][0] == ["TERMINAL_ID_NB_TX_7DAY_WINDOW", 0.3223]
    assert [(c["opened_at"], c["trigger"]["event_id"], c["recommended_action"], c["why"]) for c in out["cases"]] == [
        ("2024-12-03T12:00:00Z", "sim-pay-0", "manual_review", "model score in the review band"),
        ("2024-12-03T12:00:20Z", "sim-pay-1", "manual_review", "model score in the review band"),
        ("2024-12-03T12:00:40Z", "sim-pay-2", "suspend_account", "model score 0.55 over the block threshold"),
        ("2024-12-03T12:01:00Z", "sim-pay-3", "suspend_account", "model score 0.54 over the block threshold")]
    # the ordinary account shares the Paris /24 and ASN; it was never flagged
    assert {json.dumps(c["linked_accounts"]) for c in out["cases"]} == {json.dumps([{"account_id": "acc-0000003", "via": ["asn", "ip24"]}])}
    assert {c["status"] for c in out["cases"]} == {"open"}
    handbook = queries.account(stack, "c0")
    assert [(d["event_id"], d["action"]) for d in handbook["decisions"]] == [
        ("tx-000000000", "review"), ("tx-000000001", "block"), ("tx-000000002", "block"), ("tx-000000003", "block")]
    assert len(handbook["cases"]) == 4
    assert queries.account(stack, "acc-nobody") == {"account_id": "acc-nobody", "found": False, "decisions_by_action": {}, "decisions": [], "cases": []}
