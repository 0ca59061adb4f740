"""Writes events/fraud_scorer/, events/fraud_trainer/ and events/investigation/ (AWS's exact
shapes, events/README.md naming). Run ``python tests/unit/fraud/sample_events.py`` after changing
it; test_sample_events.py checks the committed files are what this writes.

Everything here is synthetic (no team data may enter the repository)."""

from __future__ import annotations

import base64
import csv
import io
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[3] / "events"
ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/streamsense-local-{stream}"
T0 = datetime(2024, 12, 3, 12, 0, tzinfo=UTC)


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def net(ip: str, country: str, lat: float, lon: float, asn: int = 7922, city: str = "") -> dict[str, Any]:
    return {"ip": ip, "asn": asn, "country": country, "city": city, "lat": lat, "lon": lon}


def dev(device_id: str, kind: str = "mobile") -> dict[str, Any]:
    return {"device_id": device_id, "device_type": kind}


def ev(kind: str, eid: str, at: datetime, account: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "version": 1, "event_id": eid, "occurred_at": iso(at), "account_id": account, "payload": payload}


def kinesis(datas: list[bytes], stream: str = "activity", keys: list[str] | None = None) -> dict[str, Any]:
    records = []
    for i, data in enumerate(datas):
        seq = f"4965428392001874293487200321549821035743872938472{3945410 + i:07d}"
        records.append(
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": (keys[i] if keys else "acc-1"),
                    "sequenceNumber": seq,
                    "data": base64.b64encode(data).decode(),
                    "approximateArrivalTimestamp": 1733227200.0 + i,
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"shardId-000000000000:{seq}",
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": "arn:aws:iam::123456789012:role/streamsense-fraud-scorer",
                "awsRegion": "us-east-1",
                "eventSourceARN": ARN.format(stream=stream),
            }
        )
    return {"Records": records}


def js(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def sqs(bodies: list[str]) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"2e1424d4-f796-459a-8184-9c92662be6{i:02d}",
                "receiptHandle": f"AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a{i:02d}",
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1733227200000",
                    "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                    "ApproximateFirstReceiveTimestamp": "1733227200001",
                },
                "messageAttributes": {},
                "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:streamsense-local-investigations",
                "awsRegion": "us-east-1",
            }
            for i, body in enumerate(bodies)
        ]
    }


def s3(key: str) -> dict[str, Any]:
    from urllib.parse import quote_plus

    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "us-east-1",
                "eventTime": "2024-12-03T12:00:00.000Z",
                "eventName": "ObjectCreated:Put",
                "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
                "requestParameters": {"sourceIPAddress": "127.0.0.1"},
                "responseElements": {"x-amz-request-id": "C3D13FE58DE4C810", "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD"},
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "fraud-labels",
                    "bucket": {"name": "streamsense-local-exports", "ownerIdentity": {"principalId": "A3NL1KOZZKExample"}, "arn": "arn:aws:s3:::streamsense-local-exports"},
                    "object": {"key": quote_plus(key, safe="/"), "size": 1, "eTag": "0123456789abcdef0123456789abcdef", "versionId": "1", "sequencer": "0055AED6DCD90281E5"},
                },
            }
        ]
    }


# ---- scenarios ---------------------------------------------------------------------------------

LISBON = net("85.243.10.7", "PT", 38.72, -9.14, asn=3243, city="Lisbon")
TOKYO = net("126.72.4.9", "JP", 35.68, 139.69, asn=17676, city="Tokyo")
PARIS = net("90.12.33.5", "FR", 48.86, 2.35, asn=3215, city="Paris")
SAO_PAULO = net("177.32.1.4", "BR", -23.55, -46.63, asn=28573, city="Sao Paulo")


def everyday() -> list[dict[str, Any]]:
    a = "acc-100"
    return [
        ev("signup", "su-100", T0, a, {"email": "ana@example.com", "plan_streams": 2, "device": dev("d-ana-phone"), "network": LISBON}),
        ev("login", "li-100", T0 + timedelta(minutes=1), a, {"email": "ana@example.com", "success": True, "device": dev("d-ana-phone"), "network": LISBON}),
        ev("payment", "pay-100", T0 + timedelta(minutes=2), a, {"card_number": "4111111111111111", "merchant_id": "m-streamsense", "amount": 11.99, "device": dev("d-ana-phone"), "network": LISBON}),
        ev("playback_start", "ps-100", T0 + timedelta(minutes=5), a, {"session_id": "s-100", "profile_id": "p-100", "title_id": "t-dune", "device": dev("d-ana-tv", "tv"), "network": LISBON, "network_type": "wifi", "startup_ms": 900, "audio_language": "pt", "subtitle_language": "off"}),
        ev("label", "lb-100", T0 + timedelta(minutes=9), a, {"kind": "confirmed_legit", "target_event_id": "pay-100", "target_type": "payment", "target_occurred_at": iso(T0 + timedelta(minutes=2)), "is_fraud": False, "merchant_id": "m-streamsense", "card_number": "4111111111111111", "source": "analyst"}),
    ]


