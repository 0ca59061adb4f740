"""Adaptive-streaming hints from QoE telemetry: per-segment throughput sketches (sketches,
segments, aggregate) and the hint documents players fetch at session start (hints)."""

from streamsense.qoe.aggregate import SegmentStats, aggregate, load_stats
from streamsense.qoe.hints import HintConfig, compute_hint, publish_hints, read_hint
from streamsense.qoe.segments import Segment, segment_of
from streamsense.qoe.sketches import QuantileSketch

__all__ = [
    "HintConfig",
    "QuantileSketch",
    "Segment",
    "SegmentStats",
    "aggregate",
    "compute_hint",
    "load_stats",
    "publish_hints",
    "read_hint",
    "segment_of",
]
