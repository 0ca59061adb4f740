"""Automated investigation: a review/block decision becomes a case with the account's timeline,
the accounts linked to it through shared devices, IPs /24, cards and merchants, the reasons
(rules fired, top model features), and a recommended action. Analyst verdicts become label
events that flow back into the features and the next training run.

Cases table: pk = ``case#<account>``, sk = ``<occurred_at>#<event_id>`` of the decision that
opened it; the same decision delivered twice rewrites the same case (idempotent).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np

from streamsense.events import BadEvent, Label, validate_event
from streamsense.fraud.state import (
    ACCOUNT_CHANGE,
    FAILED,
    LABEL,
    LOGIN,
    PAYMENT,
    PLAYBACK_START,
    SIGNUP,
    FraudStateStore,
    country_str,
)
from streamsense.storage import Item, Table

CASE_TTL_S = 400 * 86_400
TIMELINE_MAX = 50
_KIND_NAMES = {PAYMENT: "payment", LOGIN: "login", SIGNUP: "signup", ACCOUNT_CHANGE: "account_change", PLAYBACK_START: "playback_start"}
REQUIRED = ("decision_id", "event_id", "event_type", "account_id", "occurred_at", "action")


@dataclass(frozen=True)
class DecisionMessage:
    body: dict[str, Any]

    @property
    def account_id(self) -> str:
        return str(self.body["account_id"])


def parse_message(data: bytes) -> DecisionMessage:
    """An investigations-queue message, or BadEvent (quarantined by the pipeline)."""
    try:
        body = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadEvent("malformed_json", str(exc)[:200]) from None
    if not isinstance(body, dict):
        raise BadEvent("not_an_object", type(body).__name__)
    missing = [k for k in REQUIRED if k not in body]
    if missing:
        raise BadEvent("invalid_fields", f"missing {', '.join(missing)}")
    if body["action"] not in ("review", "block"):
        raise BadEvent("invalid_fields", f"action {body['action']!r} opens no case")
    return DecisionMessage(body)


def recommend(action: str, rules: Sequence[dict[str, Any]], linked_flagged: int, score: float | None) -> tuple[str, str]:
    """(recommended action, why) for the analyst."""
    fired = {r.get("rule") for r in rules}
    if action == "block" and (linked_flagged or len(fired) >= 2):
        return "suspend_account_and_linked", f"blocked with {len(fired)} rule(s); {linked_flagged} linked account(s) also flagged"
    if action == "block":
        return "suspend_account", f"model score {score} over the block threshold" if score is not None else "blocked by model and rules"
    if "credential_stuffing" in fired or "sensitive_change_new_device_country" in fired:
        return "force_password_reset", "account-takeover pattern: " + ", ".join(sorted(str(f) for f in fired))
    if "card_testing" in fired:
        return "block_card_and_review", "card-testing burst"
    return "manual_review", "model score in the review band" if score is not None else "rules asked for review"


def _timeline(rows: np.ndarray) -> list[dict[str, Any]]:
    events = rows[rows["kind"] != LABEL][-TIMELINE_MAX:]
    labels = {int(r["eid"]): bool(r["fraud"]) for r in rows[rows["kind"] == LABEL]}
    out = []
    for r in events[::-1]:
        entry: dict[str, Any] = {
            "at": datetime.fromtimestamp(int(r["ts"]) / 1000, tz=UTC).isoformat().replace("+00:00", "Z"),
            "type": _KIND_NAMES.get(int(r["kind"]), "other"),
        }
        if r["kind"] == PAYMENT:
            entry["amount"] = round(float(r["amount"]), 2)
        if r["flags"] & FAILED:
            entry["failed"] = True
        if r["country"]:
            entry["country"] = country_str(int(r["country"]))
            entry["asn"] = int(r["asn"])
        if int(r["eid"]) in labels:
            entry["labeled_fraud"] = labels[int(r["eid"])]
        out.append(entry)
    return out


def open_cases(messages: Sequence[DecisionMessage], state: FraudStateStore, decisions: Table, cases: Table) -> list[Item]:
    """Build and store a case per message (one BatchGetItem for state, one BatchWriteItem)."""
    keys: list[str] = []
    for m in messages:
        keys.append(f"acct#{m.account_id}")
        keys.extend(e for e in m.body.get("entities", []) if not str(e).startswith("acct#"))
    logs = state.load(keys)
    items = []
    for m in messages:
        b = m.body
        acct = logs.get(f"acct#{m.account_id}")
        linked: dict[str, list[str]] = {}
        for e in b.get("entities", []):
            log = logs.get(e)
            if log is None or e.startswith("acct#"):
                continue
            for other in log.accounts:
                if other != m.account_id:
                    linked.setdefault(other, []).append(e.split("#", 1)[0])
        history = decisions.query(f"acct#{m.account_id}", "dec#", limit=TIMELINE_MAX, ascending=False)
        flagged_linked = 0
        for other in list(linked)[:20]:
            others = decisions.query(f"acct#{other}", "dec#", limit=20, ascending=False)
            flagged_linked += any(d.get("action") in ("review", "block") for d in others)
        recommended, why = recommend(b["action"], b.get("rules", []), flagged_linked, b.get("score"))
        opened = datetime.fromisoformat(str(b["occurred_at"]).replace("Z", "+00:00"))
        items.append(
            {
                "pk": f"case#{m.account_id}",
                "sk": f"{b['occurred_at']}#{b['event_id']}",
                "decision_id": b["decision_id"],
                "account_id": m.account_id,
                "trigger": {k: b.get(k) for k in ("event_id", "event_type", "action", "score", "model_version")},
                "rules": b.get("rules", []),
                "top_features": b.get("top_features", []),
                "timeline": _timeline(acct.rows) if acct is not None else [],
                "decisions": [
                    {"at": d.get("occurred_at"), "event_type": d.get("event_type"), "action": d.get("action"), "score": d.get("score")}
                    for d in history
                ],
                "linked_accounts": [{"account_id": a, "via": sorted(set(v))} for a, v in sorted(linked.items())],
                "linked_flagged": flagged_linked,
                "recommended_action": recommended,
                "why": why,
                "status": "open",
                "expires_at": int(opened.timestamp()) + CASE_TTL_S,
            }
        )
    if items:
        cases.put_many(items)
    return items


Verdict = Literal["fraud", "legit"]


def verdict_label(case: Item, verdict: Verdict, at: datetime, analyst: str = "analyst") -> Label:
    """The label event an analyst's verdict produces (written to the activity stream): it marks
    the decision's event as fraud or legit for the risk features and the next training run."""
    trigger = case["trigger"]
    occurred = str(case["sk"]).split("#", 1)[0]
    return validate_event(  # type: ignore[return-value]
        {
            "type": "label",
            "version": 1,
            "event_id": f"verdict-{trigger['event_id']}-{verdict}",
            "occurred_at": at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "account_id": case["account_id"],
            "payload": {
                "kind": "confirmed_fraud" if verdict == "fraud" else "confirmed_legit",
                "target_event_id": trigger["event_id"],
                "target_type": trigger["event_type"],
                "target_occurred_at": occurred,
                "is_fraud": verdict == "fraud",
                "source": "analyst",
            },
        }
    )
