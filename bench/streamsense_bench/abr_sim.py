"""The chunk-level ABR simulator of benchmarks.md section 4 (in the style of Pensieve's
``fixed_env``): a player downloads 4 s chunks one after another over a looped throughput trace.

Fixed by the protocol: 60 s buffer cap (the player sleeps in 500 ms steps while the buffer is
above it), 80 ms RTT added to every chunk download, 0.95 of the link rate carries payload,
traces loop when the video outlasts them, traces with more than 60 s of zero bandwidth are
left out (and counted by the caller). QoE per session is
``sum(bitrate_Mbps) - 4.3 * rebuffer_s - sum(|bitrate change| Mbps) - 4.3 * startup_s``.

The startup delay is the wall time from the first request until playback begins: by default
as soon as the first chunk has arrived; a controller may keep buffering (``Decision.play`` =
False) before it starts. Rebuffering is only counted after playback began, so it never
double-counts the startup delay.
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

BUFFER_CAP_S = 60.0
SLEEP_STEP_S = 0.5
RTT_S = 0.080
PAYLOAD_FACTOR = 0.95
REBUF_PENALTY = 4.3
SMOOTH_PENALTY = 1.0
STARTUP_PENALTY = 4.3
MAX_DEAD_S = 60.0
EARLY_WINDOW_S = 10.0
FAMILIES = ("norway-3g", "fcc-sd", "fcc-hd")


# ---- data ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Video:
    """Chunk sizes in bytes, ``sizes[level, chunk]``; the ladder in kbps."""

    bitrates_kbps: tuple[int, ...]
    sizes: np.ndarray
    chunk_s: float

    @property
    def n_chunks(self) -> int:
        return int(self.sizes.shape[1])

    @property
    def n_levels(self) -> int:
        return len(self.bitrates_kbps)


ENVIVIO_LADDER = (300, 750, 1200, 1850, 2850, 4300)


def load_envivio(data: Path, n_chunks: int = 48) -> Video:
    """Pensieve's envivio test video: 6 levels x 48 chunks of 4 s (the files hold 49 lines;
    simulators use the first 48)."""
    rows = []
    for level in range(len(ENVIVIO_LADDER)):
        lines = (data / "abr" / "videos" / "envivio" / f"video_size_{level}").read_text().split()
        rows.append([int(x) for x in lines[:n_chunks]])
    return Video(ENVIVIO_LADDER, np.asarray(rows, dtype=np.float64), 4.0)


class Trace:
    """A piecewise-constant link (bandwidth per period), looped forever. Lookups are by the
    cumulative payload bytes, so one chunk download is two binary searches instead of a walk
    over the trace's periods."""

    def __init__(self, name: str, durations_s: Sequence[float], bandwidth_kbps: Sequence[float]):
        if len(durations_s) != len(bandwidth_kbps) or not durations_s:
            raise ValueError(f"{name}: empty or ragged trace")
        self.name = name
        self.durations_s = np.asarray(durations_s, dtype=np.float64)
        self.bandwidth_kbps = np.asarray(bandwidth_kbps, dtype=np.float64)
        # payload bytes per second in each period
        self._rate = [b * 1000.0 / 8.0 * PAYLOAD_FACTOR for b in self.bandwidth_kbps.tolist()]
        self._t = [0.0, *np.cumsum(self.durations_s).tolist()]
        cum_b = [0.0]
        for d, r in zip(self.durations_s.tolist(), self._rate, strict=True):
            cum_b.append(cum_b[-1] + d * r)
        self._b = cum_b
        self.period_s = self._t[-1]
        self.period_bytes = cum_b[-1]

    @classmethod
    def load(cls, path: Path) -> Trace:
        rows = json.loads(path.read_text())
        return cls(
            path.name,
            [r["duration_ms"] / 1000.0 for r in rows],
            [r["bandwidth_kbps"] for r in rows],
        )

    @property
    def dead_s(self) -> float:
        """Total time with zero bandwidth (the exclusion criterion)."""
        return float(self.durations_s[self.bandwidth_kbps <= 0].sum())

    def bytes_at(self, t: float) -> float:
        loops = math.floor(t / self.period_s)
        r = t - loops * self.period_s
        i = min(bisect.bisect_right(self._t, r) - 1, len(self._rate) - 1)
        return loops * self.period_bytes + self._b[i] + self._rate[i] * (r - self._t[i])

    def time_at(self, b: float) -> float:
        """The earliest time by which ``b`` payload bytes have been delivered."""
        loops = math.floor(b / self.period_bytes)
        rb = b - loops * self.period_bytes
        if rb <= 0.0:
            # an exact loop boundary: the bytes were complete at the end of the last period
            # with a positive rate, which is the end of the previous loop's transfer
            loops -= 1
            rb = self.period_bytes
        j = bisect.bisect_left(self._b, rb)
        i = j - 1
        return loops * self.period_s + self._t[i] + (rb - self._b[i]) / self._rate[i]

    def transfer_s(self, start_s: float, n_bytes: float) -> float:
        """Seconds to deliver ``n_bytes`` of payload starting at ``start_s`` (no RTT)."""
        return self.time_at(self.bytes_at(start_s) + n_bytes) - start_s


