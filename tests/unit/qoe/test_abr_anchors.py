"""Each anchor's decisions on constant links (a constant-bitrate video: chunk = bitrate * 4 s)."""

from __future__ import annotations

import numpy as np
import pytest
from streamsense_bench.abr_anchors import Bola, BufferBased, RateBased, RobustMPC, harmonic_mean
from streamsense_bench.abr_sim import Controller, Trace, Video, simulate

LADDER = (300, 750, 1200, 1850, 2850, 4300)
VIDEO = Video(LADDER, np.array([[b * 1000 / 8 * 4] * 12 for b in LADDER], float), 4.0)


def levels(controller: Controller, kbps: float) -> list[int]:
    return simulate(Trace("const", [10.0], [kbps]), VIDEO, controller).levels


def test_harmonic_mean() -> None:
    assert harmonic_mean([1000.0, 3000.0]) == pytest.approx(1500.0)


def test_every_anchor_starts_at_750_kbps() -> None:
    for c in (BufferBased(), RateBased(), Bola(), RobustMPC()):
        assert levels(c, 3000.0)[0] == 1


def test_buffer_based_on_3_mbps() -> None:
    # buffers after each chunk (hand-computed, 3000 kbps = 356,250 payload bytes/s):
    # 4.0 -> 0 (below the 5 s reservoir); 7.499 -> int(5 * 2.499 / 10) = 1; 10.366 -> 2;
    # 12.602 -> 3; 13.926 -> 4; 13.846 -> 4 ...
    assert levels(BufferBased(), 3000.0)[:7] == [1, 0, 1, 2, 3, 4, 4]


def test_rate_based_on_3_mbps() -> None:
    # the 750 kbps chunk takes 1.0526 s + 80 ms: 3000 kbit / 1.1326 s = 2648.8 kbps -> 1850;
    # the 1850 kbps chunks measure 2764.8 kbps: 2850 is never reached
    assert levels(RateBased(), 3000.0) == [1] + [3] * 11


def test_bola_on_3_mbps() -> None:
    # after chunk 0: placeholder 11.754 s * 0.99 = 11.636, effective buffer 15.636 s; the
    # scores (Vp * (u + gp) - 15.636) / bitrate peak at 1200 kbps, below the 1850 that the
    # throughput allows, so BOLA-O lets it climb one rung at a time
    assert levels(Bola(), 3000.0) == [1, 2] + [3] * 10


def test_robust_mpc_on_3_mbps() -> None:
    # after chunk 0 the prediction is 2648.8 kbps with no error: [1850, 2850 x 4] is the best
    # 5-chunk plan (2850 would stall 0.304 s at once with 4 s buffered), so 1850 comes first
    assert levels(RobustMPC(), 3000.0) == [1, 3, 3] + [4] * 9


@pytest.mark.parametrize(
    ("controller", "expected"),
    [
        (BufferBased(), [1, 0, 1, 3, 5, 5]),
        (RateBased(), [1, 5, 5, 5, 5, 5]),
        (Bola(), [1, 2, 4, 5, 5, 5]),
        (RobustMPC(), [1, 5, 5, 5, 5, 5]),
    ],
)
def test_fast_link(controller: Controller, expected: list[int]) -> None:
    assert levels(controller, 100_000.0)[:6] == expected


@pytest.mark.parametrize("controller", [BufferBased(), RateBased(), Bola(), RobustMPC()])
def test_link_below_the_lowest_rung(controller: Controller) -> None:
    # 200 kbps: every anchor falls to 300 kbps after the first chunk and stays there
    assert levels(controller, 200.0) == [1] + [0] * 11
