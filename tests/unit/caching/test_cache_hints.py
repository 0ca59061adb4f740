"""Exact fill decisions on hand-made numbers: capacity to the byte, the churn rule, ties."""

from __future__ import annotations

import numpy as np
import pytest
from streamsense.caching.hints import HintEntry, Site, plan_site, select

# Densities (requests per byte): A .0833, B .08, C .075, D .0667, E .05
TITLES = ["A", "B", "C", "D", "E"]
DEMAND = np.array([5.0, 4.0, 3.0, 2.0, 1.0])
SIZES = np.array([60, 50, 40, 30, 20])


def chosen(sel_titles: np.ndarray) -> list[str]:
    return [TITLES[i] for i in sel_titles]


def test_fills_by_density_and_skips_what_does_not_fit_exactly_to_the_byte() -> None:
    sel = select(DEMAND, SIZES, 100)
    # A (60) fits, B (50) would make 110, C (40) makes exactly 100: the site is full to the byte.
    assert chosen(sel.titles) == ["A", "C"]
    assert sel.used_bytes == 100
    assert sel.kept.tolist() == [False, False]


def test_capacity_one_byte_short_changes_the_choice() -> None:
    sel = select(DEMAND, SIZES, 99)
    # A (60); B no; C would be 100 > 99; D (30) makes 90; E would be 110.
    assert chosen(sel.titles) == ["A", "D"]
    assert sel.used_bytes == 90


def test_a_held_title_is_not_swapped_for_a_marginally_better_one() -> None:
    held = np.array([False, True, False, False, False])  # the site holds B
    sel = select(DEMAND, SIZES, 100, previous=held, keep_margin=0.1)
    # B's density .08 x 1.1 = .088 beats A's .0833: B stays; then A (110) no, C (90), D/E no.
    assert chosen(sel.titles) == ["B", "C"]
    assert sel.used_bytes == 90
    assert sel.kept.tolist() == [True, False]
    assert sel.dropped.tolist() == []


def test_a_held_title_is_swapped_for_a_clearly_better_one() -> None:
    held = np.array([False, False, False, False, True])  # the site holds E (.05 x 1.1 = .055)
    sel = select(DEMAND, SIZES, 100, previous=held, keep_margin=0.1)
    assert chosen(sel.titles) == ["A", "C"]
    assert [TITLES[i] for i in sel.dropped] == ["E"]


def test_without_margin_the_better_title_wins() -> None:
    held = np.array([False, True, False, False, False])
    sel = select(DEMAND, SIZES, 100, previous=held, keep_margin=0.0)
    assert chosen(sel.titles) == ["A", "C"]


def test_ties_break_by_demand_then_title_id() -> None:
    demand = np.array([2.0, 4.0, 4.0, 2.0])
    sizes = np.array([10, 20, 20, 10])  # every density is 0.2
    sel = select(demand, sizes, 40, title_keys=["d", "c", "b", "a"])
    # Same density: higher demand first (b and c, by id), then a and d would not fit.
    assert sel.titles.tolist() == [2, 1]
    sel = select(demand, sizes, 60, title_keys=["d", "c", "b", "a"])
    assert sel.titles.tolist() == [2, 1, 3, 0]


def test_byte_objective_ranks_by_demand() -> None:
    sel = select(DEMAND, SIZES, 100, objective="bytes")
    # value density = demand: A (60), B would be 110, C makes 100.
    assert chosen(sel.titles) == ["A", "C"]
    sel = select(np.array([1.0, 3.0]), np.array([90, 10]), 95, objective="bytes")
    assert sel.titles.tolist() == [1]


def test_zero_demand_is_never_filled_and_sizes_must_be_positive() -> None:
    sel = select(np.array([0.0, 1.0]), np.array([10, 10]), 100)
    assert sel.titles.tolist() == [1]
    with pytest.raises(ValueError):
        select(np.array([1.0]), np.array([0]), 100)


def test_plan_site_orders_entries_and_says_why() -> None:
    site = Site("fra-1", "DE", 100)
    entries = plan_site(
        site,
        TITLES,
        DEMAND,
        SIZES,
        previous=["B"],
        reasons={"B": ("own", None, "held"), "C": ("trend", "AT", "arrives from AT")},
        keep_margin=0.1,
    )
    assert entries == [
        HintEntry("B", 1, 4.0, 50, True, "own", None, "held"),
        HintEntry("C", 2, 3.0, 40, False, "trend", "AT", "arrives from AT"),
    ]
    assert sum(e.bytes for e in entries) <= site.capacity_bytes
    assert entries[1].as_dict() == {
        "title_id": "C",
        "rank": 2,
        "predicted_demand": 3.0,
        "bytes": 40,
        "kept": False,
        "reason": "trend",
        "source": "AT",
        "detail": "arrives from AT",
    }
