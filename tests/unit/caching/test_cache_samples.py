"""events/cache_hints carries what the names say (regenerate with cache_make_events.py), and
each sample does what it should to the domain code on in-memory storage."""

from __future__ import annotations

import base64
import copy
import json
from datetime import datetime
from pathlib import Path

import pytest
from kinesis_samples import outcomes as record_outcomes
from streamsense.caching.aggregate import window_plays
from streamsense.caching.service import CacheHints, HintsConfig
from streamsense.caching.store import latest_hints
from streamsense.events import parse_event
from streamsense.pipeline import Parsed
from streamsense.storage import MemoryObjectStore, MemoryTable

FOLDER = Path(__file__).resolve().parents[3] / "events" / "cache_hints"
KINESIS = sorted(p for p in FOLDER.glob("*.json") if not p.name.endswith(".expect.json") and "Records" in json.loads(p.read_text()))


@pytest.mark.parametrize("path", KINESIS, ids=[p.name for p in KINESIS])
def test_sample_records(path: Path) -> None:
    got = record_outcomes(path)
    sidecar = path.with_name(path.stem + ".expect.json")
    if sidecar.is_file():
        assert sorted(o for o in got if o != "ok") == sorted(json.loads(sidecar.read_text())["quarantine"])
    elif path.stem.startswith("bad-"):
        assert got == [path.stem[4:].split("--")[0].replace("-", "_")]
    else:
        assert set(got) == {"ok"}


def parsed(path: Path) -> list[Parsed]:  # type: ignore[type-arg]
    out = []
    for r in json.loads(path.read_text())["Records"]:
        k = r["kinesis"]
        data = base64.b64decode(k["data"])
        out.append(Parsed(k["sequenceNumber"], parse_event(data), {"shard": r["eventID"].split(":")[0], "sequence_number": k["sequenceNumber"]}, data))
    return out


def test_plays_sample_counts_and_replays_idempotently() -> None:
    table = MemoryTable()
    svc = CacheHints(table, None)
    svc.apply(parsed(FOLDER / "plays.json"))
    assert window_plays(table, "DE", "2024-06-03T06:00Z") == {"t-dark-s1": 2, "t-babylon": 1}
    assert window_plays(table, "AT", "2024-06-03T06:00Z") == {"t-dark-s1": 1}
    assert window_plays(table, "FR", "2024-06-03T06:00Z") == {"t-lupin-p3": 1}
    once = copy.deepcopy(table.items)
    svc.apply(parsed(FOLDER / "plays.json"))
    assert table.items == once
    svc.apply(parsed(FOLDER / "producer-resend.json"))
    assert window_plays(table, "DE", "2024-06-03T06:00Z") == {"t-dark-s1": 2, "t-babylon": 1}


def test_boundary_sample_publishes_hints() -> None:
    table = MemoryTable()
    table.put_many(json.loads((FOLDER / "fill-window-boundary.setup" / "tables" / "cache.json").read_text()))
    bucket = MemoryObjectStore()
    event = json.loads((FOLDER / "fill-window-boundary.json").read_text())
    report = CacheHints(table, bucket, HintsConfig()).publish(datetime.fromisoformat(event["time"].replace("Z", "+00:00")))
    assert (report.window, report.sites) == ("2024-06-03T12:00Z", 2)
    _, de = latest_hints(table, "fra-1")
    _, at = latest_hints(table, "vie-1")
    # DE's budget (90% of 12 GB) holds its two titles and Lupin, trending in FR.
    assert [(e.title_id, e.reason, e.source) for e in de] == [("t-dark-s1", "own", None), ("t-babylon", "own", None), ("t-lupin-p3", "own", None)]
    assert [e.title_id for e in at] == ["t-dark-s1"]
    assert sorted(bucket.objects) == ["hints/fra-1/2024-06-03T12:00Z.json", "hints/vie-1/2024-06-03T12:00Z.json"]
