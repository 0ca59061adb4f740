"""playback_start's QoE block: what the player measured while fetching its startup chunk, on
the same throughput trace (and right before the window) its heartbeats then report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from sim_case import Run
from streamsense_sim.qoe import NETWORK_TYPES, SCALE_OF, ThroughputModel

#: One trace per family, 20 one-second steps of 10 * 2**k kbps: every run of 8 consecutive
#: seconds (looped) has its own sum, so a startup rate names the offset it was measured at.
STEPS_KBPS = [10 * 2**k for k in range(20)]


def _write_traces(root: Path) -> None:
    for family in ("fcc-hd", "fcc-sd", "norway-3g"):
        folder = root / "abr" / "traces" / family
        folder.mkdir(parents=True)
        points = [{"duration_ms": 1000, "bandwidth_kbps": b, "latency_ms": 40} for b in STEPS_KBPS]
        (folder / "only.json").write_text(json.dumps(points))


def _looped_mean(first_s: int, seconds: int) -> float:
    n = len(STEPS_KBPS)
    return sum(STEPS_KBPS[(first_s + j) % n] for j in range(seconds)) / seconds


def test_startup_rate_is_the_window_right_before_the_first_heartbeat(tmp_path: Path) -> None:
    _write_traces(tmp_path)
    model = ThroughputModel(tmp_path, "all")
    assert model.source == "abr-traces"
    net = np.repeat(np.arange(len(NETWORK_TYPES)), 30)
    interval_s = 30
    startup, series, latency = model.sample(np.random.default_rng(7), net, 3, interval_s, np.ones(len(net)))
    offsets = set()
    for i, ni in enumerate(net.tolist()):
        scale = SCALE_OF[NETWORK_TYPES[ni]]
        # the startup window: 8 s from the session's offset into the trace
        found = [o for o in range(len(STEPS_KBPS)) if _looped_mean(o, 8) * scale == startup[i]]
        assert len(found) == 1, (i, startup[i])
        o = found[0]
        offsets.add(o)
        # the heartbeats: consecutive 30 s windows right after it, same trace (looped)
        assert series[i].tolist() == [_looped_mean(o + 8 + h * interval_s, interval_s) * scale for h in range(3)]
    assert latency.tolist() == [40.0] * len(net)
    assert len(offsets) > 10  # sessions start at their own offsets
    # same seed, same draws
    again = model.sample(np.random.default_rng(7), net, 3, interval_s, np.ones(len(net)))
    assert again[0].tolist() == startup.tolist() and again[1].tolist() == series.tolist()


def test_every_playback_start_reports_its_startup_download(small_run: Run) -> None:
    starts = [e for e in small_run.events if e["type"] == "playback_start"]
    assert len(starts) > 1000
    rungs = (300.0, 750.0, 1200.0, 1850.0)  # the ladder's rungs a startup chunk may use
    for e in starts:
        p = e["payload"]
        q = p["qoe"]
        thr, bitrate = q["throughput_kbps"], q["bitrate_kbps"]
        # the highest of those rungs at or under 40% of the measured rate (300 kbps at worst)
        assert bitrate == max([r for r in rungs if r <= 0.4 * thr], default=300.0), q
        # no stall (the wait is startup_ms) and one 4 s chunk buffered when playback begins
        assert q["rebuffer_ms"] == 0 and q["buffer_s"] == 4.0
        # startup_ms is that chunk's download at the reported rate plus round trips and setup
        if p["startup_ms"] < 60_000:
            round_trips_s = p["startup_ms"] / 1000 - 0.15 - 4 * bitrate / max(thr, 50.0)
            rounding_s = 0.0005 + 4 * bitrate * 0.05 / max(thr, 50.0) ** 2  # ms and 0.1 kbps
            assert round_trips_s >= -rounding_s, e
