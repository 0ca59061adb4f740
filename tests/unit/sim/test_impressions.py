"""Home-page impressions: the uniform logging policy, the cascade click model driven by the
hidden per-(country, variant) affinity, and their consistency with the plays that follow."""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from sim_case import Run
from streamsense.events import validate_event
from streamsense_sim.catalogue import VARIANT_STYLES
from streamsense_sim.impressions import (
    ROW_SLOTS,
    affinity,
    cascade_play_probability,
    duplicated,
    home_rows,
    slot_play_probability,
)


def _ms(event: dict[str, Any]) -> int:
    return round(validate_event(event).occurred_at.timestamp() * 1000)


def _visits(run: Run) -> dict[tuple[str, str], list[dict[str, Any]]]:
    rows: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for e in run.events:
        if e["type"] == "impression":
            rows[(e["payload"]["profile_id"], e["occurred_at"])].append(e)
    return rows


def test_click_model_by_hand() -> None:
    q = slot_play_probability(np.array([0, 2, 0]), np.array([False, True, False]), np.array([0.0, math.log(2.0), 10.0]))
    assert q.tolist() == [0.05, 0.05 * 0.85**2 * 1.5 * 2.0, 0.9]  # the last is capped at Q_MAX
    assert np.allclose(cascade_play_probability(np.array([[0.1, 0.2, 0.5]])), [[0.1, 0.9 * 0.2, 0.9 * 0.8 * 0.5]])
    rows = np.array([[3, 1, 3, 2, 1], [4, 5, 6, 7, 8]])
    assert duplicated(rows).tolist() == [[False, False, True, False, True], [False] * 5]


def test_logging_policy_is_uniform_and_its_probabilities_sum_to_one(small_run: Run) -> None:
    cat = small_run.sim.catalogue
    index = {t: i for i, t in enumerate(cat.title_ids)}
    chosen: Counter[tuple[int, int]] = Counter()
    n = 0
    for e in small_run.events:
        if e["type"] != "impression":
            continue
        p = e["payload"]
        variants = cat.variants(index[p["title_id"]])
        assert 2 <= len(variants) <= 4 and p["variant_id"] in variants
        # The logging policy's probabilities over this slot's variants: 1/len each, summing to 1.
        assert p["propensity"] == 1.0 / len(variants)
        assert math.fsum([p["propensity"]] * len(variants)) == 1.0
        chosen[(len(variants), variants.index(p["variant_id"]))] += 1
        n += 1
    assert n >= 8_000
    for k in (2, 3, 4):
        total = sum(chosen[(k, i)] for i in range(k))
        for i in range(k):  # uniform within 4 binomial standard deviations
            assert abs(chosen[(k, i)] / total - 1 / k) < 4 * math.sqrt((1 / k) * (1 - 1 / k) / total)


def test_rows_are_distinct_titles_and_a_play_follows_only_the_played_slot(small_run: Run) -> None:
    starts: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in small_run.events:
        if e["type"] == "playback_start" and e["event_id"] not in small_run.truth:
            starts[e["payload"]["profile_id"]].append(e)
    played_visits = 0
    for (profile, _when), row in _visits(small_run).items():
        positions = [e["payload"]["position"] for e in row]
        assert len(set(positions)) == len(positions) and set(positions) <= set(range(ROW_SLOTS))
        assert len({e["payload"]["title_id"] for e in row}) == len(row)
        assert len({e["account_id"] for e in row}) == 1
        played = [e for e in row if e["payload"]["played"]]
        assert len(played) <= 1
        t = _ms(row[0])
        # The session the visit led to starts 8-90 s later.
        session = [s for s in starts[profile] if 8_000 <= _ms(s) - t <= 90_000]
        if not session:
            assert t >= small_run.sim.config.end_ms - 90_000  # cut by the period's end
            continue
        title = session[0]["payload"]["title_id"]
        if played:
            played_visits += 1
            assert title == played[0]["payload"]["title_id"]
        else:
            assert title not in {e["payload"]["title_id"] for e in row}
    assert played_visits >= 200


def test_only_members_browse_the_home_page(small_run: Run) -> None:
    # Attackers go straight to a title: no impression is an attack event, and none belongs to
    # an account a fraudster created.
    members = set(small_run.sim.world.account_id)
    impressions = [e for e in small_run.events if e["type"] == "impression"]
    assert not {e["event_id"] for e in impressions} & set(small_run.truth)
    assert {e["account_id"] for e in impressions} <= members


def test_play_rate_follows_the_hidden_affinity() -> None:
    """40,000 visits in one country, without favourite genres, through the real row code: at
    position 0 (no cascade before it) each variant is played at 5% x exp(affinity)."""
    from streamsense_sim import SimConfig
    from streamsense_sim.catalogue import build_catalogue
    from streamsense_sim.geo import load_geography

    geo = load_geography()
    cat = build_catalogue(SimConfig(seed=4, generated_titles=300), geo, np.full(len(geo.countries), 1.0 / len(geo.countries)))

    class Uniform:
        def sample(self, rng: np.random.Generator, country: np.ndarray, genre: np.ndarray) -> np.ndarray:
            return rng.integers(0, cat.size, size=len(country))

    c = geo.countries.index("BR")
    aff = affinity(4, len(geo.countries))
    n = 40_000
    rows = home_rows(np.random.default_rng(1), Uniform(), cat, np.full(n, c), np.full(n, c), np.full(n, -1), aff)
    assert rows.valid.all()
    first = rows.played == 0
    expected = 0.05 * np.exp(aff[c])
    for s in range(len(VARIANT_STYLES)):
        shown = rows.style[:, 0] == s
        rate = first[shown].mean()
        sd = math.sqrt(expected[s] * (1 - expected[s]) / shown.sum())
        assert abs(rate - expected[s]) < 4 * sd, (VARIANT_STYLES[s], rate, expected[s])
    # The best and worst variants differ as much as their hidden affinities say.
    best, worst = int(np.argmax(aff[c])), int(np.argmin(aff[c]))
    assert first[rows.style[:, 0] == best].mean() > 1.5 * first[rows.style[:, 0] == worst].mean()


def test_the_manifest_holds_the_hidden_truth(small_files: Path, small_run: Run) -> None:
    truth = json.loads((small_files / "manifest.json").read_text())["impressions"]
    geo = small_run.sim.geo
    aff = affinity(small_run.sim.config.seed, len(geo.countries))
    assert truth["variants"] == list(VARIANT_STYLES)
    assert set(truth["affinity"]) == set(small_run.sim.summary.members_by_country)
    for cc, values in truth["affinity"].items():
        assert np.allclose(values, aff[geo.countries.index(cc)], atol=1e-6)
    assert (truth["row_slots"], truth["base_rate"], truth["position_decay"]) == (10, 0.05, 0.85)
