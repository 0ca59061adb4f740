"""Quarantine: where bad input goes instead of being retried, guessed at or dropped.

Each quarantined record becomes one SQS message with the original payload, the reason, and
where it came from (stream/shard/sequence number, queue message id, or S3 key and line), so an
operator can fix and re-drive it. ``quarantine_id`` is deterministic (function + source position
+ reason): a batch retried after a transient error may send a record's message twice, and
readers count distinct ids (at-least-once, like every queue here).

Privacy: when the payload is JSON, raw identifiers in it (email, ip, card_number, device_id) are
replaced by their pseudonyms before it leaves the function (the whole record is parsed, then the
redacted text is clipped); text that does not parse (malformed JSON) is scrubbed by pattern: the
values of those keys, e-mail addresses, IPv4 addresses and 13-19 digit card-like numbers. Bytes
that are not UTF-8 are kept as they came, base64-encoded (the queue is KMS-encrypted with a 14-day
retention).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
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


_KEYED = re.compile(r'"(email|ip|card_number|device_id)"(\s*:\s*)"((?:[^"\\]|\\.)*)"?')
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
_CARD = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")


def scrub_text(text: str, pseudo: Pseudonymizer) -> str:
    """Pseudonymize identifiers in text that is not (or no longer) parseable JSON."""
    text = _KEYED.sub(lambda m: f'"{m[1]}"{m[2]}"{pseudo.token(m[1], m[3])}"', text)
    text = _EMAIL.sub(lambda m: pseudo.token("email", m[0]), text)
    text = _IPV4.sub(lambda m: pseudo.token("ip", m[0]), text)
    return _CARD.sub(lambda m: pseudo.token("card_number", re.sub(r"[ -]", "", m[0])), text)


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
    message["truncated"] = len(raw) > MAX_PAYLOAD_COPY
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        message["payload_encoding"] = "base64"
        message["payload"] = base64.b64encode(raw[:MAX_PAYLOAD_COPY]).decode()
        return message
    message["payload_encoding"] = "utf-8"
    try:
        redacted = json.dumps(_redact(json.loads(text), pseudo), separators=(",", ":"))
        message["payload_redacted"] = "pseudonymized"
    except (json.JSONDecodeError, RecursionError):
        redacted = scrub_text(text, pseudo)
        message["payload_redacted"] = "scrubbed"
    # clipped after redaction, so a cut never leaves an identifier half-seen by the parser
    message["payload"] = redacted.encode()[:MAX_PAYLOAD_COPY].decode("utf-8", errors="ignore")
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
