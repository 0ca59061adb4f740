"""With the team data: the MovieLens catalogue, and throughput (starts and heartbeats) from the real ABR traces."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from streamsense.events import dump_event, validate_event
from streamsense_sim import SimConfig, Simulator
from streamsense_sim.qoe import FAMILY_OF, SCALE_OF

STARTUP_WINDOW_S = 8


def _delivered(x: np.ndarray, t_ms: np.ndarray, kbit: np.ndarray, length: int) -> np.ndarray:
    """kbit a trace (cumulative kbit ``kbit`` at times ``t_ms``) delivers from its start to
    second x, looping at its whole seconds."""
    per_loop = float(np.interp(length * 1000.0, t_ms, kbit))
    return (x // length) * per_loop + np.interp((x % length) * 1000.0, t_ms, kbit)


def _window_rates(data_dir: Path, family: str, heartbeat_s: int) -> tuple[np.ndarray, np.ndarray]:
    """For every trace of the family's even half and every whole-second offset into it: the
    mean rate (kbps) over the 8 s from there and over the heartbeat interval right after,
    the trace looped at its whole seconds (traces under 10 s are left out, as the simulator does)."""
    starts, beats = [], []
    for path in sorted((data_dir / "abr/traces" / family).glob("*.json"))[0::2]:
        points = json.loads(path.read_text())
        t_ms = np.concatenate([[0.0], np.cumsum([q["duration_ms"] for q in points])])
        kbit = np.concatenate([[0.0], np.cumsum([q["bandwidth_kbps"] * q["duration_ms"] / 1000 for q in points])])
        length = int(t_ms[-1] // 1000)
        if length < 10:
            continue
        o = np.arange(length)
        head = o + STARTUP_WINDOW_S
        tail = head + heartbeat_s
        before, at_head, at_tail = (_delivered(x, t_ms, kbit, length) for x in (o, head, tail))
        starts.append((at_head - before) / STARTUP_WINDOW_S)
        beats.append((at_tail - at_head) / heartbeat_s)
    return np.concatenate(starts), np.concatenate(beats)


@pytest.mark.data
def test_movielens_catalogue_and_abr_traces(data_dir: Path) -> None:
    sim = Simulator(SimConfig(accounts=300, days=1, seed=5, data_dir=data_dir, trace_split="train"))
    assert sim.catalogue.source == "movielens"
    assert sim.catalogue.size == 9742
    assert sim.catalogue.title_ids[0] == "1" and sim.catalogue.names[0] == "Toy Story (1995)"
    # Base popularity is the ratings count: Forrest Gump (356) is the most rated movie.
    top = int(sim.catalogue.base.argmax())
    assert sim.catalogue.title_ids[top] == "356"
    assert sim.throughput.source == "abr-traces"
    fam = sim.throughput.families["norway-3g"]
    assert len(fam.files) == 43  # the even half of 86 traces
    assert fam.files[0] == sorted(p.name for p in (data_dir / "abr/traces/norway-3g").glob("*.json"))[0]
    lines = [r.line for r in sim.records()]
    beats = 0
    starts: dict[str, dict] = {}
    first_beat: dict[str, dict] = {}
    for line in lines:
        event = json.loads(line)
        assert dump_event(validate_event(event)) == line
        p = event["payload"]
        if event["type"] == "playback_start":
            assert p["title_id"] in set(sim.catalogue.title_ids)
            starts[p["session_id"]] = p
        if event["type"] == "playback_heartbeat":
            beats += 1
            if p["session_id"] not in first_beat or p["position_s"] < first_beat[p["session_id"]]["position_s"]:
                first_beat[p["session_id"]] = p
    assert beats > 100

    # Each start's throughput is a real trace's mean over the 8 s startup window, and its first
    # heartbeat's is the same trace's mean over the interval right after (same offset): the
    # start and the heartbeats measure one network, one after the other.
    heartbeat_s = sim.config.heartbeat_s
    rates = {fam: _window_rates(data_dir, fam, heartbeat_s) for fam in sorted(set(FAMILY_OF.values()))}
    checked = 0
    for sid, beat in first_beat.items():
        start = starts[sid]
        assert start["network_type"] == beat["network_type"]
        scale = SCALE_OF[start["network_type"]]
        window, after = rates[FAMILY_OF[start["network_type"]]]
        tol = 0.05 / scale + 1e-6  # the events carry 0.1 kbps
        match = (np.abs(window - start["qoe"]["throughput_kbps"] / scale) <= tol) & (
            np.abs(after - beat["qoe"]["throughput_kbps"] / scale) <= tol
        )
        assert match.any(), (sid, start["qoe"], beat["qoe"])
        checked += 1
    assert checked > 100
