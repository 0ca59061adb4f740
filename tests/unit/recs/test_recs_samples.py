"""The sample events of recs_trainer / recs_realtime are in AWS's shapes and the model they
ship for the real-time samples still loads (regenerate with recs_make_events.py if not)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from urllib.parse import unquote_plus

import pytest
from streamsense.events import BadEvent, parse_event
from streamsense.recs import artifact
from streamsense.recs.exports import read_plays

EVENTS = Path(__file__).resolve().parents[3] / "events"
MODEL = EVENTS / "recs_realtime" / "plays.setup" / "buckets" / "models"


def test_the_realtime_samples_model_loads_and_verifies() -> None:
    pointer = json.loads((MODEL / artifact.CURRENT_KEY).read_text())
    manifest = json.loads((MODEL / pointer["manifest_key"]).read_text())
    rec = artifact.loads((MODEL / manifest["model_key"]).read_bytes(), manifest)
    # Nobody in the sample history has played these yet: they reach members by content.
    assert len(rec.titles) == 13
    assert rec.titles[rec.new_titles].tolist() == ["t-foundation", "t-interstellar", "t-sicario", "t-soul"]


def test_the_corrupt_model_sample_fails_its_sha256() -> None:
    root = EVENTS / "recs_realtime" / "corrupt-model.setup" / "buckets" / "models"
    pointer = json.loads((root / artifact.CURRENT_KEY).read_text())
    manifest = json.loads((root / pointer["manifest_key"]).read_text())
    with pytest.raises(artifact.ArtifactError):
        artifact.loads((root / manifest["model_key"]).read_bytes(), manifest)


def test_trainer_samples_name_their_setup_objects() -> None:
    for path in sorted((EVENTS / "recs_trainer").glob("*.json")):
        if path.name.endswith(".expect.json"):
            continue
        for record in json.loads(path.read_text())["Records"]:
            assert record["eventName"] == "ObjectCreated:Put" and record["eventSource"] == "aws:s3"
            key = unquote_plus(record["s3"]["object"]["key"])
            obj = path.with_name(path.stem + ".setup") / "buckets" / "exports" / key
            assert obj.is_file(), obj
    body = (EVENTS / "recs_trainer/viewing-history.setup/buckets/exports/viewing-history/2024-12-01/plays part 1.csv")
    plays, bad = read_plays(body.read_bytes(), "plays.csv")
    assert (len(plays), bad) == (51, [])


def test_realtime_samples_decode_as_their_names_say() -> None:
    for path in sorted((EVENTS / "recs_realtime").glob("*.json")):
        if path.name.endswith(".expect.json"):
            continue
        reasons = []
        for record in json.loads(path.read_text())["Records"]:
            try:
                data = base64.b64decode(record["kinesis"]["data"], validate=True)
            except ValueError:
                reasons.append("undecodable")
                continue
            try:
                parse_event(data)
            except BadEvent as exc:
                reasons.append(exc.reason)
        expected = path.stem[4:].split("--")[0].replace("-", "_") if path.stem.startswith("bad-") else None
        if expected:
            assert reasons == [expected], path.name
        elif path.stem == "mixed-good-and-bad":
            assert reasons == ["malformed_json"]
        else:
            assert reasons == [], path.name