def impossible_travel() -> list[dict[str, Any]]:
    a = "acc-200"
    return [
        ev("login", "li-200", T0, a, {"email": "bo@example.com", "success": True, "device": dev("d-bo-laptop", "web"), "network": LISBON}),
        ev("login", "li-201", T0 + timedelta(minutes=40), a, {"email": "bo@example.com", "success": True, "device": dev("d-x-1", "web"), "network": TOKYO}),
        ev("account_change", "ac-201", T0 + timedelta(minutes=42), a, {"field": "email", "device": dev("d-x-1", "web"), "network": TOKYO}),
    ]


def card_testing() -> list[dict[str, Any]]:
    a = "acc-300"
    out = []
    for i in range(4):
        out.append(ev("payment", f"pay-30{i}", T0 + timedelta(seconds=20 * i), a, {"card_number": "5500000000000004", "merchant_id": "m-streamsense", "amount": 1.0, "status": "declined", "network": PARIS}))
    return out


def concurrent_streams() -> list[dict[str, Any]]:
    """Five streams at once on an account whose plan the scorer has not seen (counted as the
    largest, 4 streams), from three continents: the fifth start is challenged."""
    a = "acc-400"
    out = []
    places = ((PARIS, "d-cy-tv"), (SAO_PAULO, "d-z-1"), (TOKYO, "d-z-2"), (LISBON, "d-z-3"), (PARIS, "d-cy-phone"))
    for i, (where, device) in enumerate(places):
        out.append(
            ev("playback_start", f"ps-40{i}", T0 + timedelta(minutes=i), a, {"session_id": f"s-40{i}", "profile_id": "p-400", "title_id": "t-dune", "device": dev(device, "tv"), "network": where, "network_type": "wifi", "startup_ms": 800, "audio_language": "en", "subtitle_language": "off"})
        )
    return out


def decision_message(action: str = "review") -> dict[str, Any]:
    return {
        "decision_id": "acc-200|li-201",
        "event_id": "li-201",
        "event_type": "login",
        "account_id": "acc-200",
        "occurred_at": iso(T0 + timedelta(minutes=40)),
        "action": action,
        "score": None,
        "model_version": None,
        "rules": [{"rule": "impossible_travel", "action": "challenge", "detail": "11145 km in 0.67 h (16717 km/h)"}],
        "top_features": [],
        "entities": ["acct#acc-200", "ip24#126.72.4.0/24", "asn#17676"],
    }


def label_export(n_customers: int = 80, n_terminals: int = 40, days: int = 35, seed: int = 3, n_bad_terminals: int = 4, n_takeovers: int = 20) -> str:
    """A synthetic labeled payment history in the handbook's export format: customers with their
    own spending levels, compromised terminals (every payment fraud for 20 days) and takeovers
    (amounts x5). Enough for the trainer's windows (7 train + 7 holdout + 7 label delay)."""
    rng = np.random.default_rng(seed)
    start = datetime(2024, 10, 1, tzinfo=UTC)
    mean = rng.uniform(10, 90, n_customers)
    rows = []
    bad_terminals = {int(t): int(d) for t, d in zip(rng.choice(n_terminals, n_bad_terminals, replace=False), rng.integers(0, days - 20, n_bad_terminals), strict=True)}
    takeovers = {int(c): int(d) for c, d in zip(rng.choice(n_customers, n_takeovers, replace=False), rng.integers(0, days - 7, n_takeovers), strict=True)}
    for day in range(days):
        for c in range(n_customers):
            for _ in range(rng.poisson(1.5)):
                t = start + timedelta(days=day, seconds=int(rng.integers(0, 86400)))
                term = int(rng.integers(0, n_terminals))
                amount = round(float(abs(rng.normal(mean[c], mean[c] / 3))), 2)
                fraud = 0
                if term in bad_terminals and bad_terminals[term] <= day < bad_terminals[term] + 20:
                    fraud = 1
                if c in takeovers and takeovers[c] <= day < takeovers[c] + 7 and rng.random() < 0.6:
                    amount, fraud = round(amount * 5, 2), 1
                rows.append((t, c, term, amount, fraud))
    rows.sort(key=lambda r: r[0])
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["TRANSACTION_ID", "TX_DATETIME", "CUSTOMER_ID", "TERMINAL_ID", "TX_AMOUNT", "TX_FRAUD"])
    for tid, (t, c, term, amount, fraud) in enumerate(rows):
        w.writerow([tid, t.strftime("%Y-%m-%d %H:%M:%S"), c, term, f"{amount:.2f}", fraud])
    return buf.getvalue()


