"""What fraud_scorer does with a batch, behind the storage adapters (no boto3 here).

features (entity logs, batched reads) -> rules -> model scores (one vectorized call per model,
live and shadow) -> decisions -> decisions table (BatchWriteItem) -> review/block to the
investigations queue (SendMessageBatch) -> entity logs saved (BatchWriteItem).

Replaying a batch leaves everything as one delivery did: features are a function of the set of
events (rows are keyed by event id), decision items are keyed by (account, time, event id) and
rewritten with the same content, and a decision is queued for investigation only when its item
did not exist before (one BatchGetItem over the flagged decisions). State is saved last, so a
failure anywhere before it replays into the same answer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from streamsense.events import Event
from streamsense.fraud.decisions import DECISION_TTL_S, Decider, Decision
from streamsense.fraud.features import PAYMENT_FEATURES, StreamingFeatures
from streamsense.fraud.rules import RuleConfig, evaluate
from streamsense.storage import Queue, Table


@dataclass
class ScoreOutcome:
    decisions: list[Decision] = field(default_factory=list)
    by_action: Counter[str] = field(default_factory=Counter)
    queued: int = 0
    new_rows: int = 0
    state_items_written: int = 0
    rules_fired: Counter[str] = field(default_factory=Counter)
    shadow_disagreements: int = 0


def score_batch(
    events: Sequence[Event],
    features: StreamingFeatures,
    decider: Decider,
    decisions_table: Table,
    investigations: Queue,
    rules: RuleConfig | None = None,
) -> ScoreOutcome:
    bf = features.process(events, save=False)
    hits = [evaluate(a, rules) if a is not None else [] for a in bf.activity]
    decided = decider.decide_batch(events, bf.payment_index, bf.payment_matrix, hits, bf.event_keys, PAYMENT_FEATURES)
    out = ScoreOutcome(new_rows=bf.new_rows)
    items = []
    for e, d in zip(events, decided, strict=True):
        if d is None:
            continue
        item = d.item()
        item["expires_at"] = int(e.occurred_at.timestamp()) + DECISION_TTL_S
        items.append(item)
        out.decisions.append(d)
        out.by_action[d.action] += 1
        out.rules_fired.update(r["rule"] for r in d.rules)
        if d.shadow is not None and d.shadow["action"] != d.action:
            out.shadow_disagreements += 1
    flagged = [(d, (f"acct#{d.account_id}", f"dec#{d.occurred_at}#{d.event_id}")) for d in out.decisions if d.action in ("review", "block")]
    existing = decisions_table.get_many([k for _, k in flagged]) if flagged else {}
    if items:
        decisions_table.put_many(items)
    messages = [d.message() for d, k in flagged if k not in existing]
    if messages:
        investigations.send_many(messages)
    out.queued = len(messages)
    out.state_items_written = features.store.save(bf.logs)
    return out
