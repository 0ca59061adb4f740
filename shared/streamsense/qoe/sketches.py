"""A mergeable quantile sketch for non-negative measurements (throughput, prediction ratios,
startup delays): DDSketch (Masson et al., VLDB 2019) from Datadog's ``ddsketch`` package, with
a 1% relative-accuracy guarantee on every quantile, and a compact byte encoding for DynamoDB.

Why DDSketch: quantiles of throughput span four orders of magnitude (50 kbps on a stalled 3G
link, 500 Mbps on fibre) and what a player needs is a *relative* guarantee (a 1% error on the
10th percentile, whatever its size); merging two sketches is exact (bin counts add up), so
per-shard, per-day partial sketches combine into any window and any coarser segment.

Encoding (version 1, ~1-2 bytes per occupied bin): magic ``b"Q1"``, relative accuracy, count,
sum, min, max, zero count as little-endian float64, then the first key (zigzag varint), the
number of bins and every bin count between the lowest and the highest occupied key as varints.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Sequence

from ddsketch import DDSketch

RELATIVE_ACCURACY = 0.01
_MAGIC = b"Q1"
_HEADER = struct.Struct("<6d")


class SketchFormatError(ValueError):
    """The bytes are not a sketch this code wrote."""


def _put_varint(out: bytearray, n: int) -> None:
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return


def _get_varint(data: bytes, pos: int) -> tuple[int, int]:
    shift = 0
    value = 0
    while True:
        if pos >= len(data):
            raise SketchFormatError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise SketchFormatError("varint too long")


def _zigzag(n: int) -> int:
    return (n << 1) ^ (n >> 63)


def _unzigzag(n: int) -> int:
    return (n >> 1) ^ -(n & 1)


class QuantileSketch:
    """Non-negative values with integer weights; quantiles within 1% relative error."""

    __slots__ = ("_s",)

    def __init__(self) -> None:
        self._s = DDSketch(RELATIVE_ACCURACY)

    @classmethod
    def of(cls, values: Iterable[float]) -> QuantileSketch:
        sketch = cls()
        for v in values:
            sketch.add(v)
        return sketch

    @property
    def count(self) -> int:
        return int(self._s.count)

    @property
    def sum(self) -> float:
        return float(self._s.sum)

    @property
    def min(self) -> float | None:
        return float(self._s._min) if self.count else None

    @property
    def max(self) -> float | None:
        return float(self._s._max) if self.count else None

    def add(self, value: float, weight: int = 1) -> None:
        if not (value >= 0.0 and math.isfinite(value)):
            raise ValueError(f"sketch values must be finite and non-negative, got {value!r}")
        self._s.add(float(value), float(weight))

    def merge(self, other: QuantileSketch) -> None:
        self._s.merge(other._s)

    def quantile(self, q: float) -> float | None:
        """The value at rank q * (count - 1) (None when empty), within 1% of the exact one."""
        value = self._s.get_quantile_value(q)
        return None if value is None else float(value)

    def quantiles(self, qs: Sequence[float]) -> dict[str, float]:
        """{"p10": ..., "p50": ...} for the given levels; empty when the sketch is."""
        out: dict[str, float] = {}
        for q in qs:
            value = self.quantile(q)
            if value is not None:
                out[f"p{round(q * 100):02d}"] = value
        return out

    def mean_inverse(self) -> float | None:
        """E[1 / X] from the bins (each bin's representative value; zeros excluded), within 1%:
        the expected download time per bit when X is a throughput."""
        store = self._s._store
        if not store.count:
            return None
        mapping = self._s._mapping
        total = 0.0
        for i, c in enumerate(store.bins):
            if c:
                total += c / mapping.value(i + store.offset)
        return total / store.count

    # ---- encoding ------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        s = self._s
        store = s._store
        out = bytearray(_MAGIC)
        out += _HEADER.pack(
            RELATIVE_ACCURACY,
            float(s.count),
            float(s.sum),
            float(s._min) if s.count else 0.0,
            float(s._max) if s.count else 0.0,
            float(s._zero_count),
        )
        if store.count:
            lo, hi = store.min_key, store.max_key
            _put_varint(out, _zigzag(lo))
            _put_varint(out, hi - lo + 1)
            for key in range(lo, hi + 1):
                c = store.bins[key - store.offset]
                if c != int(c) or c < 0:
                    raise ValueError("only integer weights can be encoded")
                _put_varint(out, int(c))
        else:
            _put_varint(out, 0)
            _put_varint(out, 0)
        return bytes(out)

    @classmethod
    def from_bytes(cls, data: bytes) -> QuantileSketch:
        if data[:2] != _MAGIC or len(data) < 2 + _HEADER.size:
            raise SketchFormatError("not a streamsense quantile sketch (v1)")
        acc, count, total, lo_v, hi_v, zeros = _HEADER.unpack_from(data, 2)
        if acc != RELATIVE_ACCURACY:
            raise SketchFormatError(f"relative accuracy {acc} != {RELATIVE_ACCURACY}")
        pos = 2 + _HEADER.size
        zz, pos = _get_varint(data, pos)
        n_bins, pos = _get_varint(data, pos)
        sketch = cls()
        s = sketch._s
        first = _unzigzag(zz)
        binned = 0
        for i in range(n_bins):
            c, pos = _get_varint(data, pos)
            if c:
                s._store.add(first + i, float(c))
                binned += c
        if pos != len(data):
            raise SketchFormatError("trailing bytes")
        if binned + zeros != count:
            raise SketchFormatError("bin counts do not add up to the count")
        # The summary statistics are exact in the encoding; DDSketch keeps them privately.
        s._zero_count = zeros
        s._count = count
        s._sum = total
        if count:
            s._min = lo_v
            s._max = hi_v
        return sketch

    def __eq__(self, other: object) -> bool:
        return isinstance(other, QuantileSketch) and self.to_bytes() == other.to_bytes()

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"QuantileSketch(count={self.count}, p50={self.quantile(0.5)})"


def merged(sketches: Iterable[QuantileSketch]) -> QuantileSketch:
    out = QuantileSketch()
    for s in sketches:
        out.merge(s)
    return out
