"""Loader for the Netflix Top 10 exports (benchmark 3a): weekly Top 10 films + Top 10 TV per
country, and the global weekly Top 10s with hours viewed.

The traps, each handled on purpose:
- parse with ``csv.QUOTE_NONE``: a title may contain or start with a quote character, and a
  quoting parser would swallow tabs and rows up to the next quote;
- ``season_title`` "N/A" means "no season" (films, specials), not a missing value: it stays the
  literal part of the title key, and both films and TV use it;
- country code "NA" is Namibia, not a missing value (nothing here goes through pandas' NA
  guessing: every field stays the string it is);
- a country can stop reporting (Russia after 2022-02-27): its weeks are marked unobserved,
  never filled with an empty chart.

A title is the pair (show_title, season_title), as in the exports.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
from streamsense.caching.history import DemandHistory

COUNTRY_FILES = ("all-weeks-countries.2021H2.tsv", "all-weeks-countries.2022H1.tsv")
GLOBAL_FILE = "all-weeks-global.through-2022-06-26.tsv"

COUNTRY_COLUMNS = (
    "country_name",
    "country_iso2",
    "week",
    "category",
    "weekly_rank",
    "show_title",
    "season_title",
    "cumulative_weeks_in_top_10",
)
GLOBAL_COLUMNS = (
    "week",
    "category",
    "weekly_rank",
    "show_title",
    "season_title",
    "weekly_hours_viewed",
    "runtime",
    "weekly_views",
    "cumulative_weeks_in_top_10",
)
COUNTRY_CATEGORIES = ("Films", "TV")
LIST_LENGTH = 10

Title = tuple[str, str]


class Top10FormatError(ValueError):
    """The export does not have the shape this loader knows: never guessed at."""


@dataclass(frozen=True)
class ChartRow:
    country_name: str
    country: str  # ISO 3166-1 alpha-2 as published ("NA" is Namibia)
    week: date  # the Sunday that ends the week
    category: str  # "Films" or "TV"
    rank: int  # 1..10 within (country, week, category)
    title: Title  # (show_title, season_title); season "N/A" = no season
    cumulative_weeks: int


@dataclass(frozen=True)
class GlobalRow:
    week: date
    category: str  # "Films (English)", "Films (Non-English)", "TV (English)", "TV (Non-English)"
    rank: int
    title: Title
    hours_viewed: float


def _rows(path: Path, columns: Sequence[str]) -> Iterable[tuple[int, dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None or tuple(header) != tuple(columns):
            raise Top10FormatError(f"{path.name}: header {header!r}, expected {list(columns)!r}")
        for line_no, fields in enumerate(reader, start=2):
            if len(fields) != len(columns):
                raise Top10FormatError(f"{path.name}:{line_no}: {len(fields)} fields, expected {len(columns)}")
            yield line_no, dict(zip(columns, fields, strict=True))


def _int(value: str, where: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise Top10FormatError(f"{where}: {value!r} is not an integer") from None


def read_country_rows(path: Path) -> list[ChartRow]:
    out: list[ChartRow] = []
    for line_no, r in _rows(path, COUNTRY_COLUMNS):
        where = f"{path.name}:{line_no}"
        if r["category"] not in COUNTRY_CATEGORIES:
            raise Top10FormatError(f"{where}: unknown category {r['category']!r}")
        if len(r["country_iso2"]) != 2:
            raise Top10FormatError(f"{where}: country code {r['country_iso2']!r}")
        rank = _int(r["weekly_rank"], where)
        if not 1 <= rank <= LIST_LENGTH:
            raise Top10FormatError(f"{where}: rank {rank}")
        out.append(
            ChartRow(
                country_name=r["country_name"],
                country=r["country_iso2"],
                week=date.fromisoformat(r["week"]),
                category=r["category"],
                rank=rank,
                title=(r["show_title"], r["season_title"]),
                cumulative_weeks=_int(r["cumulative_weeks_in_top_10"], where),
            )
        )
    return out


def read_global_rows(path: Path) -> list[GlobalRow]:
    out: list[GlobalRow] = []
    for line_no, r in _rows(path, GLOBAL_COLUMNS):
        where = f"{path.name}:{line_no}"
        rank = _int(r["weekly_rank"], where)
        try:
            hours = float(r["weekly_hours_viewed"])
        except ValueError:
            raise Top10FormatError(f"{where}: hours {r['weekly_hours_viewed']!r}") from None
        out.append(
            GlobalRow(
                week=date.fromisoformat(r["week"]),
                category=r["category"],
                rank=rank,
                title=(r["show_title"], r["season_title"]),
                hours_viewed=hours,
            )
        )
    return out


@dataclass(frozen=True)
class Top10:
    """The exports as arrays over (week, country, title); see ``history`` for the forecaster."""

    weeks: list[date]
    countries: list[str]
    country_names: dict[str, str]
    titles: list[Title]
    is_film: np.ndarray  # [T] bool
    rank: np.ndarray  # [W, C, T] int8, 0 = not in the list
    cumulative_weeks: np.ndarray  # [W, C, T] int16, as published for charted titles
    observed: np.ndarray  # [W, C] bool: the country published its lists that week
    global_hours: np.ndarray  # [W, T] float64, 0 = not in a global list
    global_rank: np.ndarray  # [W, T] int8, 0 = not in a global list
    global_non_english: np.ndarray  # [W, T] bool: listed in a "(Non-English)" global list

    def chart(self, week: int, country: int) -> list[Title]:
        """The country's 20 titles of a week, ordered F1, T1, F2, T2, ... (rank, then films)."""
        t = np.flatnonzero(self.rank[week, country])
        order = sorted(t, key=lambda i: (int(self.rank[week, country, i]), not bool(self.is_film[i])))
        return [self.titles[i] for i in order]

    def history(self) -> DemandHistory:
        """The demand history the product's forecaster reads: a chart score per (week, country,
        title) (11 - rank: 10 for a number one, 0 when not listed), the global hours, and for
        each title its category; every array is indexed by week so it can be cut at any week."""
        score = np.where(self.rank > 0, (LIST_LENGTH + 1) - self.rank.astype(np.int16), 0).astype(np.float32)
        return DemandHistory(
            regions=list(self.countries),
            titles=[f"{s}\t{z}" for s, z in self.titles],
            demand=score,
            observed=self.observed.copy(),
            global_demand=self.global_hours.astype(np.float32),
            group=np.where(self.is_film, 0, 1).astype(np.int8),
            extra={"global_non_english": self.global_non_english.copy()},
        )


