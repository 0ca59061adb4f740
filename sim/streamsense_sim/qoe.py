"""Delivery quality: what the network gives a session, what the player makes of it.

Throughput: with a data dir, each session replays a real throughput trace from
``abr/traces`` from a random offset (looped): Wi-Fi sessions draw from the FCC SD family,
Ethernet from FCC HD, cellular from the Norway HSDPA family. The trace's shape (variability,
outages) is real; for 4G and 5G its level is scaled by 4x and 10x (HSDPA is 3G). Without a
data dir, a parametric model: a log-normal level per network type (medians 1.5 / 12 / 60 /
20 / 50 Mbps for 3G / 4G / 5G / Wi-Fi / Ethernet) with an AR(1) wobble between heartbeats.

Player: a rate-based ABR on a 9-rung ladder (the envivio ladder 300-4300 kbps plus
5.8/8/16 Mbps for big screens; capped per device type), a fluid buffer model per heartbeat
interval (30 s cap), startup = one 4 s chunk at a conservative startup bitrate plus 2 RTTs
(and the throughput of the trace's first 8 s). A viewer
abandons a session once it has rebuffered 2 minutes in total.

What the player reports: ``playback_start`` carries a QoE block measured over the startup
window (the trace's first ``STARTUP_WINDOW_S`` seconds from the session's offset, the rate the
startup chunk downloads at, which also sets ``startup_ms``), the startup chunk's bitrate, no
rebuffering and one chunk buffered; each heartbeat carries the mean over the window that
follows, on the same trace: the start and the heartbeats are one continuous measurement.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

NETWORK_TYPES = ("wifi", "ethernet", "cellular_4g", "cellular_5g", "cellular_3g")
LADDER = np.array([300, 750, 1200, 1850, 2850, 4300, 5800, 8000, 16000], dtype=np.float64)
#: Highest ladder rung per device type (tv, mobile, tablet, web, console).
DEVICE_CAP = np.array([8, 4, 5, 6, 8])
FAMILY_OF = {"wifi": "fcc-sd", "ethernet": "fcc-hd", "cellular_4g": "norway-3g", "cellular_5g": "norway-3g", "cellular_3g": "norway-3g"}
SCALE_OF = {"wifi": 1.0, "ethernet": 1.0, "cellular_4g": 4.0, "cellular_5g": 10.0, "cellular_3g": 1.0}
PARAM_MEDIAN_KBPS = {"wifi": 20_000.0, "ethernet": 50_000.0, "cellular_4g": 12_000.0, "cellular_5g": 60_000.0, "cellular_3g": 1_500.0}
BUFFER_CAP_S = 30.0
CHUNK_S = 4.0
ABANDON_REBUFFER_S = 120.0
MAX_STARTUP_MS = 60_000
STARTUP_MAX_RUNG = 3  # 1850 kbps
#: Trace seconds the startup download is measured over (two chunks' worth), before the heartbeats'.
STARTUP_WINDOW_S = int(CHUNK_S * 2)


@dataclass(frozen=True)
class TraceFamily:
    name: str
    files: tuple[str, ...]
    prefix: np.ndarray  # prefix sums of 1-second bins, per trace concatenated (kbit)
    offset: np.ndarray  # start of each trace in prefix (index of its 0)
    length: np.ndarray  # seconds per trace
    total: np.ndarray  # kbit per full trace
    latency_ms: np.ndarray


def _resample(points: list[dict[str, float]]) -> tuple[np.ndarray, float]:
    dur = np.array([p["duration_ms"] for p in points], dtype=np.float64)
    bw = np.array([p["bandwidth_kbps"] for p in points], dtype=np.float64)
    lat = float(np.mean([p.get("latency_ms", 0.0) for p in points]))
    t = np.concatenate([[0.0], np.cumsum(dur)])
    kbits = np.concatenate([[0.0], np.cumsum(bw * dur / 1000.0)])
    seconds = int(t[-1] // 1000)
    if seconds < 1:
        return np.zeros(0), lat
    cum = np.interp(np.arange(seconds + 1) * 1000.0, t, kbits)
    return np.diff(cum), lat


@lru_cache(maxsize=8)
def load_family(folder: str, split: str) -> TraceFamily | None:
    path = Path(folder)
    files = sorted(p for p in path.glob("*.json"))
    if split == "train":
        files = files[0::2]
    elif split == "eval":
        files = files[1::2]
    bins: list[np.ndarray] = []
    names: list[str] = []
    lats: list[float] = []
    for f in files:
        b, lat = _resample(json.loads(f.read_text()))
        if len(b) >= 10:
            bins.append(b)
            names.append(f.name)
            lats.append(lat)
    if not bins:
        return None
    length = np.array([len(b) for b in bins], dtype=np.int64)
    # Each trace gets its own leading zero so prefix[offset + x] - prefix[offset] = sum of x bins.
    chunks = []
    offset = np.empty(len(bins), dtype=np.int64)
    pos = 0
    for i, b in enumerate(bins):
        chunks.append(np.concatenate([[0.0], np.cumsum(b)]))
        offset[i] = pos
        pos += len(b) + 1
    prefix = np.concatenate(chunks)
    total = np.array([c[-1] for c in chunks])
    return TraceFamily(path.name, tuple(names), prefix, offset, length, total, np.array(lats))


def _window_sum(fam: TraceFamily, trace: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """kbit delivered by each (looped) trace between integer seconds a and b."""

    def cum(x: np.ndarray) -> np.ndarray:
        length = fam.length[trace]
        off = fam.offset[trace]
        return (x // length) * fam.total[trace] + fam.prefix[off + x % length]

    return cum(b) - cum(a)


class ThroughputModel:
    """Per-session, per-interval throughput (kbps) and network latency."""

    def __init__(self, data_dir: Path | None, split: str) -> None:
        self.families: dict[str, TraceFamily] = {}
        if data_dir is not None:
            root = data_dir / "abr" / "traces"
            for fam in sorted(set(FAMILY_OF.values())):
                loaded = load_family(str(root / fam), split) if (root / fam).is_dir() else None
                if loaded is not None:
                    self.families[fam] = loaded
        self.source = "abr-traces" if len(self.families) == len(set(FAMILY_OF.values())) else "parametric"

    def sample(
        self,
        rng: np.random.Generator,
        net: np.ndarray,
        n_intervals: int,
        interval_s: int,
        country_factor: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Returns (startup_kbps (S,), interval_kbps (S, n_intervals), latency_ms (S,)).

        ``startup_kbps`` is the mean over the first ``STARTUP_WINDOW_S`` seconds from the
        session's offset; interval h is the heartbeat window of ``interval_s`` seconds starting
        ``STARTUP_WINDOW_S + h * interval_s`` seconds after that offset (same trace)."""
        s = len(net)
        startup = np.zeros(s)
        series = np.zeros((s, max(n_intervals, 1)))
        latency = np.zeros(s)
        if self.source == "abr-traces":
            for ni, name in enumerate(NETWORK_TYPES):
                idx = np.flatnonzero(net == ni)
                if not len(idx):
                    continue
                fam = self.families[FAMILY_OF[name]]
                trace = rng.integers(0, len(fam.length), size=len(idx))
                start = (rng.random(len(idx)) * fam.length[trace]).astype(np.int64)
                head = STARTUP_WINDOW_S
                scale = SCALE_OF[name]
                startup[idx] = _window_sum(fam, trace, start, start + head) / head * scale
                for h in range(n_intervals):
                    a = start + head + h * interval_s
                    series[idx, h] = _window_sum(fam, trace, a, a + interval_s) / interval_s * scale
                latency[idx] = fam.latency_ms[trace]
        else:
            median = np.array([PARAM_MEDIAN_KBPS[n] for n in NETWORK_TYPES])[net] * country_factor
            level = np.log(median) + rng.normal(0.0, 0.6, size=s)
            x = rng.normal(0.0, 1.0, size=s)
            startup = np.exp(level + 0.35 * x)
            for h in range(n_intervals):
                x = 0.7 * x + np.sqrt(1 - 0.7**2) * rng.normal(0.0, 1.0, size=s)
                series[:, h] = np.exp(level + 0.35 * x)
            cellular = net >= 2
            latency = np.where(cellular, 60.0, 20.0) * rng.lognormal(0.0, 0.3, size=s)
        return startup, series, latency


