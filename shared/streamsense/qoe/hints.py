"""ABR hints per segment, in the shape a player fetches at session start.

Each part of a hint comes from the most specific segment level that has enough samples for
it (region x network x device, then region x network, network, all traffic) and says which
level, how many samples and how old the newest one is:

- ``startup``: the bitrate to fetch the first chunk at. The first chunk's download time is
  all startup delay, which QoE charges like a stall (4.3 per second), so the choice weighs
  the bitrate gained against the expected download time under the segment's *early-session*
  throughput distribution (``E[1/T]`` from the sketch, exact to 1%) and the switch to the rung
  the player will move to next. On most networks this picks the lowest rung: a 4 s chunk at
  b Mbps costs 4.3 * 4 * b / T, which only pays back above ~9 Mbps of early throughput.
- ``throughput``: the prior, quantiles of every measurement in the segment.
- ``prediction``: how far to trust a harmonic-mean prediction. ``discount`` is the 20th
  percentile of measured / predicted throughput (a player multiplies its prediction by it);
  ``ratio_quantiles`` are there for players with their own rule.
- ``buffer``: ``target_s`` is the buffer that survives one chunk download when throughput
  falls to the 2nd percentile of that ratio (chunk duration / ratio p02), i.e. what a player
  should aim to keep; ``startup_ms`` quantiles are the segment's observed startup delays.

The quantile levels (p20 for the discount, p02 for the buffer) were chosen on the hint-training
half of the benchmark traces (bench/streamsense_bench/abr.py), never on its evaluation half.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from streamsense.qoe.aggregate import PREDICTOR_WINDOW, SegmentStats, load_stats
from streamsense.qoe.segments import LEVELS, Level, Segment
from streamsense.qoe.sketches import QuantileSketch
from streamsense.storage import Item, Key, Table

HINT_SK = "current"
QUANTILES = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9)
RATIO_QUANTILES = (0.02, 0.05, 0.1, 0.2, 0.5)


@dataclass(frozen=True)
class HintConfig:
    window_days: int = 7
    # fewer samples than this at a level: fall back to the next coarser one
    min_throughput: int = 200
    min_early: int = 50
    min_ratio: int = 200
    min_startup: int = 50
    # the service's encoding ladder and chunk duration (what startup_bitrate chooses from)
    ladder_kbps: tuple[int, ...] = (300, 750, 1200, 1850, 2850, 4300)
    chunk_s: float = 4.0
    # the QoE model the choice optimizes (MPC paper weights)
    stall_penalty: float = 4.3
    switch_penalty: float = 1.0
    discount_quantile: float = 0.2
    buffer_quantile: float = 0.02
    max_buffer_target_s: float = 60.0
    # re-publish a segment's hint at most this often (seconds)
    refresh_s: float = 300.0


def hint_key(segment_key: str, level: Level) -> Key:
    return (f"hint#{level}#{segment_key}", HINT_SK)


def _age_s(stats: SegmentStats, now: datetime) -> float | None:
    if stats.last_at is None:
        return None
    return round(max(0.0, (now - stats.last_at).total_seconds()), 1)


def startup_bitrate(
    early: QuantileSketch, steady_discount: float, config: HintConfig
) -> tuple[int, float]:
    """The ladder rung with the best expected QoE for the first chunk, and that value.

    value(b) = b - stall_penalty * chunk_s * b * E[1/T] - switch_penalty * |b_next - b|, with b
    and T in Mbps and b_next the highest rung under the discounted harmonic mean of T. T is
    the throughput players measure per chunk (round trip included), so chunk_s * b / T is the
    download time."""
    inv = early.mean_inverse()
    if inv is None or inv <= 0.0:
        return config.ladder_kbps[0], 0.0
    inv_mbps = inv * 1000.0
    hm_kbps = 1.0 / inv * steady_discount
    below = [b for b in config.ladder_kbps if b <= hm_kbps]
    b_next = (below[-1] if below else config.ladder_kbps[0]) / 1000.0
    best, best_value = config.ladder_kbps[0], float("-inf")
    for kbps in config.ladder_kbps:
        b = kbps / 1000.0
        value = (
            b
            - config.stall_penalty * config.chunk_s * b * inv_mbps
            - config.switch_penalty * abs(b_next - b)
        )
        if value > best_value + 1e-12:  # ties go to the lower rung
            best, best_value = kbps, value
    return best, best_value


@dataclass
class _Levels:
    """The merged stats of each level of a segment's chain (loaded lazily, cached per run)."""

    table: Table
    now: datetime
    config: HintConfig
    cache: dict[tuple[Level, str], SegmentStats] = field(default_factory=dict)

    def get(self, level: Level, key: str) -> SegmentStats:
        if (level, key) not in self.cache:
            self.cache[(level, key)] = load_stats(self.table, level, key, self.config.window_days)
        return self.cache[(level, key)]


def _pick(
    chain: Sequence[tuple[Level, SegmentStats]], size: str, minimum: int
) -> tuple[Level, SegmentStats] | None:
    """The most specific level with at least ``minimum`` samples of ``size``, else the
    coarsest level that has any."""
    for level, stats in chain:
        if _size(stats, size) >= minimum:
            return level, stats
    for level, stats in reversed(chain):
        if _size(stats, size) > 0:
            return level, stats
    return None


def _size(stats: SegmentStats, what: str) -> int:
    sketch: QuantileSketch = getattr(stats, what)
    return sketch.count


