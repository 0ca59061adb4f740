"""The shared batch pipeline: every record ends applied, quarantined with a reason, or retried."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence

from streamsense.events import Event
from streamsense.pipeline import BatchResult, Parsed, kinesis_batch, s3_objects, sqs_batch
from streamsense.privacy import Pseudonymizer
from streamsense.quarantine import QuarantineSink
from streamsense.storage import MemoryQueue, TransientStoreError

PSEUDO = Pseudonymizer(b"k" * 32)


def _payment(event_id: str, amount: float = 10.0) -> dict:
    return {
        "type": "payment",
        "version": 1,
        "event_id": event_id,
        "occurred_at": "2018-04-01T00:00:31Z",
        "account_id": "c1",
        "payload": {"card_number": "4111111111111111", "merchant_id": "t1", "amount": amount},
    }


def _kinesis(datas: list[bytes]) -> dict:
    return {
        "Records": [
            {
                "eventID": f"shardId-000000000000:{i:05d}",
                "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/activity",
                "kinesis": {
                    "sequenceNumber": f"{i:05d}",
                    "partitionKey": "c1",
                    "data": base64.b64encode(d).decode(),
                },
            }
            for i, d in enumerate(datas)
        ]
    }


def test_kinesis_batch_quarantines_bad_and_applies_good() -> None:
    queue = MemoryQueue()
    seen: list[str] = []

    def apply(batch: Sequence[Parsed[Event]]) -> BatchResult:
        seen.extend(p.value.event_id for p in batch)
        return BatchResult(quarantined={batch[1].record_id: ("negative_business_rule", "x")})

    event = _kinesis(
        [
            json.dumps(_payment("a")).encode(),
            b"{not json",
            json.dumps(_payment("b")).encode(),
            json.dumps({**_payment("c"), "type": "nope"}).encode(),
        ]
    )
    response = kinesis_batch(event, apply, accepts=frozenset({"payment"}), quarantine=QuarantineSink("f", queue, PSEUDO))
    assert response == {"batchItemFailures": []}
    assert seen == ["a", "b"]
    messages = [json.loads(m) for m in queue.messages]
    assert sorted(m["reason"] for m in messages) == ["malformed_json", "negative_business_rule", "unknown_type"]
    by_reason = {m["reason"]: m for m in messages}
    assert by_reason["malformed_json"]["source"]["sequence_number"] == "00001"
    # the card number in a quarantined JSON payload is pseudonymized, never kept raw
    assert "4111111111111111" not in by_reason["negative_business_rule"]["payload"]
    assert PSEUDO.token("card_number", "4111111111111111") in by_reason["negative_business_rule"]["payload"]


def test_kinesis_transient_error_reports_first_record() -> None:
    def apply(batch: Sequence[Parsed[Event]]) -> BatchResult:
        raise TransientStoreError("throttled")

    event = _kinesis([json.dumps(_payment("a")).encode(), json.dumps(_payment("b")).encode()])
    response = kinesis_batch(event, apply, accepts=frozenset({"payment"}), quarantine=QuarantineSink("f", MemoryQueue(), PSEUDO))
    assert response == {"batchItemFailures": [{"itemIdentifier": "00000"}]}


def test_kinesis_retry_from_checkpoints_earlier_records() -> None:
    def apply(batch: Sequence[Parsed[Event]]) -> BatchResult:
        return BatchResult(retry_from=batch[1].record_id)

    event = _kinesis([json.dumps(_payment(x)).encode() for x in "abc"])
    response = kinesis_batch(event, apply, accepts=frozenset({"payment"}), quarantine=QuarantineSink("f", MemoryQueue(), PSEUDO))
    assert response == {"batchItemFailures": [{"itemIdentifier": "00001"}]}


def test_sqs_partial_batch_response() -> None:
    event = {"Records": [{"messageId": m, "body": m, "eventSourceARN": "q"} for m in ("m1", "m2")]}

    def apply(batch: Sequence[Parsed[str]]) -> BatchResult:
        return BatchResult(retry=["m2"])

    response = sqs_batch(event, apply, parse=lambda b: b.decode(), quarantine=QuarantineSink("f", MemoryQueue(), PSEUDO))
    assert response == {"batchItemFailures": [{"itemIdentifier": "m2"}]}


def test_s3_keys_are_url_decoded() -> None:
    event = {
        "Records": [
            {
                "eventName": "ObjectCreated:Put",
                "eventTime": "2026-01-01T00:00:00.000Z",
                "s3": {"bucket": {"name": "b"}, "object": {"key": "viewing-history/day+one%3D1.csv", "size": 5, "eTag": "e"}},
            }
        ]
    }
    (obj,) = s3_objects(event)
    assert obj.key == "viewing-history/day one=1.csv"


def _quarantined(raw: bytes) -> dict:
    queue = MemoryQueue()
    kinesis_batch(_kinesis([raw]), lambda b: BatchResult(), accepts=frozenset({"payment"}), quarantine=QuarantineSink("f", queue, PSEUDO))
    (message,) = [json.loads(m) for m in queue.messages]
    return message


def test_oversized_payload_is_redacted_before_it_is_clipped() -> None:
    # the card number sits past the copy limit's cut in a record too large to apply: it must
    # still be pseudonymized, not cut in half and kept raw by a parser that failed on the clip
    big = {**_payment("a"), "payload": {"padding": "x" * 200_000, "card_number": "4111111111111111"}}
    message = _quarantined(json.dumps(big).encode())
    assert message["reason"] == "oversized"
    assert message["truncated"] is True
    assert message["payload_redacted"] == "pseudonymized"
    assert "4111111111111111" not in message["payload"]
    assert len(message["payload"].encode()) <= 64 * 1024


def test_malformed_json_payload_is_scrubbed_by_pattern() -> None:
    raw = b'{"type":"login","email":"Ann@Example.com","ip":"203.0.113.7","note":"card 4111 1111 1111 1111", '
    message = _quarantined(raw)
    assert message["reason"] == "malformed_json"
    assert message["payload_redacted"] == "scrubbed"
    payload = message["payload"]
    for raw_id in ("Ann@Example.com", "203.0.113.7", "4111 1111 1111 1111"):
        assert raw_id not in payload
    assert PSEUDO.token("email", "Ann@Example.com") in payload
    assert PSEUDO.token("ip", "203.0.113.7") in payload
    assert PSEUDO.token("card_number", "4111111111111111") in payload