@dataclass
class PlayerResult:
    startup_ms: np.ndarray  # (S,) int
    startup_kbps: np.ndarray  # (S,) throughput measured over the startup window
    startup_bitrate: np.ndarray  # (S,) bitrate of the startup chunk
    n_beats: np.ndarray  # (S,) heartbeats actually sent (after abandonment)
    watched_s: np.ndarray  # (S,) content seconds played (after abandonment)
    beat_kbps: np.ndarray  # (S, H) throughput per heartbeat
    beat_bitrate: np.ndarray  # (S, H)
    beat_rebuffer_ms: np.ndarray  # (S, H) int
    beat_buffer_s: np.ndarray  # (S, H)
    beat_wall_ms: np.ndarray  # (S, H) wall-clock offset of each heartbeat from session start
    stop_wall_ms: np.ndarray  # (S,)


def play(
    startup_kbps: np.ndarray,
    series: np.ndarray,
    latency_ms: np.ndarray,
    device_type: np.ndarray,
    watched_s: np.ndarray,
    interval_s: int,
) -> PlayerResult:
    """Run the rate-based player over every session at once (loop over heartbeat index)."""
    s = len(watched_s)
    cap = LADDER[DEVICE_CAP[device_type]]
    planned = np.floor(watched_s / interval_s).astype(np.int64)
    h_max = series.shape[1]
    planned = np.minimum(planned, h_max)

    def pick(kbps: np.ndarray) -> np.ndarray:
        idx = np.searchsorted(LADDER, 0.85 * kbps, side="right") - 1
        return np.minimum(LADDER[np.clip(idx, 0, len(LADDER) - 1)], cap)

    # Players start conservatively (a rung <= 40% of the measured rate, at most 1850 kbps) so
    # that the first chunk arrives fast, then ramp up.
    idx = np.searchsorted(LADDER, 0.4 * startup_kbps, side="right") - 1
    first = np.minimum(LADDER[np.clip(idx, 0, STARTUP_MAX_RUNG)], cap)
    startup_s = CHUNK_S * first / np.maximum(startup_kbps, 50.0) + 2 * latency_ms / 1000.0 + 0.15
    startup_ms = np.minimum(np.rint(startup_s * 1000), MAX_STARTUP_MS).astype(np.int64)

    bitrate = np.zeros((s, h_max))
    rebuf = np.zeros((s, h_max), dtype=np.int64)
    buf = np.zeros((s, h_max))
    wall = np.zeros((s, h_max), dtype=np.int64)
    buffer_s = np.full(s, CHUNK_S)
    estimate = startup_kbps
    total_rebuffer = np.zeros(s)
    alive = planned > 0
    n_beats = np.zeros(s, dtype=np.int64)
    for h in range(h_max):
        active = alive & (h < planned)
        if not active.any():
            break
        br = pick(estimate)
        thr = series[:, h]
        level = buffer_s + interval_s * thr / br - interval_s
        stall = np.where(level < 0, -level, 0.0)
        buffer_s = np.where(active, np.clip(level, 0.0, BUFFER_CAP_S), buffer_s)
        stall = np.where(active, stall, 0.0)
        total_rebuffer += stall
        bitrate[:, h] = br
        rebuf[:, h] = np.rint(stall * 1000).astype(np.int64)
        buf[:, h] = np.round(buffer_s, 1)
        wall[:, h] = startup_ms + (h + 1) * interval_s * 1000 + np.rint(total_rebuffer * 1000).astype(np.int64)
        n_beats = np.where(active, h + 1, n_beats)
        estimate = np.where(active, np.maximum(thr, 1.0), estimate)
        # Viewers give up after long stalls: the session stops at this heartbeat.
        alive = alive & (total_rebuffer < ABANDON_REBUFFER_S)
    abandoned = n_beats < planned
    watched = np.where(abandoned, n_beats * float(interval_s), watched_s)
    # +1 s: the player tears down after the last frame (and never ties with a heartbeat).
    stop = (
        startup_ms
        + np.rint(watched * 1000).astype(np.int64)
        + np.rint(total_rebuffer * 1000).astype(np.int64)
        + 1000
    )
    return PlayerResult(startup_ms, startup_kbps, first, n_beats, watched, series, bitrate, rebuf, buf, wall, stop)
