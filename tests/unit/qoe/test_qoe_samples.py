"""The sample events of qoe_hints and delivery_prefs are in Kinesis's shape and carry what
their names say (regenerate with qoe_make_events.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kinesis_samples import outcomes as record_outcomes

EVENTS = Path(__file__).resolve().parents[3] / "events"
FILES = sorted(
    p
    for f in ("qoe_hints", "delivery_prefs")
    for p in (EVENTS / f).glob("*.json")
    if not p.name.endswith(".expect.json")
)


@pytest.mark.parametrize("path", FILES, ids=[f"{p.parent.name}/{p.name}" for p in FILES])
def test_sample_records(path: Path) -> None:
    outcomes = record_outcomes(path)
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
