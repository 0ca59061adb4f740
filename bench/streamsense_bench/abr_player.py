"""The product side of the ABR benchmark: a robustMPC that starts from streamsense's hint for
its segment (the reference for how a player uses the hint document of streamsense.qoe.hints).

What it takes from the hint, and what it does with it:
- ``startup.bitrate_kbps``: the first chunk's rung (the anchors all start at 750 kbps);
- ``prediction.discount``: the prediction is at most the harmonic mean times that discount
  (on top of robustMPC's own dynamic discount, see below);
- ``buffer.target_s``: the MPC objective charges ``buffer_weight`` per second the buffer ends
  the 5-chunk horizon below the target (robustMPC's horizon ends wherever its 5 chunks leave
  the buffer, so it spends buffer it will need when the link drops).

Two changes that need no hint: robustMPC's error term counts only *over*-predictions
(measured below predicted); an under-prediction is no risk and the reference's symmetric
error keeps it cautious for five chunks after every upswing. And before playback starts it
keeps buffering while the next chunk's predicted download would outlast the buffer, instead
of starting into a stall it can already see (a stall costs the same as startup delay per
second, but a stall is also an interruption).

Without a hint (a segment never seen), every hinted part falls back to robustMPC's behaviour:
750 kbps first chunk, no extra discount, no buffer target.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from streamsense_bench.abr_anchors import RobustMPC, harmonic_mean, mpc_first_level, start_level
from streamsense_bench.abr_sim import RTT_S, Decision, Observation, Video

#: Per second of buffer missing from the hint's target at the horizon's end (QoE units); chosen
#: on the hint-training half of the traces.
BUFFER_WEIGHT = 0.5


@dataclass(frozen=True)
class PlayerHints:
    startup_kbps: float | None = None
    discount: float | None = None
    buffer_target_s: float | None = None

    @classmethod
    def from_hint(cls, doc: Mapping[str, Any] | None) -> PlayerHints:
        if not doc:
            return cls()
        startup = doc.get("startup") or {}
        prediction = doc.get("prediction") or {}
        buffer = doc.get("buffer") or {}
        return cls(
            startup_kbps=startup.get("bitrate_kbps"),
            discount=prediction.get("discount"),
            buffer_target_s=buffer.get("target_s"),
        )


class HintedMPC(RobustMPC):
    name = "streamsense"

    def __init__(self, hints: PlayerHints, buffer_weight: float = BUFFER_WEIGHT) -> None:
        super().__init__()
        self.hints = hints
        self.buffer_weight = buffer_weight

    def first_level(self, video: Video) -> int:
        if self.hints.startup_kbps is None:
            return start_level(video)
        level = 0
        for i, b in enumerate(video.bitrates_kbps):
            if b <= self.hints.startup_kbps:
                level = i
        return level

    def observe(self, obs: Observation) -> float:
        actual = obs.throughputs_kbps[-1]
        over = max(0.0, (self.estimates[-1] - actual) / actual) if self.estimates else 0.0
        self.errors.append(over)
        estimate = harmonic_mean(obs.throughputs_kbps[-self.window :])
        self.estimates.append(estimate)
        return estimate

    def predict(self, obs: Observation, estimate: float) -> float:
        bw = estimate / (1.0 + max(self.errors[-self.window :]))
        if self.hints.discount is not None:
            bw = min(bw, estimate * self.hints.discount)
        return bw

    def choose(self, obs: Observation) -> Decision:
        if obs.chunk == 0:
            return Decision(self.first_level(obs.video))
        bw = self.predict(obs, self.observe(obs))
        video = obs.video
        h = min(self.horizon, video.n_chunks - obs.chunk)
        target = self.hints.buffer_target_s
        level = mpc_first_level(
            obs,
            self.combos(video.n_levels, h),
            np.full(h, bw),
            buffer_target_s=target or 0.0,
            buffer_weight=self.buffer_weight if target else 0.0,
        )
        play = True
        if not obs.playing:
            next_download = video.sizes[level, obs.chunk] * 8.0 / 1000.0 / bw + RTT_S
            play = obs.buffer_s >= next_download
        return Decision(level, play=play)