def trace_files(data: Path, family: str) -> list[Path]:
    return sorted((data / "abr" / "traces" / family).glob("*.json"))


@dataclass(frozen=True)
class Split:
    train: list[Trace]
    evaluation: list[Trace]
    dead_train: list[str]
    dead_evaluation: list[str]


def load_split(data: Path, family: str) -> Split:
    """Even positions of the sorted file names train the hints, odd ones evaluate; traces with
    more than 60 s of zero bandwidth are left out of both halves and listed."""
    train: list[Trace] = []
    evaluation: list[Trace] = []
    dead_train: list[str] = []
    dead_eval: list[str] = []
    for i, path in enumerate(trace_files(data, family)):
        trace = Trace.load(path)
        alive = trace.dead_s <= MAX_DEAD_S
        if i % 2 == 0:
            if alive:
                train.append(trace)
            else:
                dead_train.append(trace.name)
        elif alive:
            evaluation.append(trace)
        else:
            dead_eval.append(trace.name)
    return Split(train, evaluation, dead_train, dead_eval)


# ---- the player loop ------------------------------------------------------------------------


@dataclass
class Observation:
    """What a player knows when it picks the next chunk."""

    video: Video
    chunk: int  # index of the chunk to fetch next
    buffer_s: float
    playing: bool
    last_level: int | None
    throughputs_kbps: list[float]  # one per downloaded chunk: size / (download time incl. RTT)
    download_s: list[float]
    elapsed_s: float  # wall time since the first request
    idle_s: float  # time slept after the last download (buffer above the cap)


@dataclass(frozen=True)
class Decision:
    level: int
    wait_s: float = 0.0  # idle before the request (a buffer-target pause)
    play: bool = True  # before playback began: start it now (False = keep buffering)


class Controller(Protocol):
    name: str

    def start(self, video: Video) -> None:
        """Reset per-session state."""
        ...

    def choose(self, obs: Observation) -> Decision: ...


@dataclass
class SessionLog:
    trace: str
    levels: list[int] = field(default_factory=list)
    bitrates_kbps: list[float] = field(default_factory=list)
    rebuffer_s: list[float] = field(default_factory=list)  # per chunk, after playback began
    download_s: list[float] = field(default_factory=list)
    throughput_kbps: list[float] = field(default_factory=list)
    buffer_after_s: list[float] = field(default_factory=list)
    request_at_s: list[float] = field(default_factory=list)  # wall time of each request
    position_s: list[float] = field(default_factory=list)  # playhead when each chunk arrived
    startup_s: float = 0.0
    stall_starts_s: list[float] = field(default_factory=list)  # wall time each stall began

    @property
    def early_stalls(self) -> int:
        return sum(1 for t in self.stall_starts_s if t < EARLY_WINDOW_S)


