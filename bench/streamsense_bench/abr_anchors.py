"""The anchors of benchmarks.md section 4, in the same simulator: buffer-based (BBA: 5 s
reservoir, 10 s cushion), rate-based (harmonic mean of the last 5 chunks), BOLA (dash.js's
BolaRule constants and its BOLA-O / placeholder-buffer logic) and robustMPC (5-chunk
horizon, harmonic mean / (1 + max error of the last 5 predictions)), following the reference
implementations of Pensieve (Mao et al. 2017: ``test/bb.py``, ``test/mpc.py``) and dash.js.
Every anchor fetches its first chunk at 750 kbps."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

from streamsense_bench.abr_sim import (
    REBUF_PENALTY,
    SMOOTH_PENALTY,
    Decision,
    Observation,
    Video,
)

START_KBPS = 750


def start_level(video: Video) -> int:
    return video.bitrates_kbps.index(START_KBPS)


def harmonic_mean(values: Sequence[float]) -> float:
    return len(values) / sum(1.0 / v for v in values)


def highest_level_below(video: Video, kbps: float) -> int:
    level = 0
    for i, b in enumerate(video.bitrates_kbps):
        if b <= kbps:
            level = i
    return level


class BufferBased:
    """BBA (Huang et al. 2014) as in Pensieve's bb.py: lowest level below the reservoir,
    highest above reservoir + cushion, linear in between."""

    name = "buffer_based"

    def __init__(self, reservoir_s: float = 5.0, cushion_s: float = 10.0) -> None:
        self.reservoir_s = reservoir_s
        self.cushion_s = cushion_s

    def start(self, video: Video) -> None:
        pass

    def choose(self, obs: Observation) -> Decision:
        if obs.chunk == 0:
            return Decision(start_level(obs.video))
        top = obs.video.n_levels - 1
        if obs.buffer_s < self.reservoir_s:
            return Decision(0)
        if obs.buffer_s >= self.reservoir_s + self.cushion_s:
            return Decision(top)
        return Decision(int(top * (obs.buffer_s - self.reservoir_s) / self.cushion_s))


class RateBased:
    """The highest level not above the harmonic mean of the last 5 chunk throughputs."""

    name = "rate_based"

    def __init__(self, window: int = 5) -> None:
        self.window = window

    def start(self, video: Video) -> None:
        pass

    def choose(self, obs: Observation) -> Decision:
        if obs.chunk == 0:
            return Decision(start_level(obs.video))
        estimate = harmonic_mean(obs.throughputs_kbps[-self.window :])
        return Decision(highest_level_below(obs.video, estimate))


# dash.js BolaRule constants
BOLA_MIN_BUFFER_S = 10.0
BOLA_BUFFER_PER_LEVEL_S = 2.0
BOLA_STABLE_BUFFER_S = 12.0  # dash.js streaming.buffer.stableBufferTime default
BOLA_PLACEHOLDER_DECAY = 0.99


class Bola:
    """dash.js's BolaRule (Spiteri et al., "From theory to practice", 2018): log utilities,
    Vp and gp such that the lowest level is chosen at 10 s of buffer and the top level at
    10 + 2 * levels seconds; BOLA-O (no up-switch beyond what the throughput supports); a
    placeholder buffer seeded at startup that decays by 1% per segment; a pause when the
    buffer is above the chosen level's target (except at the top level)."""

    name = "bola"

    def start(self, video: Video) -> None:
        b = np.asarray(video.bitrates_kbps, dtype=np.float64)
        self.bitrates = b
        self.utilities = np.log(b) - math.log(b[0]) + 1.0
        buffer_time = max(
            BOLA_STABLE_BUFFER_S, BOLA_MIN_BUFFER_S + BOLA_BUFFER_PER_LEVEL_S * len(b)
        )
        self.gp = (self.utilities[-1] - 1.0) / (buffer_time / BOLA_MIN_BUFFER_S - 1.0)
        self.vp = BOLA_MIN_BUFFER_S / self.gp
        self.placeholder = 0.0
        self.last_quality = 0

    def _quality_for_buffer(self, level_s: float) -> int:
        scores = (self.vp * (self.utilities + self.gp) - level_s) / self.bitrates
        best = 0
        for i in range(len(scores)):  # ties go to the higher level, as in dash.js (s >= score)
            if scores[i] >= scores[best]:
                best = i
        return best

    def _min_buffer(self, q: int) -> float:
        level = 0.0
        for i in range(q - 1, -1, -1):
            if self.utilities[i] < self.utilities[q]:
                bq, bi = self.bitrates[q], self.bitrates[i]
                uq, ui = self.utilities[q], self.utilities[i]
                level = max(level, self.vp * (self.gp + (bq * ui - bi * uq) / (bq - bi)))
        return level

    def _max_buffer(self, q: int) -> float:
        return float(self.vp * (self.utilities[q] + self.gp))

    def choose(self, obs: Observation) -> Decision:
        if obs.chunk == 0:
            q = start_level(obs.video)
            self.placeholder = max(0.0, self._min_buffer(q) - obs.buffer_s)
            self.last_quality = q
            return Decision(q)
        # a segment arrived: decay the placeholder and keep it below the last level's target
        self.placeholder *= BOLA_PLACEHOLDER_DECAY
        at_request = obs.buffer_s + obs.download_s[-1]
        self.placeholder = min(
            self.placeholder, max(0.0, self._max_buffer(self.last_quality) - at_request)
        )
        self.placeholder += obs.idle_s  # idle time is credited to the placeholder
        q = self._quality_for_buffer(obs.buffer_s + self.placeholder)
        q_tput = highest_level_below(obs.video, harmonic_mean(obs.throughputs_kbps[-5:]))
        if q > self.last_quality and q > q_tput:
            q = max(q_tput, self.last_quality)
        delay = max(0.0, obs.buffer_s + self.placeholder - self._max_buffer(q))
        if delay <= self.placeholder:
            self.placeholder -= delay
            delay = 0.0
        else:
            delay -= self.placeholder
            self.placeholder = 0.0
            if q == obs.video.n_levels - 1:
                delay = 0.0
        self.last_quality = q
        return Decision(q, delay)


