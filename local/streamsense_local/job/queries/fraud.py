"""Read functions over what fraud_scorer (``decisions``) and investigation (``cases``) wrote, for
the ``query`` command after a run. Both tables key by the account id as the events carry it
(``acct#<id>``, ``case#<id>``): account ids are not pseudonymized (cards, devices and IPs are)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from streamsense.storage import DynamoTable

if TYPE_CHECKING:
    from streamsense_local.stack import LocalStack


def _table(stack: LocalStack, name: str) -> DynamoTable:
    return DynamoTable(stack.physical("table", name), client=stack.client("dynamodb"))


def account(stack: LocalStack, account_id: str) -> dict[str, Any]:
    """An account's fraud decisions (oldest first) with their reasons, and its cases.

    ``account_id`` as the events carry it, e.g. "c580" (handbook) or "acc-0000063" (simulator).
    Each decision: when, event, action, model score and version, rules fired (rule, action,
    detail) and the top feature contributions. Each case: the decision that opened it, the
    recommended action and why, linked accounts and status."""
    account_id = account_id.strip()
    decisions = _table(stack, "decisions").query(f"acct#{account_id}", "dec#")
    cases = _table(stack, "cases").query(f"case#{account_id}")
    by_action: dict[str, int] = {}
    for d in decisions:
        by_action[str(d.get("action"))] = by_action.get(str(d.get("action")), 0) + 1
    return {
        "account_id": account_id,
        "found": bool(decisions or cases),
        "decisions_by_action": dict(sorted(by_action.items())),
        "decisions": [
            {
                "at": d.get("occurred_at"),
                "event_id": d.get("event_id"),
                "event_type": d.get("event_type"),
                "action": d.get("action"),
                "score": d.get("score"),
                "model_version": d.get("model_version"),
                "rules": d.get("rules", []),
                "top_features": d.get("top_features", []),
            }
            for d in decisions
        ],
        "cases": [
            {
                "opened_at": str(c.get("sk", "")).split("#", 1)[0],
                "trigger": c.get("trigger"),
                "recommended_action": c.get("recommended_action"),
                "why": c.get("why"),
                "linked_accounts": c.get("linked_accounts", []),
                "status": c.get("status"),
            }
            for c in cases
        ],
    }
