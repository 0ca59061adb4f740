"""Regenerate events/cache_hints (AWS's exact shapes: Kinesis records base64-encoded, the
EventBridge scheduled event): ``.venv/bin/python tests/unit/caching/cache_make_events.py``.
test_cache_samples.py checks the files still carry what their names say."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path
from typing import Any

from streamsense.caching.store import history_key, title_bucket

ROOT = Path(__file__).resolve().parents[3] / "events"
FOLDER = ROOT / "cache_hints"
ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/streamsense-local-playback"
SEQ0 = 49654283920018742934872003215498210357438729384723945410
BOUNDARY = "2024-06-03T12:00:07Z"  # a tick just after the 12:00 fill-window boundary


def record(data: bytes | str, partition_key: str, n: int, *, raw: bool = False) -> dict[str, Any]:
    seq = str(SEQ0 + 1000 * n)
    body = data if raw else base64.b64encode(data if isinstance(data, bytes) else data.encode()).decode()
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": partition_key,
            "sequenceNumber": seq,
            "data": body,
            "approximateArrivalTimestamp": 1717416000.0 + n,
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"shardId-000000000000:{seq}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": "arn:aws:iam::123456789012:role/streamsense-local-function",
        "awsRegion": "us-east-1",
        "eventSourceARN": ARN,
    }


CITIES = {"DE": ("Berlin", 52.52, 13.40, 3320, "de"), "AT": ("Vienna", 48.21, 16.37, 8447, "de"), "FR": ("Paris", 48.86, 2.35, 3215, "fr")}


def start(account: str, session: str, title: str, country: str, at: str) -> dict[str, Any]:
    city, lat, lon, asn, lang = CITIES[country]
    return {
        "type": "playback_start",
        "version": 1,
        "event_id": f"evt-start-{session}",
        "occurred_at": at,
        "account_id": account,
        "payload": {
            "session_id": session,
            "profile_id": f"{account}-p1",
            "title_id": title,
            "device": {"device_id": f"dev-{account}", "device_type": "tv"},
            "network": {"ip": "198.51.100.23", "asn": asn, "country": country, "city": city, "lat": lat, "lon": lon},
            "network_type": "wifi",
            "startup_ms": 1200,
            "audio_language": lang,
            "subtitle_language": "off",
        },
    }


def heartbeat(account: str, session: str, title: str, at: str) -> dict[str, Any]:
    return {
        "type": "playback_heartbeat",
        "version": 1,
        "event_id": f"evt-hb-{session}",
        "occurred_at": at,
        "account_id": account,
        "payload": {
            "session_id": session,
            "profile_id": f"{account}-p1",
            "title_id": title,
            "position_s": 30.0,
            "device": {"device_id": f"dev-{account}", "device_type": "tv"},
            "network": {"ip": "198.51.100.23", "asn": 3320, "country": "DE", "city": "Berlin", "lat": 52.52, "lon": 13.40},
            "network_type": "wifi",
            "qoe": {"throughput_kbps": 12000.0, "bitrate_kbps": 5800.0},
        },
    }


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def write(name: str, event: Any, expect: list[str] | None = None) -> None:
    (FOLDER / f"{name}.json").write_text(json.dumps(event, indent=2) + "\n")
    if expect is not None:
        (FOLDER / f"{name}.expect.json").write_text(json.dumps({"quarantine": sorted(expect)}) + "\n")


def kinesis(records: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Records": records}


def plays() -> list[dict[str, Any]]:
    rows = [
        ("acc-de-1", "ses-de-1", "t-dark-s1", "DE", "2024-06-03T10:02:11Z"),
        ("acc-de-2", "ses-de-2", "t-dark-s1", "DE", "2024-06-03T10:15:40Z"),
        ("acc-de-3", "ses-de-3", "t-babylon", "DE", "2024-06-03T10:31:05Z"),
        ("acc-at-1", "ses-at-1", "t-dark-s1", "AT", "2024-06-03T10:40:59Z"),
        ("acc-fr-1", "ses-fr-1", "t-lupin-p3", "FR", "2024-06-03T11:58:30Z"),
    ]
    return [start(*r) for r in rows]


def scheduled(at: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "5f3c1a2e-9d7b-4c1e-8a55-2b1f0c9e7d41",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": at,
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/streamsense-local-cache_hints-0"],
        "detail": {},
    }


def setup_items() -> list[dict[str, Any]]:
    """The state a publish reads: two sites, the title table (with a launch on the calendar)
    and four closed 6 h windows of per-region history."""
    items: list[dict[str, Any]] = [
        {"pk": "site", "sk": "fra-1", "region": "DE", "capacity_bytes": 12_000_000_000},
        {"pk": "site", "sk": "vie-1", "region": "AT", "capacity_bytes": 6_000_000_000},
        {"pk": "region", "sk": "DE"},
        {"pk": "region", "sk": "AT"},
        {"pk": "region", "sk": "FR"},
        {"pk": "title", "sk": "t-dark-s1", "bytes": 4_200_000_000},
        {"pk": "title", "sk": "t-babylon", "bytes": 3_100_000_000},
        {"pk": "title", "sk": "t-lupin-p3", "bytes": 2_900_000_000},
        {"pk": "title", "sk": "t-kleo", "bytes": 1_900_000_000, "release_at": "2024-06-03T13:00:00Z"},
    ]
    history = {
        "DE": [{"t-dark-s1": 40, "t-babylon": 12}, {"t-dark-s1": 35, "t-babylon": 15}, {"t-dark-s1": 52, "t-babylon": 9}, {"t-dark-s1": 47, "t-babylon": 11, "t-lupin-p3": 2}],
        "AT": [{"t-dark-s1": 9}, {"t-dark-s1": 7, "t-babylon": 1}, {"t-dark-s1": 11}, {"t-dark-s1": 8}],
        "FR": [{"t-lupin-p3": 30}, {"t-lupin-p3": 41}, {"t-lupin-p3": 55, "t-dark-s1": 4}, {"t-lupin-p3": 60, "t-dark-s1": 3}],
    }
    windows = ["2024-06-02T18:00Z", "2024-06-03T00:00Z", "2024-06-03T06:00Z"]
    for region, per_window in history.items():
        for wid, counts in zip(["2024-06-02T12:00Z", *windows], per_window, strict=True):
            by_bucket: dict[int, dict[str, int]] = {}
            for title, n in counts.items():
                by_bucket.setdefault(title_bucket(title), {})[title] = n
            for bucket, part in sorted(by_bucket.items()):
                pk, sk = history_key(region, wid, bucket)
                items.append({"pk": pk, "sk": sk, "plays": part, "expires_at": 1893456000})
    return items


def main() -> None:
    if FOLDER.exists():
        shutil.rmtree(FOLDER)
    FOLDER.mkdir(parents=True)
    good = plays()
    records = [record(dumps(e), e["account_id"], i) for i, e in enumerate(good)]
    # A heartbeat in the same batch: not a play, skipped (counted, never quarantined).
    hb = heartbeat("acc-de-1", "ses-de-1", "t-dark-s1", "2024-06-03T10:02:41Z")
    records.append(record(dumps(hb), "acc-de-1", len(records)))
    write("plays", kinesis(records))
    # A producer re-send: the same start again, later in the stream (new sequence number).
    write("producer-resend", kinesis([record(dumps(good[0]), "acc-de-1", 0), record(dumps(good[0]), "acc-de-1", 7)]))
    write("fill-window-boundary", scheduled(BOUNDARY))
    setup = FOLDER / "fill-window-boundary.setup" / "tables"
    setup.mkdir(parents=True)
    (setup / "cache.json").write_text(json.dumps(setup_items(), indent=2) + "\n")

    one = dumps(good[0])
    missing = json.loads(one)
    del missing["payload"]["title_id"]
    write("bad-invalid-fields--missing-title", kinesis([record(dumps(missing), "acc-de-1", 0)]))
    bad_country = json.loads(one)
    bad_country["payload"]["network"]["country"] = "Germany"
    write("bad-invalid-fields--country-name", kinesis([record(dumps(bad_country), "acc-de-1", 0)]))
    write("bad-malformed-json", kinesis([record(one[:-5], "acc-de-1", 0)]))
    unknown = {**json.loads(one), "type": "playback_pause"}
    write("bad-unknown-type", kinesis([record(dumps(unknown), "acc-de-1", 0)]))
    v2 = {**json.loads(one), "version": 2}
    write("bad-unsupported-version", kinesis([record(dumps(v2), "acc-de-1", 0)]))
    big = json.loads(one)
    big["payload"]["title_id"] = "t-" + "x" * 126
    big["padding"] = "x" * (70 * 1024)
    write("bad-oversized", kinesis([record(dumps(big), "acc-de-1", 0)]))
    write("bad-undecodable--not-base64", kinesis([record("%%%not-base64%%%", "acc-de-1", 0, raw=True)]))
    mixed = [record(dumps(e), e["account_id"], i) for i, e in enumerate(good[:3])]
    mixed += [record(dumps(missing), "acc-de-1", 10), record(one[:-5], "acc-de-1", 11)]
    write("mixed-good-and-bad", kinesis(mixed), expect=["invalid_fields", "malformed_json"])
    base64.b64decode(records[0]["kinesis"]["data"], validate=True)  # sanity


if __name__ == "__main__":
    main()
