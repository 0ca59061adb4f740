"""The Open Bandit Dataset loader and the estimator arithmetic on the real sample (needs the
team data; under CI a missing data folder fails)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from streamsense.content.ope import evaluate
from streamsense_bench.bandit_data import N_ITEMS, action_frequencies, load_obd


@pytest.fixture(scope="module")
def obd(data_dir: Path) -> dict:
    root = data_dir / "bandits" / "obd"
    return {p: load_obd(root, p) for p in ("random", "bts")}


def test_loader_reads_the_sample_as_published(obd: dict) -> None:
    rnd, bts = obd["random"], obd["bts"]
    assert (len(rnd), int(rnd.click.sum())) == (10_000, 46)
    assert (len(bts), int(bts.click.sum())) == (10_000, 69)
    assert np.all(rnd.pscore == 1 / 34)
    assert sorted(set(rnd.position.tolist())) == [0, 1, 2]
    assert np.bincount(rnd.position).tolist() == [3284, 3388, 3328]
    assert rnd.affinity.shape == (10_000, N_ITEMS)
    assert np.unique(rnd.affinity, return_counts=True)[1].tolist() == [339_421, 546, 29, 2, 2]
    assert int(rnd.engaged.sum()) == 469
    assert str(rnd.timestamp[0]) == "2019-11-24T00:03:13.442536"
    assert rnd.item_context.shape == (N_ITEMS, 4)
    assert bts.pscore.min() == pytest.approx(0.000165)


def test_bts_value_from_the_random_log(obd: dict) -> None:
    """IPW of Bernoulli-TS's per-slot action frequencies on the random log, by hand and through
    the estimator: sum over clicked random rows of freq(slot, item) * 34, over 10,000."""
    rnd, bts = obd["random"], obd["bts"]
    freq = action_frequencies(bts)
    assert np.allclose(freq.sum(axis=1), 1.0)
    assert np.bincount(bts.position).tolist() == [3339, 3262, 3399]
    clicked = rnd.click == 1
    counts = np.zeros((3, N_ITEMS))
    np.add.at(counts, (bts.position, bts.item), 1)
    by_hand = sum(
        counts[p, a] / counts[p].sum() * 34 for p, a in zip(rnd.position[clicked], rnd.item[clicked], strict=True)
    ) / 10_000
    est = evaluate(rnd.click, rnd.pscore, freq[rnd.position, rnd.item], n_boot=200)
    assert est["ipw"].value == pytest.approx(by_hand, rel=1e-12)
    assert round(est["ipw"].value, 6) == 0.005656
    assert round(est["snipw"].value, 6) == 0.005740


def test_the_benchmark_split_is_the_one_reported(obd: dict) -> None:
    from streamsense_bench.bandit import SPLIT, train_stats

    rnd = obd["random"]
    late = rnd.timestamp >= SPLIT
    assert (int((~late).sum()), int(rnd.click[~late].sum())) == (5653, 23)
    assert (int(late.sum()), int(rnd.click[late].sum())) == (4347, 23)
    stats = train_stats(rnd.subset(~late))
    assert (stats.impressions, stats.plays) == (5653, 23)
    # Engaged rows and the logged item's affinity enter the statistics as documented.
    assert int(sum(s.z[3] for s in stats.variants.values())) == int(rnd.subset(~late).engaged.sum()) == 293
    assert int(sum(s.z[4] for s in stats.variants.values())) == 13
