"""fraud_scorer, fraud_trainer and investigation against the local stack (moto server, Lambda's
Kinesis / S3-async / SQS semantics): exact decisions for known events, idempotent replay (tables
and queues compared), the corrupt-model fallback, a label export -> candidate model -> shadow
scoring -> promotion, and a review decision -> case with linked accounts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from streamsense_local.samples import Sample, run_sample
from streamsense_local.stack import LocalStack

from infra.system import SYSTEM, System

EVENTS = Path(__file__).resolve().parents[2] / "events"
FRAUD_SYSTEM = System(
    name="fraud-it",
    streams=tuple(s for s in SYSTEM.streams if s.name in {"activity", "playback"}),
    tables=tuple(t for t in SYSTEM.tables if t.name in {"fraud_state", "decisions", "cases"}),
    buckets=tuple(b for b in SYSTEM.buckets if b.name in {"exports", "models"}),
    queues=tuple(q for q in SYSTEM.queues if q.name in {"quarantine", "failures", "investigations", "investigations_dlq"}),
    functions=(SYSTEM.function("fraud_scorer"), SYSTEM.function("fraud_trainer"), SYSTEM.function("investigation")),
)

pytestmark = pytest.mark.xdist_group("fraud_stack")


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack.start(FRAUD_SYSTEM) as s:
        yield s


@pytest.fixture
def fresh(stack: LocalStack) -> LocalStack:
    stack.reset()
    stack.set_duplicate_s3_notifications(False)
    stack.processes["fraud_scorer"].stop()  # model cache and writer slots start empty
    return stack


def _sample(function: str, name: str) -> Sample:
    return Sample(function, EVENTS / function / f"{name}.json")


def _decisions(stack: LocalStack) -> dict[str, dict[str, Any]]:
    return {i["event_id"]: i for i in stack.scan("decisions")}


def _state(stack: LocalStack) -> dict[tuple[str, str], Any]:
    return {(i["pk"], i["sk"]): i for i in stack.scan("fraud_state")}


def test_impossible_travel_then_email_change_is_challenged(fresh: LocalStack) -> None:
    run = run_sample(fresh, _sample("fraud_scorer", "impossible-travel-then-email-change"))
    assert run.invocation.ok and run.invocation.response == {"batchItemFailures": []}
    d = _decisions(fresh)
    assert {k: v["action"] for k, v in d.items()} == {"li-200": "allow", "li-201": "challenge", "ac-201": "challenge"}
    assert [r["rule"] for r in d["li-201"]["rules"]] == ["impossible_travel"]
    assert [r["rule"] for r in d["ac-201"]["rules"]] == ["sensitive_change_new_device_country"]
    assert d["li-201"]["pk"] == "acct#acc-200" and "model_version" not in d["li-201"]  # not a payment: no model
    assert run.invocation.metrics["Decisions_challenge"] == 2
    assert "investigations" not in run.changes.queues  # challenges are not investigated
    # no raw identifiers anywhere in the stored state or decisions
    dump = json.dumps([*fresh.scan("decisions"), *[{k: v for k, v in i.items() if k != "log"} for i in fresh.scan("fraud_state")]], default=str)
    for raw in ("bo@example.com", "85.243.10.7", "126.72.4.9", "d-bo-laptop", "d-x-1"):
        assert raw not in dump


def test_card_testing_goes_to_review_and_the_investigation_queue(fresh: LocalStack) -> None:
    run = run_sample(fresh, _sample("fraud_scorer", "card-testing"))
    d = _decisions(fresh)
    assert [d[f"pay-30{i}"]["action"] for i in range(4)] == ["allow", "allow", "review", "review"]
    assert d["pay-302"]["rules"][0]["detail"] == "3 small declines on the card in 1 h"
    queued = [json.loads(m) if isinstance(m, str) else m for m in run.changes.queues["investigations"]]
    assert sorted(m["event_id"] for m in queued) == ["pay-302", "pay-303"]
    for raw in ("5500000000000004",):
        assert raw not in json.dumps(queued) and raw not in json.dumps(list(d.values()), default=str)


def test_concurrent_streams_from_three_continents(fresh: LocalStack) -> None:
    run_sample(fresh, _sample("fraud_scorer", "concurrent-streams"))
    d = _decisions(fresh)
    # each start minutes after one on another continent is impossible travel too; the fifth
    # fires both rules, and two rules ask for review
    assert [d[f"ps-40{i}"]["action"] for i in range(5)] == ["allow", "challenge", "challenge", "challenge", "review"]
    assert [r["rule"] for r in d["ps-404"]["rules"]] == ["impossible_travel", "concurrent_streams"]
    assert d["ps-404"]["rules"][1]["detail"].startswith("5 streams on a 4-stream plan")


def test_replaying_a_batch_leaves_tables_and_queues_as_one_delivery(fresh: LocalStack) -> None:
    sample = _sample("fraud_scorer", "card-testing")
    first = run_sample(fresh, sample)
    state, decisions = _state(fresh), _decisions(fresh)
    again = run_sample(fresh, sample)
    assert again.invocation.ok
    assert _state(fresh) == state
    assert _decisions(fresh) == decisions
    assert len(first.changes.queues["investigations"]) == 2
    assert "investigations" not in again.changes.queues  # the same decisions are not queued twice
    assert again.invocation.metrics.get("StateRowsAdded", 0) == 0


def test_a_corrupt_model_falls_back_to_rules_with_a_metric(fresh: LocalStack) -> None:
    run = run_sample(fresh, _sample("fraud_scorer", "corrupt-model"))
    assert run.invocation.ok and run.invocation.response == {"batchItemFailures": []}
    assert run.invocation.metrics["ModelFallback"] == 1
    d = _decisions(fresh)
    assert d["pay-100"]["action"] == "allow" and d["pay-100"]["fallback"] is True
    assert "score" not in d["pay-100"]
    assert "sha256 mismatch" in run.invocation.logs


def test_label_export_trains_a_candidate_scored_in_shadow_then_promoted(fresh: LocalStack) -> None:
    from streamsense.fraud.registry import CANDIDATE_KEY, LIVE_KEY

    run = run_sample(fresh, _sample("fraud_trainer", "label-export"))
    assert run.invocation.ok and run.invocation.metrics["ModelVersionsPublished"] == 1
    objects = sorted(fresh.objects("models"))
    (manifest_key,) = [k for k in objects if k.endswith("manifest.json")]
    manifest = json.loads(fresh.get_object("models", manifest_key))
    assert manifest["data_window"] == {"start": "2024-10-15", "end": "2024-10-21"}
    m = manifest["metrics"]
    assert (m["train_rows"], m["train_frauds"], m["holdout_rows"], m["holdout_frauds"]) == (853, 122, 821, 110)
    assert m["holdout_auc"] == pytest.approx(0.964333, abs=1e-6)
    assert set(manifest["thresholds"]) == {"challenge", "review", "block"}
    assert json.loads(fresh.get_object("models", CANDIDATE_KEY))["version"] == manifest["version"]
    assert objects == sorted([manifest_key, manifest_key.replace("manifest.json", "model.npz"), CANDIDATE_KEY])

    # a duplicated S3 notification of one upload publishes one version
    fresh.set_duplicate_s3_notifications(True)
    body = (EVENTS / "fraud_trainer/label-export.setup/buckets/exports/fraud-labels/2024-11 export.csv").read_bytes()
    fresh.put_object("exports", "fraud-labels/2024-12 export.csv", body)
    fresh.drain()
    fresh.set_duplicate_s3_notifications(False)
    calls = [h for h in fresh.history if h.function == "fraud_trainer"][-2:]
    assert all(c.ok for c in calls)
    assert len(calls) == 2 and calls[0].ids == calls[1].ids
    assert len([k for k in fresh.objects("models") if k.endswith("manifest.json")]) == 2

    # no live model yet: rules decide; the candidate is only scored in shadow
    run_sample(fresh, _sample("fraud_scorer", "everyday-activity"))
    pay = _decisions(fresh)["pay-100"]
    candidate = json.loads(fresh.get_object("models", CANDIDATE_KEY))["version"]
    assert candidate != manifest["version"]  # the second upload's version
    assert pay["fallback"] is True and "score" not in pay and pay["shadow"]["version"] == candidate

    # promote the first version: it decides, with a score and its version; the second one is
    # the candidate, scored in shadow
    fresh.put_object("models", LIVE_KEY, json.dumps({"version": manifest["version"]}).encode())
    fresh.processes["fraud_scorer"].stop()
    run_sample(fresh, _sample("fraud_scorer", "card-testing"))
    d = _decisions(fresh)
    assert d["pay-300"]["model_version"] == manifest["version"]
    assert 0.0 <= d["pay-300"]["score"] <= 1.0
    shadow = d["pay-300"]["shadow"]
    assert shadow["version"] != manifest["version"] and shadow["score"] == d["pay-300"]["score"]  # same data, same model


def test_review_decision_opens_a_case_with_linked_accounts(fresh: LocalStack) -> None:
    run_sample(fresh, _sample("fraud_scorer", "impossible-travel-then-email-change"))
    # another account logs in from the same /24 in Tokyo
    other = json.loads((EVENTS / "fraud_scorer/impossible-travel-then-email-change.json").read_text())
    import base64

    e = json.loads(base64.b64decode(other["Records"][1]["kinesis"]["data"]))
    e = {**e, "event_id": "li-900", "account_id": "acc-900"}
    fresh.put_events([e], stream="activity")
    fresh.drain()
    run = run_sample(fresh, _sample("investigation", "review-decision"))
    assert run.invocation.ok and run.invocation.response == {"batchItemFailures": []}
    (case,) = fresh.scan("cases")
    assert case["pk"] == "case#acc-200" and case["recommended_action"] == "manual_review"
    assert case["linked_accounts"] == [{"account_id": "acc-900", "via": ["asn", "ip24"]}]
    assert [t["type"] for t in case["timeline"]] == ["account_change", "login", "login"]
    assert case["timeline"][1]["country"] == "JP"
    # the same message again rewrites the same case
    run_sample(fresh, _sample("investigation", "review-decision"))
    assert len(fresh.scan("cases")) == 1
