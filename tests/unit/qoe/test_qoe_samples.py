"""The sample events of qoe_hints and delivery_prefs are in Kinesis's shape and carry what
their names say (regenerate with qoe_make_events.py)."""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path

import pytest
from streamsense.events import BadEvent, parse_event

EVENTS = Path(__file__).resolve().parents[3] / "events"
FILES = sorted(
    p
    for f in ("qoe_hints", "delivery_prefs")
    for p in (EVENTS / f).glob("*.json")
    if not p.name.endswith(".expect.json")
)


def _outcomes(path: Path) -> list[str]:
    out = []
    for r in json.loads(path.read_text())["Records"]:
        k = r["kinesis"]
        assert r["eventID"] == f"shardId-000000000000:{k['sequenceNumber']}"
        assert r["eventSourceARN"].endswith(":stream/streamsense-local-playback")
        try:
            data = base64.b64decode(k["data"], validate=True)
        except (binascii.Error, ValueError):
            out.append("undecodable")
            continue
        try:
            event = parse_event(data)
        except BadEvent as exc:
            out.append(exc.reason)
            continue
        assert event.account_id == k["partitionKey"]
        out.append("ok")
    return out


@pytest.mark.parametrize("path", FILES, ids=[f"{p.parent.name}/{p.name}" for p in FILES])
def test_sample_records(path: Path) -> None:
    outcomes = _outcomes(path)
    name = path.stem
    sidecar = path.with_name(name + ".expect.json")
    if sidecar.is_file():
        expected = json.loads(sidecar.read_text())["quarantine"]
        assert sorted(o for o in outcomes if o != "ok") == sorted(expected)
    elif name.startswith("bad-"):
        reason = name[4:].split("--")[0].replace("-", "_")
        assert outcomes == [reason]
    else:
        assert set(outcomes) == {"ok"}
