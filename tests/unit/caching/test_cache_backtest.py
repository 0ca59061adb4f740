"""Benchmark 3a's backtest never reads the future: plant a title that exists only from a late
week on (top of every chart, in the global list) and prove the hints for every earlier week are
exactly the same with and without it, and never name it; then prove the plant is not a dead
title (once it has charted, it is hinted everywhere)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import numpy as np
from streamsense_bench.cache_protocol import PRODUCT_CONFIG, product_hints
from streamsense_bench.cache_top10 import ChartRow, GlobalRow, Title, Top10, build_top10

COUNTRIES = (("NA", "Namibia"), ("DE", "Germany"), ("FR", "France"), ("JP", "Japan"))
WEEKS = [date(2021, 7, 4) + timedelta(weeks=k) for k in range(9)]
PLANT_WEEK = 6  # the planted title charts from this week on
FUTURE: Title = ("Only In The Future", "N/A")
# Small enough that the gradient-boosted model (not only its fallback) makes the late forecasts.
CONFIG = replace(PRODUCT_CONFIG, min_train_rows=50, min_train_windows=2, min_samples_leaf=5, max_iter=20)


def charts(plant: bool) -> Top10:
    rng = np.random.default_rng(7)
    pool: dict[str, list[Title]] = {
        "Films": [(f"Film {i}", "N/A") for i in range(40)],
        "TV": [(f"Show {i}", f"Show {i}: Season 1") for i in range(40)],
    }
    rows: list[ChartRow] = []
    grows: list[GlobalRow] = []
    for w, week in enumerate(WEEKS):
        for code, name in COUNTRIES:
            for category, titles in pool.items():
                # Each country charts a drifting window of its category's pool.
                start = (w * 2 + COUNTRIES.index((code, name)) * 3) % 30
                picks = [titles[start + k] for k in rng.permutation(10)]
                if plant and w >= PLANT_WEEK and category == "Films":
                    picks = [FUTURE, *picks[:9]]
                for rank, title in enumerate(picks, start=1):
                    rows.append(ChartRow(name, code, week, category, rank, title, 1))
        if plant and w >= PLANT_WEEK:
            grows.append(GlobalRow(week, "Films (English)", 1, FUTURE, 9e7))
    return build_top10(rows, grows)


def named(top: Top10, hints: dict[tuple[int, int], list[int]]) -> dict[tuple[int, int], list[Title]]:
    return {k: [top.titles[t] for t in v] for k, v in hints.items()}


def test_a_future_only_title_changes_no_earlier_hint() -> None:
    clean, planted = charts(plant=False), charts(plant=True)
    assert FUTURE not in clean.titles and FUTURE in planted.titles
    weeks = range(4, len(WEEKS))
    a = named(clean, product_hints(clean, CONFIG, weeks=weeks))
    b = named(planted, product_hints(planted, CONFIG, weeks=weeks))
    for w in range(4, PLANT_WEEK + 1):  # the hints for the plant's first week use weeks before it only
        for c in range(len(COUNTRIES)):
            assert b[(w, c)] == a[(w, c)], f"week {w}, {COUNTRIES[c][0]}: hints changed when the future changed"
            assert FUTURE not in b[(w, c)]
    # Once it has charted, every country is told to hold it (it is a live title, not a dead one).
    assert all(FUTURE in b[(w, c)] for w in (PLANT_WEEK + 1, PLANT_WEEK + 2) for c in range(len(COUNTRIES)))
