"""The scorer's domain call with in-memory adapters: decisions with reasons and versions, the
shadow candidate, idempotent replay (tables and queue compared), and cases from decisions."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
from streamsense.events import validate_event
from streamsense.fraud import history as H
from streamsense.fraud.decisions import Decider
from streamsense.fraud.features import PAYMENT_FEATURES, StreamingFeatures
from streamsense.fraud.investigation import open_cases, parse_message, verdict_label
from streamsense.fraud.model import FraudModel, fit_trees
from streamsense.fraud.scoring import score_batch
from streamsense.fraud.state import FraudStateStore
from streamsense.privacy import Pseudonymizer
from streamsense.storage import MemoryQueue, MemoryTable

PSEUDO = Pseudonymizer(b"s" * 32)
T = "2024-12-03T12:0{m}:00Z"


def _model(version: str, thresholds: dict[str, float]) -> FraudModel:
    """A model on the payment features where a large amount is what matters."""
    rng = np.random.default_rng(0)
    X = np.zeros((2000, len(PAYMENT_FEATURES)))
    amount = rng.gamma(2, 30, 2000)
    X[:, PAYMENT_FEATURES.index("TX_AMOUNT")] = amount
    y = (amount > 150).astype(int)
    trees = fit_trees(X, y, {"max_iter": 60, "learning_rate": 0.3, "min_samples_leaf": 20})
    return FraudModel(trees, {"features": list(PAYMENT_FEATURES), "version": version, "thresholds": thresholds})


def _payment(i: int, amount: float, account: str = "a1", card: str = "4111111111111111") -> object:
    return validate_event({
        "type": "payment", "version": 1, "event_id": f"p{i}", "occurred_at": T.format(m=i), "account_id": account,
        "payload": {"card_number": card, "merchant_id": "m1", "amount": amount},
    })


def _setup(candidate: bool = False) -> tuple[StreamingFeatures, Decider, MemoryTable, MemoryTable, MemoryQueue]:
    state = MemoryTable("fraud_state")
    sf = StreamingFeatures(FraudStateStore(state, slot="activity/shard-0"), PSEUDO)
    live = _model("v1", {"challenge": 0.3, "review": 0.6, "block": 0.9})
    cand = _model("v2", {"challenge": 0.5, "review": 0.9, "block": 1.01}) if candidate else None
    return sf, Decider(live, cand), state, MemoryTable("decisions"), MemoryQueue()


def test_payments_are_decided_by_the_model_with_reasons_and_version() -> None:
    sf, decider, _, decisions, queue = _setup()
    out = score_batch([_payment(1, 20.0), _payment(2, 400.0)], sf, decider, decisions, queue)
    items = {i["event_id"]: i for i in decisions.items.values()}
    assert (items["p1"]["action"], items["p2"]["action"]) == ("allow", "block")
    assert items["p2"]["model_version"] == "v1" and items["p2"]["score"] > 0.9
    assert items["p2"]["top_features"][0][0] == "TX_AMOUNT"
    assert out.queued == 1 and json.loads(queue.messages[0])["event_id"] == "p2"
    assert "4111111111111111" not in json.dumps(list(decisions.items.values()), default=str)


def test_the_candidate_is_scored_in_shadow_only() -> None:
    sf, decider, _, decisions, queue = _setup(candidate=True)
    out = score_batch([_payment(1, 400.0)], sf, decider, decisions, queue)
    (item,) = decisions.items.values()
    assert item["model_version"] == "v1" and item["shadow"]["version"] == "v2"
    assert item["shadow"]["score"] == item["score"]  # same training data and seed
    assert (item["action"], item["shadow"]["action"]) == ("block", "review")  # the candidate's own thresholds
    assert out.shadow_disagreements == 1 and out.queued == 1


def test_replay_leaves_tables_and_queue_as_one_delivery() -> None:
    sf, decider, state, decisions, queue = _setup()
    batch = [_payment(i, a) for i, a in enumerate((20.0, 400.0, 35.0, 900.0))]
    score_batch(batch, sf, decider, decisions, queue)
    snapshot = (dict(state.items), dict(decisions.items), list(queue.messages))
    again = score_batch(batch, sf, decider, decisions, queue)
    assert (dict(state.items), dict(decisions.items), list(queue.messages)) == snapshot
    assert again.queued == 0 and again.new_rows == 0 and again.state_items_written == 0


def test_a_case_links_accounts_through_a_shared_card() -> None:
    sf, decider, state, decisions, queue = _setup()
    score_batch([_payment(1, 30.0, "a1"), _payment(2, 25.0, "a2"), _payment(3, 800.0, "a1")], sf, decider, decisions, queue)
    (message,) = queue.messages
    cases = MemoryTable("cases")
    (case,) = open_cases([parse_message(message.encode())], FraudStateStore(state, slot=None), decisions, cases)
    assert case["pk"] == "case#a1" and case["recommended_action"] == "suspend_account"
    assert case["linked_accounts"] == [{"account_id": "a2", "via": ["card", "merch"]}]
    assert [t.get("amount") for t in case["timeline"]] == [800.0, 30.0]
    label = verdict_label(case, "fraud", datetime(2024, 12, 5, tzinfo=UTC))
    assert label.payload.is_fraud and label.payload.target_event_id == "p3" and label.payload.source == "analyst"
    # the verdict flows back: the label updates the account's known-fraud feature
    later = validate_event({
        "type": "payment", "version": 1, "event_id": "p9", "occurred_at": "2024-12-06T00:00:00Z", "account_id": "a1",
        "payload": {"card_number": "4111111111111111", "merchant_id": "m1", "amount": 10.0},
    })
    out = sf.process([label, later])
    assert out.payment_matrix[0, PAYMENT_FEATURES.index("CUSTOMER_ID_KNOWN_FRAUD_30DAY")] == 1.0


def test_history_export_parses_and_rejects() -> None:
    h = H.read_csv(b"TRANSACTION_ID,TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT,TX_FRAUD\n2,2018-04-01 00:00:05,1,7,10.5,1\n1,2018-04-01 00:00:05,1,7,3,0\n")
    assert h.transaction_id.tolist() == [1, 2]  # arrival order: time, then id
    assert h.label_ts_ms[1] - h.ts_ms[1] == 7 * 86_400_000 and h.label_ts_ms[0] == np.iinfo(np.int64).max
    import pytest

    with pytest.raises(H.BadHistory, match="missing columns"):
        H.read_csv(b"TRANSACTION_ID,TX_DATETIME\n1,2018-04-01 00:00:05\n")
    with pytest.raises(H.BadHistory, match="line 2"):
        H.read_csv(b"TRANSACTION_ID,TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT,TX_FRAUD\n1,yesterday,1,7,3,0\n")
