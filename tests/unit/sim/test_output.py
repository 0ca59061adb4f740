"""The simulator's files: deterministic, valid against the event contract, time-ordered."""

from __future__ import annotations

import csv
import hashlib
import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

from sim_case import SMALL, Run
from streamsense.events import dump_event, validate_event
from streamsense_sim import Simulator, write

FILES = (
    "events.jsonl",
    "ground_truth.jsonl",
    "attacks.jsonl",
    "exports/viewing_history.csv",
    "catalogue.csv",
    "asns.json",
    "manifest.json",
)


def _digest(folder: Path) -> dict[str, str]:
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in FILES}


def test_same_seed_gives_byte_identical_files(small_files: Path, tmp_path: Path) -> None:
    write(SMALL, tmp_path)
    assert _digest(tmp_path) == _digest(small_files)


def test_another_seed_gives_other_events(small_run: Run) -> None:
    other = [r.line for r in Simulator(replace(SMALL, seed=12, days=1)).records()]
    assert other[:50] != small_run.lines[:50]
    assert not {json.loads(x)["event_id"] for x in other} & {e["event_id"] for e in small_run.events}


def test_every_event_validates_and_is_what_dump_event_writes(small_run: Run) -> None:
    for line in small_run.lines:
        assert dump_event(validate_event(json.loads(line))) == line


def test_events_are_time_ordered_unique_and_in_the_period(small_run: Run) -> None:
    times = [e["occurred_at"] for e in small_run.events]
    parsed = [validate_event(e).occurred_at.timestamp() * 1000 for e in small_run.events]
    assert parsed == sorted(parsed)
    assert len({e["event_id"] for e in small_run.events}) == len(small_run.events)
    start, end = SMALL.start_ms, SMALL.end_ms
    for e, t in zip(small_run.events, parsed, strict=True):
        assert t >= start
        # Only labels (days later) may fall after the period.
        assert t < end or e["type"] == "label", times
    kinds = Counter(e["type"] for e in small_run.events)
    assert set(kinds) == {
        "signup", "login", "account_change", "payment", "label",
        "playback_start", "playback_heartbeat", "playback_stop",
    }  # fmt: skip


def test_records_expose_the_partition_key(small_run: Run) -> None:
    sim = Simulator(replace(SMALL, days=1))
    for rec in list(sim.records())[:500]:
        assert rec.account_id == json.loads(rec.line)["account_id"]
        assert rec.kind == json.loads(rec.line)["type"]


def test_files_hold_the_same_events_as_the_api(small_files: Path, small_run: Run) -> None:
    lines = (small_files / "events.jsonl").read_text(encoding="utf-8").splitlines()
    assert lines == small_run.lines
    truth = [json.loads(x) for x in (small_files / "ground_truth.jsonl").read_text().splitlines()]
    assert {t["event_id"] for t in truth} == set(small_run.truth)
    manifest = json.loads((small_files / "manifest.json").read_text())
    assert manifest["summary"]["events"] == len(lines)
    assert sum(manifest["summary"]["events_by_type"].values()) == len(lines)
    assert manifest["catalogue"]["source"] == "generated"
    assert manifest["throughput_source"] == "parametric"


def test_viewing_history_export(small_files: Path, small_run: Run) -> None:
    with (small_files / "exports" / "viewing_history.csv").open(newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["member", "title", "timestamp", "weight"]
    starts = [e for e in small_run.events if e["type"] == "playback_start"]
    assert len(rows) - 1 == len(starts)
    stamps = [int(r[2]) for r in rows[1:]]
    assert stamps == sorted(stamps)
    by_member = Counter((e["payload"]["profile_id"], e["payload"]["title_id"]) for e in starts)
    assert Counter((r[0], r[1]) for r in rows[1:]) == by_member
    assert all(0.0 <= float(r[3]) <= 1.0 for r in rows[1:])
    # The weight is the watched share: check it against the sessions' stop events.
    stops = {e["payload"]["session_id"]: e["payload"] for e in small_run.events if e["type"] == "playback_stop"}
    first = next(e for e in starts if e["payload"]["session_id"] in stops)
    stop = stops[first["payload"]["session_id"]]
    row = next(r for r in rows[1:] if r[0] == first["payload"]["profile_id"] and r[1] == first["payload"]["title_id"])
    assert float(row[3]) == round(min(stop["watched_s"] / stop["title_duration_s"], 1.0), 3)