def compute_hint(
    segment: Segment,
    chain: Sequence[tuple[Level, SegmentStats]],
    now: datetime,
    config: HintConfig | None = None,
) -> dict[str, Any]:
    """The hint document for ``segment`` from its chain's stats (most specific first)."""
    config = config or HintConfig()
    doc: dict[str, Any] = {
        "segment": segment.as_dict(),
        "level": chain[0][0],
        "generated_at": now.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "window_days": config.window_days,
    }

    discount = 1.0
    picked = _pick(chain, "ratio", config.min_ratio)
    if picked:
        level, stats = picked
        rq = stats.ratio.quantiles(RATIO_QUANTILES)
        discount = min(1.0, stats.ratio.quantile(config.discount_quantile) or 1.0)
        drop = stats.ratio.quantile(config.buffer_quantile) or 1.0
        target = min(config.max_buffer_target_s, config.chunk_s / max(drop, 1e-3))
        doc["prediction"] = {
            "predictor": f"harmonic_mean_{PREDICTOR_WINDOW}",
            "discount": round(discount, 4),
            "ratio_quantiles": {k: round(v, 4) for k, v in rq.items()},
            "samples": stats.ratio.count,
            "age_s": _age_s(stats, now),
            "level": level,
        }
        doc["buffer"] = {
            "target_s": round(max(config.chunk_s, target), 2),
            "chunk_s": config.chunk_s,
            "drop_ratio": round(drop, 4),
            "samples": stats.ratio.count,
            "age_s": _age_s(stats, now),
            "level": level,
        }
    picked = _pick(chain, "tput", config.min_throughput)
    if picked:
        level, stats = picked
        doc["throughput"] = {
            "quantiles_kbps": {k: round(v, 1) for k, v in stats.tput.quantiles(QUANTILES).items()},
            "samples": stats.tput.count,
            "age_s": _age_s(stats, now),
            "level": level,
        }
    picked = _pick(chain, "early", config.min_early)
    if picked:
        level, stats = picked
        bitrate, value = startup_bitrate(stats.early, discount, config)
        inv = stats.early.mean_inverse()
        doc["startup"] = {
            "bitrate_kbps": bitrate,
            "expected_first_chunk_qoe": round(value, 3),
            "throughput_kbps": {
                k: round(v, 1) for k, v in stats.early.quantiles(QUANTILES).items()
            },
            "harmonic_mean_kbps": round(1.0 / inv, 1) if inv else None,
            "samples": stats.early.count,
            "age_s": _age_s(stats, now),
            "level": level,
        }
    picked = _pick(chain, "startup", config.min_startup)
    if picked:
        level, stats = picked
        doc.setdefault("buffer", {})["startup_ms"] = {
            "quantiles": {k: round(v) for k, v in stats.startup.quantiles((0.5, 0.9)).items()},
            "samples": stats.startup.count,
            "age_s": _age_s(stats, now),
            "level": level,
        }
    own = chain[0][1]
    doc["sessions"] = own.sessions
    doc["stall_share"] = round(own.stalled / own.heartbeats, 4) if own.heartbeats else None
    return doc


def publish_hints(
    table: Table,
    segments: Iterable[Segment],
    now: datetime,
    config: HintConfig | None = None,
    *,
    force: bool = False,
) -> list[dict[str, Any]]:
    """Recompute and store the hints of ``segments`` and of every coarser segment above them,
    skipping those published less than ``refresh_s`` ago (unless ``force``). One BatchGetItem
    for the current hints, Query calls only for the stale ones, one BatchWriteItem round."""
    config = config or HintConfig()
    wanted: dict[Key, tuple[Segment, int]] = {}
    for seg in sorted(set(segments)):
        for i, (level, key) in enumerate(seg.chain()):
            wanted.setdefault(hint_key(key, level), (seg, i))
    current = {} if force else table.get_many(list(wanted))
    levels = _Levels(table, now, config)
    items: list[Item] = []
    docs = []
    for hkey, (seg, start) in wanted.items():
        old = current.get(hkey)
        if old is not None:
            age = now - datetime.fromisoformat(old["hint"]["generated_at"].replace("Z", "+00:00"))
            if age.total_seconds() < config.refresh_s:
                continue
        chain = [(level, levels.get(level, key)) for level, key in seg.chain()[start:]]
        doc = compute_hint(seg, chain, now, config)
        if start > 0:  # a coarser segment's hint: only the fields that describe it
            keep = LEVELS[start]
            doc["segment"] = {k: v for k, v in seg.as_dict().items() if k in _LEVEL_FIELDS[keep]}
        docs.append(doc)
        items.append({"pk": hkey[0], "sk": hkey[1], "hint": doc})
    table.put_many(items)
    return docs


_LEVEL_FIELDS: dict[Level, frozenset[str]] = {
    "rnd": frozenset({"region", "network", "device"}),
    "rn": frozenset({"region", "network"}),
    "n": frozenset({"network"}),
    "all": frozenset(),
}


def read_hint(table: Table, segment: Segment) -> dict[str, Any] | None:
    """What a player gets at session start: its segment's hint, else the most specific
    coarser one published (a segment never seen yet still gets its network's hint)."""
    keys = [hint_key(key, level) for level, key in segment.chain()]
    found = table.get_many(keys)
    for k in keys:
        if k in found:
            hint: dict[str, Any] = found[k]["hint"]
            return hint
    return None