def simulate(trace: Trace, video: Video, controller: Controller) -> SessionLog:
    """Play ``video`` over ``trace`` from the trace's start with ``controller``."""
    controller.start(video)
    log = SessionLog(trace.name)
    t = 0.0  # trace (wall) time
    buffer = 0.0
    playing = False
    last: int | None = None
    idle = 0.0
    for k in range(video.n_chunks):
        d = controller.choose(
            Observation(
                video, k, buffer, playing, last, log.throughput_kbps, log.download_s, t, idle
            )
        )
        level = d.level
        if not 0 <= level < video.n_levels:
            raise ValueError(f"{controller.name}: level {level} out of range")
        if k > 0 and not playing and d.play:
            playing = True
        if d.wait_s > 0 and playing:
            wait = min(d.wait_s, buffer)  # never idle into a stall
            t += wait
            buffer -= wait
        log.request_at_s.append(t)
        size = float(video.sizes[level, k])
        delay = trace.transfer_s(t, size) + RTT_S
        t += delay
        if playing:
            rebuf = max(delay - buffer, 0.0)
            if rebuf > 0.0:
                log.stall_starts_s.append(t - rebuf)
            buffer = max(buffer - delay, 0.0)
            log.position_s.append(k * video.chunk_s - buffer)
            buffer += video.chunk_s
        else:
            rebuf = 0.0
            log.position_s.append(0.0)
            log.startup_s += delay
            buffer += video.chunk_s
        idle = 0.0
        if buffer > BUFFER_CAP_S and playing:
            idle = math.ceil((buffer - BUFFER_CAP_S) / SLEEP_STEP_S) * SLEEP_STEP_S
            buffer -= idle
            t += idle
        log.levels.append(level)
        log.bitrates_kbps.append(float(video.bitrates_kbps[level]))
        log.rebuffer_s.append(rebuf)
        log.download_s.append(delay)
        log.throughput_kbps.append(size * 8.0 / 1000.0 / delay)
        log.buffer_after_s.append(buffer)
        last = level
    return log


# ---- QoE --------------------------------------------------------------------------------------


def qoe(
    bitrates_kbps: Sequence[float],
    rebuffer_s: Sequence[float],
    startup_s: float,
    *,
    with_startup: bool = True,
) -> float:
    """The MPC paper's linear QoE: Mbps earned, minus 4.3 per second stalled, minus the size of
    every switch in Mbps, minus 4.3 per second of startup delay."""
    mbps = [b / 1000.0 for b in bitrates_kbps]
    value = sum(mbps) - REBUF_PENALTY * sum(rebuffer_s)
    value -= SMOOTH_PENALTY * sum(abs(b - a) for a, b in itertools.pairwise(mbps))
    if with_startup:
        value -= STARTUP_PENALTY * startup_s
    return value


def session_qoe(log: SessionLog, *, with_startup: bool = True) -> float:
    return qoe(log.bitrates_kbps, log.rebuffer_s, log.startup_s, with_startup=with_startup)


@dataclass(frozen=True)
class Summary:
    n: int
    qoe_mean: float
    qoe_median: float
    qoe_nostartup_mean: float
    qoe_nostartup_median: float
    rebuffer_s: float  # mean per session
    startup_s: float  # mean per session
    early_stalls: int  # total over the sessions
    early_stall_sessions: float  # share of sessions with at least one
    bitrate_kbps: float  # mean over all chunks
    switches: float  # mean per session

    def as_dict(self) -> dict[str, float | int]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def summarize(logs: Sequence[SessionLog]) -> Summary:
    q = np.array([session_qoe(s) for s in logs])
    q0 = np.array([session_qoe(s, with_startup=False) for s in logs])
    return Summary(
        n=len(logs),
        qoe_mean=float(q.mean()),
        qoe_median=float(np.median(q)),
        qoe_nostartup_mean=float(q0.mean()),
        qoe_nostartup_median=float(np.median(q0)),
        rebuffer_s=float(np.mean([sum(s.rebuffer_s) for s in logs])),
        startup_s=float(np.mean([s.startup_s for s in logs])),
        early_stalls=int(sum(s.early_stalls for s in logs)),
        early_stall_sessions=float(np.mean([s.early_stalls > 0 for s in logs])),
        bitrate_kbps=float(np.mean([np.mean(s.bitrates_kbps) for s in logs])),
        switches=float(
            np.mean([sum(a != b for a, b in itertools.pairwise(s.levels)) for s in logs])
        ),
    )
