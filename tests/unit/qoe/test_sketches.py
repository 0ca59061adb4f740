"""The throughput sketch: merges equal a direct computation within DDSketch's error bound,
and the byte encoding round-trips exactly."""

from __future__ import annotations

import numpy as np
import pytest
from streamsense.qoe.sketches import RELATIVE_ACCURACY, QuantileSketch, SketchFormatError, merged

QS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)


def exact(values: np.ndarray, q: float) -> float:
    # DDSketch's rank convention: the value of rank floor(q * (n - 1)) in sorted order
    return float(np.sort(values)[int(q * (len(values) - 1))])


def test_merged_shards_match_direct_quantiles_within_bound() -> None:
    rng = np.random.default_rng(7)
    # throughput-like: a slow mode (3G, ~600 kbps) and a fast one (~15 Mbps), 4 orders apart
    values = np.concatenate([rng.lognormal(6.4, 0.6, 4000), rng.lognormal(9.6, 0.4, 6000)])
    rng.shuffle(values)
    parts = np.array_split(values, 7)
    combined = merged(QuantileSketch.of(p) for p in parts)
    direct = QuantileSketch.of(values)
    assert combined.count == direct.count == 10_000
    for q in QS:
        # bin counts add up: the merge answers exactly what one sketch of everything would
        assert combined.quantile(q) == direct.quantile(q)
        truth = exact(values, q)
        assert abs(combined.quantile(q) - truth) <= RELATIVE_ACCURACY * truth + 1e-9, q
    assert combined.sum == pytest.approx(values.sum())
    assert combined.min == values.min() and combined.max == values.max()


def test_mean_inverse_within_bound() -> None:
    values = np.array([250.0, 500.0, 1000.0, 4000.0])
    sketch = QuantileSketch.of(values)
    truth = float(np.mean(1 / values))  # (4 + 2 + 1 + 0.25) / 4 / 1000
    assert truth == pytest.approx(0.0018125)
    assert sketch.mean_inverse() == pytest.approx(truth, rel=RELATIVE_ACCURACY)


def test_encoding_round_trip_and_size() -> None:
    rng = np.random.default_rng(1)
    sketch = QuantileSketch.of(rng.lognormal(8, 1.5, 20_000))
    sketch.add(0.0)  # a stalled interval: zero throughput goes to the zero bin
    data = sketch.to_bytes()
    back = QuantileSketch.from_bytes(data)
    assert back == sketch
    assert back.count == 20_001 and back.quantile(0.0) == 0.0
    assert back.quantile(0.5) == sketch.quantile(0.5)
    assert len(data) < 2_000  # fits many times over in a 400 KB DynamoDB item
    empty = QuantileSketch.from_bytes(QuantileSketch().to_bytes())
    assert empty.count == 0 and empty.quantile(0.5) is None


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        QuantileSketch().add(-1.0)
    with pytest.raises(ValueError):
        QuantileSketch().add(float("nan"))
    with pytest.raises(SketchFormatError):
        QuantileSketch.from_bytes(b"XX" + bytes(60))
    good = QuantileSketch.of([1.0, 2.0]).to_bytes()
    with pytest.raises(SketchFormatError):
        QuantileSketch.from_bytes(good + b"\x00")