def files() -> dict[Path, str]:
    """Every sample file: path -> content."""
    out: dict[Path, str] = {}

    def put(path: str, obj: Any) -> None:
        out[ROOT / path] = json.dumps(obj, indent=1) + "\n"

    def batch(events: list[dict[str, Any]], stream: str = "activity") -> dict[str, Any]:
        return kinesis([js(e) for e in events], stream, [e["account_id"] for e in events])

    put("fraud_scorer/everyday-activity.json", batch(everyday()))
    put("fraud_scorer/impossible-travel-then-email-change.json", batch(impossible_travel()))
    put("fraud_scorer/card-testing.json", batch(card_testing()))
    put("fraud_scorer/concurrent-streams.json", batch(concurrent_streams(), "playback"))
    put("fraud_scorer/corrupt-model.json", batch(everyday()[1:3]))
    out[ROOT / "fraud_scorer/corrupt-model.setup/buckets/models/fraud/live.json"] = json.dumps({"version": "v-corrupt"}) + "\n"
    out[ROOT / "fraud_scorer/corrupt-model.setup/buckets/models/fraud/v-corrupt/manifest.json"] = json.dumps(
        {"version": "v-corrupt", "kind": "trees", "artifact": "model.npz", "features": ["TX_AMOUNT"], "sha256": "0" * 64}
    ) + "\n"
    out[ROOT / "fraud_scorer/corrupt-model.setup/buckets/models/fraud/v-corrupt/model.npz"] = "not an npz: truncated upload\n"
    good = everyday()[2]
    put("fraud_scorer/bad-malformed-json.json", kinesis([b'{"type": "payment", "version": 1,']))
    put("fraud_scorer/bad-unknown-type.json", kinesis([js({**good, "type": "refund"})]))
    put("fraud_scorer/bad-unsupported-version.json", kinesis([js({**good, "version": 2})]))
    missing = {**good, "payload": {k: v for k, v in good["payload"].items() if k != "amount"}}
    put("fraud_scorer/bad-invalid-fields--missing-amount.json", kinesis([js(missing)]))
    put("fraud_scorer/bad-invalid-fields--negative-amount.json", kinesis([js({**good, "payload": {**good["payload"], "amount": -5}})]))
    put("fraud_scorer/bad-oversized.json", kinesis([js({**good, "payload": {**good["payload"], "merchant_id": "m" * 70_000}})]))
    bad_b64 = kinesis([js(good)])
    bad_b64["Records"][0]["kinesis"]["data"] = "not base64 at all!"
    put("fraud_scorer/bad-undecodable--not-base64.json", bad_b64)
    mixed = kinesis([js(everyday()[1]), b"{oops", js(good), js({**good, "event_id": "pay-x", "type": "chargeback"})])
    put("fraud_scorer/mixed-good-and-bad.json", mixed)
    put("fraud_scorer/mixed-good-and-bad.expect.json", {"quarantine": ["malformed_json", "unknown_type"]})

    put("investigation/review-decision.json", sqs([json.dumps(decision_message())]))
    put("investigation/bad-malformed-json.json", sqs(["{not json"]))
    put("investigation/bad-invalid-fields--allow-opens-no-case.json", sqs([json.dumps(decision_message("allow"))]))
    no_account = {k: v for k, v in decision_message().items() if k != "account_id"}
    put("investigation/bad-invalid-fields--missing-account.json", sqs([json.dumps(no_account)]))

    put("fraud_trainer/label-export.json", s3("fraud-labels/2024-11 export.csv"))
    out[ROOT / "fraud_trainer/label-export.setup/buckets/exports/fraud-labels/2024-11 export.csv"] = label_export()
    put("fraud_trainer/bad-bad-export--missing-columns.json", s3("fraud-labels/broken.csv"))
    out[ROOT / "fraud_trainer/bad-bad-export--missing-columns.setup/buckets/exports/fraud-labels/broken.csv"] = "TRANSACTION_ID,TX_DATETIME\n1,2024-11-01 00:00:00\n"
    put("fraud_trainer/bad-insufficient-labels.json", s3("fraud-labels/tiny.csv"))
    out[ROOT / "fraud_trainer/bad-insufficient-labels.setup/buckets/exports/fraud-labels/tiny.csv"] = label_export(n_customers=12, n_terminals=10, days=25, seed=1, n_bad_terminals=0, n_takeovers=1)
    return out


def main() -> int:
    for path, text in files().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    print(f"wrote {len(files())} files under {ROOT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