def load_top10(folder: Path) -> Top10:
    """Load the two country files and the global file from the team data folder."""
    rows: list[ChartRow] = []
    for name in COUNTRY_FILES:
        rows.extend(read_country_rows(folder / name))
    grows = read_global_rows(folder / GLOBAL_FILE)
    return build_top10(rows, grows)


def build_top10(rows: Sequence[ChartRow], grows: Sequence[GlobalRow]) -> Top10:
    if not rows:
        raise Top10FormatError("no country rows")
    weeks = sorted({r.week for r in rows})
    # Weeks must be consecutive Sundays: a gap would silently shift every lag by one.
    for a, b in itertools.pairwise(weeks):
        if (b - a).days != 7:
            raise Top10FormatError(f"weeks {a} and {b} are not one week apart")
    countries = sorted({r.country for r in rows})
    names: dict[str, str] = {}
    for r in rows:
        if names.setdefault(r.country, r.country_name) != r.country_name:
            raise Top10FormatError(f"country {r.country!r} has two names")
    categories: dict[Title, str] = {}
    for r in rows:
        if categories.setdefault(r.title, r.category) != r.category:
            raise Top10FormatError(f"title {r.title!r} is listed as both films and TV")
    week_set = set(weeks)
    global_titles = {g.title for g in grows if g.week in week_set}
    titles = sorted(set(categories) | global_titles)
    wi = {w: i for i, w in enumerate(weeks)}
    ci = {c: i for i, c in enumerate(countries)}
    ti = {t: i for i, t in enumerate(titles)}
    W, C, T = len(weeks), len(countries), len(titles)
    rank = np.zeros((W, C, T), np.int8)
    cumulative = np.zeros((W, C, T), np.int16)
    counts = np.zeros((W, C, 2), np.int16)
    for r in rows:
        w, c, t = wi[r.week], ci[r.country], ti[r.title]
        if rank[w, c, t]:
            raise Top10FormatError(f"{r.country} {r.week}: {r.title!r} listed twice")
        rank[w, c, t] = r.rank
        cumulative[w, c, t] = r.cumulative_weeks
        counts[w, c, COUNTRY_CATEGORIES.index(r.category)] += 1
    observed = counts.sum(axis=2) > 0
    partial = observed & ((counts[..., 0] != LIST_LENGTH) | (counts[..., 1] != LIST_LENGTH))
    if partial.any():
        w, c = (int(i[0]) for i in np.nonzero(partial))
        raise Top10FormatError(f"{countries[c]} {weeks[w]}: not 10 films + 10 TV")
    is_film = np.array([categories.get(t, "") == "Films" for t in titles])
    # Titles only in the global lists: their category comes from the global list name.
    for g in grows:
        if g.title not in categories and g.week in week_set:
            is_film[ti[g.title]] = g.category.startswith("Films")
    ghours = np.zeros((W, T))
    grank = np.zeros((W, T), np.int8)
    gnon = np.zeros((W, T), bool)
    for g in grows:
        if g.week not in week_set:
            continue
        w, t = wi[g.week], ti[g.title]
        ghours[w, t] = g.hours_viewed
        grank[w, t] = g.rank
        gnon[w, t] = "Non-English" in g.category
    return Top10(
        weeks=weeks,
        countries=countries,
        country_names=names,
        titles=titles,
        is_film=is_film,
        rank=rank,
        cumulative_weeks=cumulative,
        observed=observed,
        global_hours=ghours,
        global_rank=grank,
        global_non_english=gnon,
    )
