"""Decisions: allow / challenge / review / block from the model's calibrated thresholds and the
rules, with their reasons and the model version; shadow scoring of a candidate model.

Policy (challenge before block):
- the model's score maps to an action through thresholds calibrated on held-out data (see
  ``model.calibrate_thresholds``): challenge, review and block at increasing precision;
- each rule that fires asks for challenge or review; two or more rules firing ask for review;
- a block needs the model: its block threshold, or its review threshold together with a rule;
- the strongest of these is the decision. With no model (artifact missing or corrupt), rules
  alone decide and nothing is blocked.

Stored and queued records carry no raw email, IP, card number or device id: the account id,
the entities' pseudonymous keys, country and ASN only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from streamsense.events import Event
from streamsense.fraud.model import FraudModel
from streamsense.fraud.rules import ACTIONS, Action, Hit

DECISION_TTL_S = 400 * 86_400  # decisions are kept for about a year of disputes


def _rank(a: Action) -> int:
    return ACTIONS.index(a)


def _max(*actions: Action) -> Action:
    return max(actions, key=_rank)


def model_action(score: float, thresholds: dict[str, float]) -> Action:
    if score >= thresholds.get("block", 2.0):
        return "block"
    if score >= thresholds.get("review", 2.0):
        return "review"
    if score >= thresholds.get("challenge", 2.0):
        return "challenge"
    return "allow"


def decide(score: float | None, thresholds: dict[str, float], hits: Sequence[Hit]) -> Action:
    action: Action = "allow"
    for h in hits:
        action = _max(action, h.action)
    if len(hits) >= 2:
        action = _max(action, "review")
    if score is not None:
        by_model = model_action(score, thresholds)
        if by_model == "block" or (by_model == "review" and hits):
            action = "block"
        else:
            action = _max(action, by_model)
    return action


@dataclass
class Decision:
    event_id: str
    event_type: str
    account_id: str
    occurred_at: str
    action: Action
    score: float | None
    model_version: str | None
    rules: list[dict[str, str]]
    top_features: list[tuple[str, float]]
    entities: list[str]
    shadow: dict[str, Any] | None = None
    fallback: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def item(self) -> dict[str, Any]:
        """The decisions-table item (pk = account, sk = time + event: an account's timeline)."""
        body = asdict(self)
        body["top_features"] = [[n, v] for n, v in self.top_features]
        return {
            "pk": f"acct#{self.account_id}",
            "sk": f"dec#{self.occurred_at}#{self.event_id}",
            **{k: v for k, v in body.items() if v is not None and k != "extra"},
            **self.extra,
            "expires_at": 0,  # set by the caller from the event time
        }

    def message(self) -> str:
        """The investigations-queue message body."""
        return json.dumps(
            {
                "decision_id": f"{self.account_id}|{self.event_id}",
                "event_id": self.event_id,
                "event_type": self.event_type,
                "account_id": self.account_id,
                "occurred_at": self.occurred_at,
                "action": self.action,
                "score": self.score,
                "model_version": self.model_version,
                "rules": self.rules,
                "top_features": self.top_features,
                "entities": self.entities,
            },
            separators=(",", ":"),
        )


class Decider:
    """Scores a batch with the live model (and a candidate in shadow) and decides."""

    def __init__(self, live: FraudModel | None, candidate: FraudModel | None = None, fallback_reason: str | None = None) -> None:
        self.live = live
        self.candidate = candidate
        self.fallback_reason = fallback_reason

    def decide_batch(
        self,
        events: Sequence[Event],
        payment_index: Sequence[int],
        payment_matrix: np.ndarray,
        hits: Sequence[list[Hit]],
        entities: Sequence[list[str]],
        feature_names: Sequence[str],
    ) -> list[Decision | None]:
        """One decision per scored event (None for events that are not decided on: labels,
        heartbeats, stops, impressions). Model scores are computed in one call per model."""
        scores: dict[int, float] = {}
        shadow: dict[int, float] = {}
        contributions: dict[int, list[tuple[str, float]]] = {}
        if len(payment_index):
            if self.live is not None:
                X = _columns(payment_matrix, feature_names, self.live.features)
                s = self.live.score(X)
                scores = dict(zip(payment_index, s.tolist(), strict=True))
                flagged = [j for j, i in enumerate(payment_index) if model_action(s[j], self.live.thresholds) != "allow" or hits[i]]
                if flagged:
                    tops = self.live.top_contributions(X[flagged])
                    contributions = {payment_index[j]: t for j, t in zip(flagged, tops, strict=True)}
            if self.candidate is not None:
                Xc = _columns(payment_matrix, feature_names, self.candidate.features)
                shadow = dict(zip(payment_index, self.candidate.score(Xc).tolist(), strict=True))
        out: list[Decision | None] = []
        for i, e in enumerate(events):
            if e.type in ("label", "impression", "playback_heartbeat", "playback_stop"):
                out.append(None)
                continue
            score = scores.get(i)
            thresholds = self.live.thresholds if self.live is not None else {}
            action = decide(score, thresholds, hits[i])
            sh = None
            if i in shadow and self.candidate is not None:
                sh = {
                    "version": self.candidate.version,
                    "score": round(shadow[i], 6),
                    "action": decide(shadow[i], self.candidate.thresholds, hits[i]),
                }
            out.append(
                Decision(
                    event_id=e.event_id,
                    event_type=e.type,
                    account_id=e.account_id,
                    occurred_at=e.occurred_at.isoformat().replace("+00:00", "Z"),
                    action=action,
                    score=None if score is None else round(score, 6),
                    model_version=self.live.version if self.live is not None and score is not None else None,
                    rules=[{"rule": h.rule, "action": h.action, "detail": h.detail} for h in hits[i]],
                    top_features=contributions.get(i, []),
                    entities=entities[i],
                    shadow=sh,
                    fallback=self.live is None and e.type == "payment",
                )
            )
        return out


def _columns(matrix: np.ndarray, names: Sequence[str], wanted: Sequence[str]) -> np.ndarray:
    index = {n: j for j, n in enumerate(names)}
    missing = [w for w in wanted if w not in index]
    if missing:
        raise KeyError(f"model needs features the scorer does not compute: {missing}")
    return matrix[:, [index[w] for w in wanted]]
