"""Regenerate events/qoe_hints and events/delivery_prefs (AWS's exact Kinesis shapes):
``.venv/bin/python tests/unit/qoe/qoe_make_events.py``. test_qoe_samples.py checks the files
still decode to the events they are meant to carry."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3] / "events"
ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/streamsense-local-playback"
SEQ0 = 49654283920018742934872003215498210357438729384723945410


def record(
    data: bytes | str, partition_key: str, n: int, *, raw: bool = False, shard: int = 0
) -> dict[str, Any]:
    seq = str(SEQ0 + 1000 * n)
    body = (
        data
        if raw
        else base64.b64encode(data if isinstance(data, bytes) else data.encode()).decode()
    )
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
        "eventID": f"shardId-{shard:012d}:{seq}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": "arn:aws:iam::123456789012:role/streamsense-local-function",
        "awsRegion": "us-east-1",
        "eventSourceARN": ARN,
    }


def event(
    kind: str, n: int, account: str, payload: dict[str, Any], at: str, **extra: Any
) -> dict[str, Any]:
    return {
        "type": kind,
        "version": 1,
        "event_id": f"evt-{kind}-{account}-{n:03d}",
        "occurred_at": at,
        "account_id": account,
        "payload": payload,
        **extra,
    }


def ctx(
    device: str = "mobile", country: str = "NO", network: str = "cellular_3g"
) -> dict[str, Any]:
    return {
        "device": {"device_id": f"dev-{device}-1", "device_type": device},
        "network": {
            "ip": "198.51.100.23",
            "asn": 2119,
            "country": country,
            "city": "Oslo",
            "lat": 59.91,
            "lon": 10.75,
        },
        "network_type": network,
    }


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def write(
    folder: Path, name: str, records: list[dict[str, Any]], expect: list[str] | None = None
) -> None:
    (folder / f"{name}.json").write_text(json.dumps({"Records": records}, indent=2) + "\n")
    if expect is not None:
        (folder / f"{name}.expect.json").write_text(
            json.dumps({"quarantine": sorted(expect)}) + "\n"
        )


def session(
    account: str,
    sid: str,
    kbps: list[float],
    *,
    device: str = "mobile",
    country: str = "NO",
    network: str = "cellular_3g",
    hour: int = 12,
) -> list[dict[str, Any]]:
    base = {
        "session_id": sid,
        "profile_id": f"{account}-p1",
        "title_id": "t-dune",
        **ctx(device, country, network),
    }
    out = [
        event(
            "playback_start",
            0,
            account,
            {**base, "startup_ms": 1850, "audio_language": "no", "subtitle_language": "off"},
            f"2024-06-03T{hour:02d}:00:02Z",
        )
    ]
    for k, v in enumerate(kbps, start=1):
        out.append(
            event(
                "playback_heartbeat",
                k,
                account,
                {
                    **base,
                    "position_s": 4.0 * (k - 1),
                    "qoe": {
                        "throughput_kbps": v,
                        "bitrate_kbps": 750 if k > 1 else 300,
                        "rebuffer_ms": 0,
                        "buffer_s": 4.0 + k,
                    },
                },
                f"2024-06-03T{hour:02d}:00:{2 + 4 * k:02d}Z",
            )
        )
    return out


def qoe_samples() -> None:
    folder = ROOT / "qoe_hints"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    a = session("acc-no-1", "ses-no-1", [950.0, 1210.5, 640.0, 1800.2, 1320.0, 1405.0])
    b = session(
        "acc-us-1",
        "ses-us-1",
        [310.0, 8900.0, 9350.5, 9120.0],
        device="tv",
        country="US",
        network="ethernet",
    )
    stop = event(
        "playback_stop",
        99,
        "acc-no-1",
        {
            "session_id": "ses-no-1",
            "profile_id": "acc-no-1-p1",
            "title_id": "t-dune",
            "watched_s": 28.0,
            "title_duration_s": 9360.0,
            **{k: v for k, v in ctx().items() if k != "network_type"},
        },
        "2024-06-03T12:00:40Z",
    )
    events = a + b + [stop]
    write(
        folder,
        "session-telemetry",
        [record(dumps(e), e["account_id"], i) for i, e in enumerate(events)],
    )
    # a producer re-sent two heartbeats (same event ids, new sequence numbers)
    resend = a + a[2:4]
    write(
        folder,
        "producer-resend",
        [record(dumps(e), e["account_id"], i) for i, e in enumerate(resend)],
    )

    good = dumps(a[1])
    negative = json.loads(good)
    negative["payload"]["qoe"]["throughput_kbps"] = -12.5
    write(
        folder, "bad-invalid-fields--negative-throughput", [record(dumps(negative), "acc-no-1", 0)]
    )
    no_net = json.loads(good)
    del no_net["payload"]["network_type"]
    write(
        folder, "bad-invalid-fields--missing-network-type", [record(dumps(no_net), "acc-no-1", 0)]
    )
    write(folder, "bad-malformed-json", [record(good[:-7], "acc-no-1", 0)])
    unknown = json.loads(good)
    unknown["type"] = "playback_seek"
    write(folder, "bad-unknown-type", [record(dumps(unknown), "acc-no-1", 0)])
    v2 = json.loads(good)
    v2["version"] = 2
    write(folder, "bad-unsupported-version", [record(dumps(v2), "acc-no-1", 0)])
    big = json.loads(good)
    big["payload"]["title_id"] = "t" * 100
    big["padding"] = "x" * (70 * 1024)
    write(folder, "bad-oversized", [record(dumps(big), "acc-no-1", 0)])
    write(
        folder,
        "bad-undecodable--not-base64",
        [record("not base64 at all!", "acc-no-1", 0, raw=True)],
    )
    mixed = [record(dumps(e), e["account_id"], i) for i, e in enumerate(a[:4])]
    mixed += [record(good[:-7], "acc-no-1", 10), record(dumps(negative), "acc-no-1", 11)]
    write(folder, "mixed-good-and-bad", mixed, expect=["invalid_fields", "malformed_json"])


def delivery_samples() -> None:
    folder = ROOT / "delivery_prefs"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    fr = ctx("tv", "FR", "wifi")
    fr["network"] |= {"city": "Lyon", "lat": 45.76, "lon": 4.84, "asn": 3215}

    def start(
        account: str, profile: str, sid: str, title: str, audio: str, subs: str, minute: int
    ) -> dict[str, Any]:
        return event(
            "playback_start",
            minute,
            account,
            {
                "session_id": sid,
                "profile_id": profile,
                "title_id": title,
                **fr,
                "startup_ms": 900,
                "audio_language": audio,
                "subtitle_language": subs,
            },
            f"2024-06-03T20:{minute:02d}:00Z",
        )

    starts = [
        start("acc-fr-1", "acc-fr-1-p1", "ses-1", "t-en-dub", "fr", "off", 1),
        start("acc-fr-1", "acc-fr-1-p1", "ses-2", "t-en", "en", "fr", 2),
        start("acc-fr-1", "acc-fr-1-p1", "ses-3", "t-fr", "fr", "off", 3),
        start("acc-fr-1", "acc-fr-1-p2", "ses-4", "t-en-dub", "en", "fr", 4),  # a purist
        start("acc-fr-2", "acc-fr-2-p1", "ses-5", "t-en-dub", "fr", "off", 5),
    ]
    switch = event(
        "playback_heartbeat",
        6,
        "acc-fr-2",
        {
            "session_id": "ses-5",
            "profile_id": "acc-fr-2-p1",
            "title_id": "t-en-dub",
            "position_s": 95.0,
            **fr,
            "qoe": {"throughput_kbps": 15200.0, "bitrate_kbps": 4300, "rebuffer_ms": 0},
            "audio_language": "en",
            "subtitle_language": "fr",
        },
        "2024-06-03T20:07:00Z",
    )
    plain = event(
        "playback_heartbeat",
        7,
        "acc-fr-2",
        {
            "session_id": "ses-5",
            "profile_id": "acc-fr-2-p1",
            "title_id": "t-en-dub",
            "position_s": 395.0,
            **fr,
            "qoe": {"throughput_kbps": 14900.0, "bitrate_kbps": 4300, "rebuffer_ms": 0},
        },
        "2024-06-03T20:12:00Z",
    )
    records = [record(dumps(e), e["account_id"], i) for i, e in enumerate([*starts, switch, plain])]
    write(folder, "language-picks", records)
    setup = folder / "language-picks.setup" / "buckets" / "exports" / "catalogue"
    setup.mkdir(parents=True)
    (setup / "2024-06-01.csv").write_text(
        "title_id,name,language,dubbed\nt-en-dub,Dune (2021),en,1\nt-en,Heat (1995),en,0\nt-fr,Amelie (2001),fr,0\n"
    )

    good = dumps(starts[0])
    bad_lang = json.loads(good)
    bad_lang["payload"]["audio_language"] = "French"
    write(folder, "bad-invalid-fields--audio-language", [record(dumps(bad_lang), "acc-fr-1", 0)])
    write(folder, "bad-malformed-json", [record(good[:-3], "acc-fr-1", 0)])
    unknown = json.loads(good)
    unknown["type"] = "subtitle_change"
    write(folder, "bad-unknown-type", [record(dumps(unknown), "acc-fr-1", 0)])
    big = json.loads(good)
    big["padding"] = "x" * (70 * 1024)
    write(folder, "bad-oversized", [record(dumps(big), "acc-fr-1", 0)])
    write(folder, "bad-undecodable--not-base64", [record("%%%", "acc-fr-1", 0, raw=True)])
    mixed = [record(dumps(e), e["account_id"], i) for i, e in enumerate(starts[:3])]
    mixed += [record(dumps(bad_lang), "acc-fr-1", 10), record(good[:-3], "acc-fr-1", 11)]
    write(folder, "mixed-good-and-bad", mixed, expect=["invalid_fields", "malformed_json"])


if __name__ == "__main__":
    qoe_samples()
    delivery_samples()
