"""Quarantine: where bad input goes instead of being retried, guessed at or dropped.

Each quarantined record becomes one SQS message with the original payload, the reason, and
where it came from (stream/shard/sequence number, queue message id, or S3 key and line), so an
operator can fix and re-drive it. ``quarantine_id`` is deterministic (function + source position
+ reason): a batch retried after a transient error may send a record's message twice, and
readers count distinct ids (at-least-once, like every queue here).

Privacy: when the payload is JSON, raw identifiers in it (email, ip, card_number, device_id) are
replaced by their pseudonyms before it leaves the function; bytes that do not parse cannot be
searched for identifiers and are kept as they came (the queue is KMS-encrypted with a 14-day
retention).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from streamsense.privacy import Pseudonymizer
from streamsense.storage import Queue

#: Largest payload copied into a quarantine message (SQS caps a message at 256 KiB).
MAX_PAYLOAD_COPY = 64 * 1024
PII_KEYS = frozenset({"email", "ip", "card_number", "device_id"})


@dataclass(frozen=True)
class Quarantined:
    """One rejected input record."""

    reason: str
    detail: str
    payload: bytes
    source: Mapping[str, Any] = field(default_factory=dict)


def _redact(obj: Any, pseudo: Pseudonymizer) -> Any:
    if isinstance(obj, dict):
        return {
            k: (pseudo.token(k, v) if k in PII_KEYS and isinstance(v, str) else _redact(v, pseudo))
            for k, v in obj.items()
        }
    if isinstance(obj, list):
        return [_redact(v, pseudo) for v in obj]
    return obj


def quarantine_message(function: str, item: Quarantined, pseudo: Pseudonymizer) -> dict[str, Any]:
    """The JSON document sent to the quarantine queue for one record."""
    raw = item.payload
    position = json.dumps(dict(item.source), sort_keys=True, default=str)
    qid = hashlib.sha256(f"{function}|{position}|{item.reason}".encode()).hexdigest()[:32]
    message: dict[str, Any] = {
        "quarantine_id": qid,
        "function": function,
        "reason": item.reason,
        "detail": item.detail[:1000],
        "source": dict(item.source),
        "payload_bytes": len(raw),
        "payload_sha256": hashlib.sha256(raw).hexdigest(),
        "quarantined_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    clipped = raw[:MAX_PAYLOAD_COPY]
    message["truncated"] = len(raw) > MAX_PAYLOAD_COPY
    try:
        text = clipped.decode("utf-8")
    except UnicodeDecodeError:
        message["payload_encoding"] = "base64"
        message["payload"] = base64.b64encode(clipped).decode()
        return message
    message["payload_encoding"] = "utf-8"
    try:
        message["payload"] = json.dumps(_redact(json.loads(text), pseudo), separators=(",", ":"))
        message["payload_redacted"] = True
    except json.JSONDecodeError:
        message["payload"] = text
    return message


class QuarantineSink:
    """Collects a batch's rejections and sends them in SendMessageBatch calls."""

    def __init__(self, function: str, queue: Queue, pseudo: Pseudonymizer | None = None) -> None:
        self.function = function
        self.queue = queue
        self.pseudo = pseudo or Pseudonymizer.from_env()

    def send(self, items: Sequence[Quarantined]) -> None:
        if items:
            self.queue.send_many(
                [json.dumps(quarantine_message(self.function, i, self.pseudo), default=str) for i in items]
            )
