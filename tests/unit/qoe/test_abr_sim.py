"""The benchmark's chunk-level simulator and its QoE, checked against hand computations."""

from __future__ import annotations

import numpy as np
import pytest
from streamsense_bench.abr_sim import (
    Decision,
    Observation,
    Trace,
    Video,
    qoe,
    session_qoe,
    simulate,
)

LADDER = (300, 750, 1200, 1850, 2850, 4300)


def cbr_video(n_chunks: int) -> Video:
    """Every chunk exactly bitrate * 4 s."""
    return Video(LADDER, np.array([[b * 1000 / 8 * 4] * n_chunks for b in LADDER], float), 4.0)


class Fixed:
    name = "fixed"

    def __init__(self, levels: list[int], startup_s: float = 0.0) -> None:
        self.levels = levels
        self.startup_s = startup_s

    def start(self, video: Video) -> None:
        pass

    def choose(self, obs: Observation) -> Decision:
        return Decision(self.levels[obs.chunk], play=obs.buffer_s >= self.startup_s)


def test_qoe_formula_on_two_chunks() -> None:
    # 0.75 + 1.85 Mbps, one switch of 1.1 Mbps, 1.08 s stalled, 2.08 s startup
    value = qoe([750, 1850], [0.0, 1.08], 2.08)
    assert value == pytest.approx(0.75 + 1.85 - 1.1 - 4.3 * 1.08 - 4.3 * 2.08)
    assert value == pytest.approx(-12.088)
    assert qoe([750, 1850], [0.0, 1.08], 2.08, with_startup=False) == pytest.approx(-3.144)


def test_two_chunk_session_by_hand() -> None:
    # 1000 kbps link: 0.95 * 125,000 = 118,750 payload bytes/s.
    # chunk 0 at 750 kbps with 237,500 bytes: 2.0 s + 80 ms RTT = 2.08 s of startup;
    # chunk 1 at 1850 kbps with 593,750 bytes: 5.0 s + 0.08 s, with 4 s buffered -> 1.08 s stall.
    video = Video(LADDER, np.array([[237_500.0, 593_750.0]] * 6), 4.0)
    log = simulate(Trace("flat", [100.0], [1000.0]), video, Fixed([1, 3]))
    assert log.startup_s == pytest.approx(2.08)
    assert log.rebuffer_s == pytest.approx([0.0, 1.08])
    assert log.stall_starts_s == pytest.approx([2.08 + 4.0])  # the buffer ran dry at 6.08 s
    assert log.early_stalls == 1
    assert log.throughput_kbps == pytest.approx([237_500 * 8 / 1000 / 2.08, 4750 / 5.08])
    assert session_qoe(log) == pytest.approx(-12.088)


def test_trace_loops_and_zero_periods() -> None:
    # 1 s at 0 kbps then 1 s at 800 kbps (95,000 payload bytes/s), looped
    trace = Trace("gap", [1.0, 1.0], [0.0, 800.0])
    assert trace.dead_s == 1.0
    assert trace.transfer_s(0.0, 95_000.0) == pytest.approx(2.0)
    # 190,000 bytes from t=0.5: wait to 1.0, 1 s of transfer, 1 s gap, 1 s more -> t=4.0
    assert trace.transfer_s(0.5, 190_000.0) == pytest.approx(3.5)
    assert trace.transfer_s(1.5, 47_500.0) == pytest.approx(0.5)


def test_buffer_cap_sleeps_in_half_seconds() -> None:
    # a fast link fills 60 s quickly: above the cap the player sleeps in 500 ms steps
    video = cbr_video(20)
    log = simulate(Trace("fast", [10.0], [1_000_000.0]), video, Fixed([0] * 20))
    assert max(log.buffer_after_s) <= 60.0
    assert sum(log.rebuffer_s) == 0.0
    # each chunk: 80 ms + 150,000 / 118,750,000 s = 0.0812632 s, so after chunk k the buffer is
    # 4 + k * 3.9187368 until chunk 15 reaches 62.781 s: sleep ceil(2.781 / 0.5) * 0.5 = 3.0 s
    d = 0.08 + 150_000 / 118_750_000
    assert log.buffer_after_s[14] == pytest.approx(4 + 14 * (4 - d))
    assert log.buffer_after_s[15] == pytest.approx(4 + 15 * (4 - d) - 3.0)
    # chunk 16: 59.781 - d + 4 = 63.700 -> sleep 4.0 s
    assert log.buffer_after_s[16] == pytest.approx(4 + 16 * (4 - d) - 7.0)


def test_startup_buffer_delays_playback() -> None:
    # asking for 8 s before playing: both chunks count as startup, no stall is possible
    video = Video(LADDER, np.array([[237_500.0, 593_750.0]] * 6), 4.0)
    log = simulate(Trace("flat", [100.0], [1000.0]), video, Fixed([1, 3], startup_s=8.0))
    assert log.startup_s == pytest.approx(2.08 + 5.08)
    assert sum(log.rebuffer_s) == 0.0
    assert log.stall_starts_s == []
