"""Regenerate events/recs_trainer and events/recs_realtime (AWS's exact shapes), including the
small model the real-time samples load: ``.venv/bin/python tests/unit/recs/recs_make_events.py``
(run it after changing the artifact format; test_samples.py checks the files still load)."""

import base64
import hashlib
import json
import shutil
from pathlib import Path
from urllib.parse import quote_plus

from streamsense.recs import artifact
from streamsense.recs.exports import read_catalogue, read_plays
from streamsense.recs.service import version_for
from streamsense.recs.serving import Recommender

ROOT = Path(__file__).resolve().parents[3] / "events"


def main() -> None:
    TR = ROOT / "recs_trainer"
    RT = ROOT / "recs_realtime"
    for d in (TR, RT):
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)

    # ---- a small hand-made viewing history: three taste groups, two regions -------------------
    titles = {
        "t-dune": ("Dune (2021)", "Sci-Fi|Adventure"),
        "t-arrival": ("Arrival (2016)", "Sci-Fi|Drama"),
        "t-blade": ("Blade Runner 2049 (2017)", "Sci-Fi|Thriller"),
        "t-interstellar": ("Interstellar (2014)", "Sci-Fi|Drama"),
        "t-up": ("Up (2009)", "Animation|Children|Comedy"),
        "t-coco": ("Coco (2017)", "Animation|Children|Musical"),
        "t-inside": ("Inside Out (2015)", "Animation|Children|Comedy"),
        "t-soul": ("Soul (2020)", "Animation|Comedy|Musical"),
        "t-heat": ("Heat (1995)", "Crime|Thriller"),
        "t-ronin": ("Ronin (1998)", "Crime|Thriller|Action"),
        "t-drive": ("Drive (2011)", "Crime|Drama"),
        "t-sicario": ("Sicario (2015)", "Crime|Thriller|Drama"),
        "t-foundation": ("Foundation (2024)", "Sci-Fi|Drama"),  # new: no plays yet
    }
    groups = [
        ["t-dune", "t-arrival", "t-blade", "t-interstellar"],
        ["t-up", "t-coco", "t-inside", "t-soul"],
        ["t-heat", "t-ronin", "t-drive", "t-sicario"],
    ]
    rows = ["member,title,timestamp,weight,region"]
    t0 = 1733000000
    k = 0
    for g, titles_g in enumerate(groups):
        for m in range(6):
            member = f"prof-{g}{m}"
            region = "US" if m % 2 == 0 else "DE"
            seen = titles_g[:3] if m < 5 else titles_g[:2]
            for j, t in enumerate(seen):
                k += 1
                rows.append(f"{member},{t},{t0 + k * 600},{0.9 - 0.1 * j:.1f},{region}")
    plays_csv = ("\n".join(rows) + "\n").encode()
    catalog_csv = (
        "title,name,genres,tags\n" + "".join(f'{t},"{n}",{g},\n' for t, (n, g) in titles.items())
    ).encode()

    def s3_event(bucket, key, body, *, records=1, etag=None, seq="0062A1B2C3D4E5F601"):
        rec = {
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "awsRegion": "us-east-1",
            "eventTime": "2024-12-03T06:00:00.000Z",
            "eventName": "ObjectCreated:Put",
            "userIdentity": {"principalId": "AWS:AROAEXAMPLEID:exporter"},
            "requestParameters": {"sourceIPAddress": "10.0.0.1"},
            "responseElements": {
                "x-amz-request-id": "C3D13FE58DE4C810",
                "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD",
            },
            "s3": {
                "s3SchemaVersion": "1.0",
                "configurationId": "recs-trainer-viewing-history",
                "bucket": {
                    "name": bucket,
                    "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                    "arn": f"arn:aws:s3:::{bucket}",
                },
                "object": {
                    "key": quote_plus(key, safe="/"),
                    "size": len(body),
                    "eTag": etag or hashlib.md5(body).hexdigest(),
                    "versionId": "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY",
                    "sequencer": seq,
                },
            },
        }
        return {"Records": [rec] * records}

    def setup(dirname, files):
        for rel, body in files.items():
            p = dirname / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(body)

    BUCKET = "streamsense-local-exports"
    key = "viewing-history/2024-12-01/plays part 1.csv"

    def write(path, obj):
        path.write_text(json.dumps(obj, indent=2) + "\n")

    write(TR / "viewing-history.json", s3_event(BUCKET, key, plays_csv))
    setup(
        TR / "viewing-history.setup",
        {
            f"buckets/exports/{key}": plays_csv,
            "buckets/exports/viewing-history/catalog/titles.csv": catalog_csv,
        },
    )
    write(TR / "duplicate-notification.json", s3_event(BUCKET, key, plays_csv, records=2))
    setup(
        TR / "duplicate-notification.setup",
        {
            f"buckets/exports/{key}": plays_csv,
            "buckets/exports/viewing-history/catalog/titles.csv": catalog_csv,
        },
    )
    # MovieLens u.data (tab separated, no header)
    udata = "".join(
        f"{u}\t{i}\t{(u * i) % 5 + 1}\t{881250949 + 60 * (u * 10 + i)}\n"
        for u in range(1, 9)
        for i in range(1, 8)
        if (u + i) % 3
    ).encode()
    write(TR / "movielens-udata.json", s3_event(BUCKET, "viewing-history/ml-100k/u.data", udata))
    setup(TR / "movielens-udata.setup", {"buckets/exports/viewing-history/ml-100k/u.data": udata})
    # A catalogue drop: trains nothing by itself.
    write(TR / "catalog.json", s3_event(BUCKET, "viewing-history/catalog/titles.csv", catalog_csv))
    setup(TR / "catalog.setup", {"buckets/exports/viewing-history/catalog/titles.csv": catalog_csv})
    # One bad row in 200: quarantined with its line number, the rest applied.
    many = ["member,title,timestamp"] + [
        f"prof-{i % 20},t-{i % 7},{t0 + i * 60}" for i in range(199)
    ]
    many.insert(57, "prof-x,t-1,yesterday")
    body = ("\n".join(many) + "\n").encode()
    write(
        TR / "bad-invalid-row.json", s3_event(BUCKET, "viewing-history/2024-12-02/plays.csv", body)
    )
    (TR / "bad-invalid-row.expect.json").write_text(
        json.dumps({"quarantine": ["invalid_row"]}) + "\n"
    )
    setup(
        TR / "bad-invalid-row.setup", {"buckets/exports/viewing-history/2024-12-02/plays.csv": body}
    )
    # Too many bad rows: the file is rejected whole, nothing applied.
    bad = ["member,title,timestamp"] + [
        f"prof-{i},t-{i % 3},{'' if i % 4 == 0 else t0 + i}" for i in range(40)
    ]
    body = ("\n".join(bad) + "\n").encode()
    write(
        TR / "bad-too-many-bad-rows.json",
        s3_event(BUCKET, "viewing-history/2024-12-03/plays.csv", body),
    )
    setup(
        TR / "bad-too-many-bad-rows.setup",
        {"buckets/exports/viewing-history/2024-12-03/plays.csv": body},
    )
    # Unknown format.
    body = b"user;movie;when\n1;2;3\n"
    write(
        TR / "bad-unknown-format.json",
        s3_event(BUCKET, "viewing-history/2024-12-04/plays.csv", body),
    )
    setup(
        TR / "bad-unknown-format.setup",
        {"buckets/exports/viewing-history/2024-12-04/plays.csv": body},
    )

    # ---- realtime: a model trained on the hand-made history -------------------------------------
    plays, _ = read_plays(plays_csv, "plays.csv")
    cat = read_catalogue(catalog_csv)
    rec = Recommender.train(plays, cat)
    mbody = artifact.dumps(rec)
    version = version_for(BUCKET, key, "sample", None)
    manifest = artifact.make_manifest(
        version,
        mbody,
        rec,
        window=plays.window(),
        source={"bucket": BUCKET, "key": key},
        metrics={},
        n_plays=len(plays),
        trained_at="2024-12-03T06:00:00Z",
    )
    pointer = {
        "version": version,
        "manifest_key": artifact.manifest_key(version),
        "data_end": manifest["data_window"]["end"],
    }
    model_files = {
        f"buckets/models/{artifact.model_key(version)}": mbody,
        f"buckets/models/{artifact.manifest_key(version)}": artifact.manifest_bytes(manifest),
        f"buckets/models/{artifact.CURRENT_KEY}": json.dumps(pointer).encode(),
    }
    corrupt = dict(model_files)
    corrupt[f"buckets/models/{artifact.model_key(version)}"] = mbody[:-10] + b"0123456789"

    def ev(eid, etype, member, title, t, account="acc-1", extra=None):
        net = {
            "ip": "203.0.113.7",
            "asn": 64500,
            "country": "US",
            "city": "Austin",
            "lat": 30.27,
            "lon": -97.74,
        }
        dev = {"device_id": "dev-1", "device_type": "tv"}
        if etype == "playback_start":
            payload = {
                "session_id": f"s-{eid}",
                "profile_id": member,
                "title_id": title,
                "device": dev,
                "network": net,
                "network_type": "wifi",
                "startup_ms": 900,
                "audio_language": "en",
                "subtitle_language": "off",
            }
        else:
            payload = {
                "session_id": f"s-{eid}",
                "profile_id": member,
                "title_id": title,
                "position_s": 60.0,
                "device": dev,
                "network": net,
                "network_type": "wifi",
                "qoe": {"throughput_kbps": 12000, "bitrate_kbps": 4300},
            }
        e = {
            "type": etype,
            "version": 1,
            "event_id": eid,
            "occurred_at": t,
            "account_id": account,
            "payload": payload,
        }
        if extra:
            e.update(extra)
        return json.dumps(e, separators=(",", ":")).encode()

    def kinesis(datas, start=0):
        recs = []
        for n, (data, pk) in enumerate(datas):
            seq = str(49654283920018742934872003215498210357438729384723945410 + (start + n) * 1000)
            recs.append(
                {
                    "kinesis": {
                        "kinesisSchemaVersion": "1.0",
                        "partitionKey": pk,
                        "sequenceNumber": seq,
                        "data": data if isinstance(data, str) else base64.b64encode(data).decode(),
                        "approximateArrivalTimestamp": 1733227200.0 + n,
                    },
                    "eventSource": "aws:kinesis",
                    "eventVersion": "1.0",
                    "eventID": f"shardId-000000000000:{seq}",
                    "eventName": "aws:kinesis:record",
                    "invokeIdentityArn": "arn:aws:iam::123456789012:role/streamsense-recs-realtime",
                    "awsRegion": "us-east-1",
                    "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/streamsense-playback",
                }
            )
        return {"Records": recs}

    good = [
        (ev("pb-0001", "playback_start", "prof-05", "t-dune", "2024-12-03T12:00:00Z"), "acc-1"),
        (ev("pb-0002", "playback_heartbeat", "prof-05", "t-dune", "2024-12-03T12:01:00Z"), "acc-1"),
        (
            ev(
                "pb-0003",
                "playback_start",
                "prof-new",
                "t-heat",
                "2024-12-03T12:02:00Z",
                account="acc-2",
            ),
            "acc-2",
        ),
    ]
    write(RT / "plays.json", kinesis(good))
    setup(RT / "plays.setup", model_files)
    write(RT / "play-duplicate.json", kinesis([good[0], good[0]]))
    setup(RT / "play-duplicate.setup", model_files)
    write(RT / "corrupt-model.json", kinesis([good[0]]))
    setup(RT / "corrupt-model.setup", corrupt)
    write(
        RT / "bad-malformed-json.json",
        kinesis([(b'{"type": "playback_start", "version": 1,', "acc-1")]),
    )
    write(
        RT / "bad-unknown-type.json",
        kinesis([(json.dumps({"type": "rating", "version": 1}).encode(), "acc-1")]),
    )
    missing = json.loads(
        ev("pb-0009", "playback_start", "prof-05", "t-dune", "2024-12-03T12:00:00Z")
    )
    del missing["payload"]["title_id"]
    write(
        RT / "bad-invalid-fields--missing-title.json",
        kinesis([(json.dumps(missing).encode(), "acc-1")]),
    )
    write(
        RT / "bad-oversized.json",
        kinesis(
            [
                (
                    ev(
                        "pb-0010",
                        "playback_start",
                        "prof-05",
                        "t-dune",
                        "2024-12-03T12:00:00Z",
                        extra={"pad": "x" * 70000},
                    ),
                    "acc-1",
                )
            ]
        ),
    )
    write(RT / "bad-undecodable--not-base64.json", kinesis([("not base64!!", "acc-1")]))
    mixed = [good[0], (b"not json", "acc-1"), good[2]]
    write(RT / "mixed-good-and-bad.json", kinesis(mixed))
    (RT / "mixed-good-and-bad.expect.json").write_text(
        json.dumps({"quarantine": ["malformed_json"]}) + "\n"
    )
    setup(RT / "mixed-good-and-bad.setup", model_files)
    print("version", version, "model bytes", len(mbody))


if __name__ == "__main__":
    main()
