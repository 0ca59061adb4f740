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
    "legit_traps.jsonl",
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
        "playback_start", "playback_heartbeat", "playback_stop", "impression",
    }  # fmt: skip


def test_records_expose_the_partition_key_and_the_stream(small_run: Run) -> None:
    sim = Simulator(replace(SMALL, days=1))
    streams: dict[str, set[str]] = {}
    for rec in sim.records():
        assert rec.account_id == json.loads(rec.line)["account_id"]
        assert rec.kind == json.loads(rec.line)["type"]
        streams.setdefault(rec.kind, set()).add(rec.stream)
    # Routing follows the one system description: impressions ride with the plays.
    assert streams["impression"] == {"playback"}
    assert streams["playback_start"] == streams["playback_heartbeat"] == streams["playback_stop"] == {"playback"}
    assert streams["login"] == streams["payment"] == streams["label"] == {"activity"}


def test_files_hold_the_same_events_as_the_api(small_files: Path, small_run: Run) -> None:
    lines = (small_files / "events.jsonl").read_text(encoding="utf-8").splitlines()
    assert lines == small_run.lines
    truth = [json.loads(x) for x in (small_files / "ground_truth.jsonl").read_text().splitlines()]
    assert {t["event_id"] for t in truth} == set(small_run.truth)
    traps = [json.loads(x) for x in (small_files / "legit_traps.jsonl").read_text().splitlines()]
    assert [t["event_id"] for t in traps] == [e["event_id"] for e in small_run.events if e["event_id"] in small_run.traps]
    manifest = json.loads((small_files / "manifest.json").read_text())
    assert manifest["summary"]["events"] == len(lines)
    assert sum(manifest["summary"]["events_by_type"].values()) == len(lines)
    by_kind = Counter(k for t in traps for k in t["traps"])
    assert manifest["legit_traps"]["events"] == {k: by_kind.get(k, 0) for k in manifest["legit_traps"]["events"]}
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


def test_sessions_playing_at_the_cut_stay_open_and_are_listed(small_files: Path, small_run: Run) -> None:
    manifest = json.loads((small_files / "manifest.json").read_text())
    cut = manifest["period_end"]
    assert cut["at"] == "2024-06-05T00:00:00Z"
    listed = {r["session_id"]: r for r in cut["open_sessions"]}
    starts = {e["payload"]["session_id"]: e for e in small_run.events if e["type"] == "playback_start"}
    stopped = {e["payload"]["session_id"] for e in small_run.events if e["type"] == "playback_stop"}
    beats: dict[str, list[dict]] = {}
    for e in small_run.events:
        if e["type"] == "playback_heartbeat":
            beats.setdefault(e["payload"]["session_id"], []).append(e)
    # Exactly the sessions without a stop are listed, and none of them has one.
    assert set(listed) == set(starts) - stopped
    assert len(listed) == manifest["summary"]["open_sessions_at_end"] >= 10
    views = {}
    with (small_files / "exports" / "viewing_history.csv").open(newline="") as fh:
        for row in list(csv.reader(fh))[1:]:
            views[(row[0], row[1], int(row[2]))] = float(row[3])
    durations = {t: float(d) for t, d in ((r[0], r[4]) for r in csv.reader((small_files / "catalogue.csv").open()))
                 if t != "title_id"}  # fmt: skip
    for sid, row in listed.items():
        start = starts[sid]
        assert (row["account_id"], row["profile_id"], row["title_id"], row["started_at"]) == (
            start["account_id"], start["payload"]["profile_id"], start["payload"]["title_id"], start["occurred_at"])
        assert row["would_stop_at"] >= cut["at"] > row["started_at"]
        mine = beats.get(sid, [])
        assert row["last_heartbeat_at"] == (mine[-1]["occurred_at"] if mine else None)
        if mine:
            assert row["position_s_at_cut"] == mine[-1]["payload"]["position_s"]
        # The export weighs an open session by what was watched up to the cut.
        t = int(validate_event(start).occurred_at.timestamp())
        known = len(mine) * SMALL.heartbeat_s
        assert views[(row["profile_id"], row["title_id"], t)] == round(min(known / durations[row["title_id"]], 1.0), 3)