class RobustMPC:
    """robustMPC (Yin et al. 2015) as in Pensieve's mpc.py: predicted throughput = harmonic
    mean of the last 5 chunks / (1 + max relative error of the last 5 predictions); exhaustive
    search over all level sequences of the next 5 chunks of bitrate - 4.3 * rebuffer -
    switches; first level of the best sequence (ties to the later sequence, as the reference)."""

    name = "robust_mpc"

    def __init__(self, horizon: int = 5, window: int = 5) -> None:
        self.horizon = horizon
        self.window = window
        self._combos: dict[tuple[int, int], np.ndarray] = {}

    def start(self, video: Video) -> None:
        self.estimates: list[float] = []
        self.errors: list[float] = []

    def combos(self, n_levels: int, h: int) -> np.ndarray:
        key = (n_levels, h)
        if key not in self._combos:
            self._combos[key] = np.array(
                list(itertools.product(range(n_levels), repeat=h)), dtype=np.int64
            )
        return self._combos[key]

    def observe(self, obs: Observation) -> float:
        """Update the error history with the last chunk and return the raw estimate."""
        actual = obs.throughputs_kbps[-1]
        err = abs(self.estimates[-1] - actual) / actual if self.estimates else 0.0
        self.errors.append(err)
        estimate = harmonic_mean(obs.throughputs_kbps[-self.window :])
        self.estimates.append(estimate)
        return estimate

    def predict(self, obs: Observation, estimate: float) -> float:
        return estimate / (1.0 + max(self.errors[-self.window :]))

    def choose(self, obs: Observation) -> Decision:
        if obs.chunk == 0:
            return Decision(start_level(obs.video))
        estimate = self.observe(obs)
        bw = self.predict(obs, estimate)
        return Decision(self.plan(obs, bw))

    def plan(self, obs: Observation, bw_kbps: float) -> int:
        video = obs.video
        h = min(self.horizon, video.n_chunks - obs.chunk)
        combos = self.combos(video.n_levels, h)
        return mpc_first_level(obs, combos, np.full(h, bw_kbps))


def mpc_first_level(
    obs: Observation,
    combos: np.ndarray,
    bw_kbps: np.ndarray,
    *,
    rebuf_penalty: float = REBUF_PENALTY,
    buffer_target_s: float = 0.0,
    buffer_weight: float = 0.0,
) -> int:
    """Score every level sequence in ``combos`` (rows) for the next chunks at the predicted
    per-chunk throughput ``bw_kbps`` and return the first level of the best one (ties to the
    later row). With ``buffer_weight`` > 0, ending the horizon below ``buffer_target_s`` costs
    that much per missing second (0 = the reference objective)."""
    video = obs.video
    rates = np.asarray(video.bitrates_kbps, dtype=np.float64) / 1000.0
    n, h = combos.shape
    buf = np.full(n, obs.buffer_s)
    rebuf = np.zeros(n)
    last = np.full(n, rates[obs.last_level if obs.last_level is not None else 0])
    value = np.zeros(n)
    for p in range(h):
        lv = combos[:, p]
        dl = video.sizes[lv, obs.chunk + p] * 8.0 / 1000.0 / bw_kbps[p]
        rebuf += np.maximum(dl - buf, 0.0)
        buf = np.maximum(buf - dl, 0.0) + video.chunk_s
        r = rates[lv]
        value += r - SMOOTH_PENALTY * np.abs(r - last)
        last = r
    value -= rebuf_penalty * rebuf
    if buffer_weight:
        value -= buffer_weight * np.maximum(buffer_target_s - buf, 0.0)
    best = n - 1 - int(np.argmax(value[::-1]))
    return int(combos[best, 0])
