"""The title catalogue and how popular each title is, where, and when.

With a data dir the titles are MovieLens ``movies.csv`` (title ids = MovieLens movieIds, so
exports join with ratings.csv) and base popularity is each movie's number of ratings in
``ratings.csv`` (a real long tail); without one, ``generated_titles`` titles get Zipf(0.9)
popularity. Per title the simulator adds a synthetic original language (English for 90% of
MovieLens titles and 75% of generated ones, the rest drawn from the members' language mix), a
runtime (log-normal around 105 min, shorter for children's
and animated titles) and a platform release date.

Demand for title t in country c at time x::

    w(c, t, x) = taste(c, t) * (base(t) + boost(t) * exp(-(x - release(t)) / tau(t)))

Each title has 2-4 creative variants (artwork / trailer / synopsis treatments, drawn from
``VARIANT_STYLES``; ids are the style names, listed in catalogue.csv) for the home-page
impressions (see ``impressions``).

with w = 0 before the release: new releases (``new_releases_per_week``) spike at launch and
decay with a time constant of about a week. ``taste`` is the regional difference: a per-country
genre affinity (log-normal), a 3x preference for titles in one of the country's languages, and
per-country per-title noise (so each country has its own hits).
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from streamsense_sim.config import SimConfig
from streamsense_sim.geo import Geography, country_languages

#: MovieLens' genre vocabulary (used for generated titles too, so both catalogues look alike).
GENRES = (
    "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "IMAX", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)  # fmt: skip
#: Creative treatments a title's variants are drawn from (a variant id is its style name).
VARIANT_STYLES = (
    "art-character", "art-ensemble", "art-action-scene", "art-landscape", "art-title-card",
    "trailer-story", "trailer-action", "trailer-mood", "synopsis-plot", "synopsis-hook",
    "synopsis-cast",
)  # fmt: skip
DAY_MS = 86_400_000
_YEAR = re.compile(r"\((\d{4})\)\s*$")


def genre_affinity(seed: int, n_countries: int) -> np.ndarray:
    """(C, G) log-affinity of each country for each genre (shared by titles and profiles)."""
    return np.random.default_rng([seed, 101]).normal(0.0, 0.6, size=(n_countries, len(GENRES)))


@dataclass
class Catalogue:
    title_ids: tuple[str, ...]
    names: tuple[str, ...]
    genres: np.ndarray  # (T, G) bool
    language: tuple[str, ...]
    duration_s: np.ndarray  # float64
    year: np.ndarray  # int64
    release_ms: np.ndarray  # int64: when the title became available on the platform
    base: np.ndarray  # float64 long-tailed base popularity
    boost: np.ndarray  # float64 launch spike height (0 for catalogue titles)
    tau_ms: np.ndarray  # float64 decay time constant of the spike
    dubbed: np.ndarray  # bool: dubbed into every language (else original audio + subtitles)
    var_start: np.ndarray  # CSR: title t's variants are var_style[var_start[t]:var_start[t + 1]]
    var_style: np.ndarray  # index into VARIANT_STYLES
    source: str
    _taste: dict[int, np.ndarray] = field(default_factory=dict, repr=False)
    _genre_affinity: np.ndarray | None = field(default=None, repr=False)
    _seed: int = 0

    @property
    def size(self) -> int:
        return len(self.title_ids)

    def new_releases(self, start_ms: int, end_ms: int) -> np.ndarray:
        return np.flatnonzero((self.boost > 0) & (self.release_ms >= start_ms) & (self.release_ms < end_ms))

    def genre_affinity(self, n_countries: int) -> np.ndarray:
        """(C, G) log-affinity of each country for each genre."""
        if self._genre_affinity is None:
            self._genre_affinity = genre_affinity(self._seed, n_countries)
        return self._genre_affinity

    def taste(self, country: int, geo: Geography) -> np.ndarray:
        """(T,) multiplicative regional taste of one country for every title."""
        cached = self._taste.get(country)
        if cached is not None:
            return cached
        aff = self.genre_affinity(len(geo.countries))[country]
        n_genres = np.maximum(self.genres.sum(axis=1), 1)
        genre_term = np.exp((self.genres @ aff) / n_genres)
        langs = set(country_languages(geo.countries[country])[0])
        local = np.array([lang in langs for lang in self.language])
        rng = np.random.default_rng([self._seed, 102, country])
        noise = rng.lognormal(0.0, 0.5, size=self.size)
        taste = genre_term * np.where(local, 3.0, 1.0) * noise
        self._taste[country] = taste
        return taste

    def demand(self, country: int, at_ms: int, geo: Geography) -> np.ndarray:
        """(T,) unnormalized demand of one country at one instant."""
        age = at_ms - self.release_ms
        spike = self.boost * np.exp(-np.maximum(age, 0) / self.tau_ms)
        w = self.taste(country, geo) * (self.base + spike)
        return np.where(age >= 0, w, 0.0)

    def variants(self, title: int) -> tuple[str, ...]:
        lo, hi = int(self.var_start[title]), int(self.var_start[title + 1])
        return tuple(VARIANT_STYLES[v] for v in self.var_style[lo:hi].tolist())

    def to_rows(self) -> list[list[str]]:
        rows = [["title_id", "name", "genres", "language", "duration_s", "year", "release_ms", "dubbed", "variants"]]
        for i in range(self.size):
            rows.append(
                [
                    self.title_ids[i],
                    self.names[i],
                    "|".join(g for g, on in zip(GENRES, self.genres[i], strict=True) if on),
                    self.language[i],
                    f"{self.duration_s[i]:.0f}",
                    str(int(self.year[i])),
                    str(int(self.release_ms[i])),
                    "1" if self.dubbed[i] else "0",
                    "|".join(self.variants(i)),
                ]
            )
        return rows


def _read_movielens(data_dir: Path) -> tuple[list[str], list[str], list[list[str]], np.ndarray, np.ndarray] | None:
    folder = data_dir / "movielens" / "ml-latest-small"
    movies = folder / "movies.csv"
    if not movies.is_file():
        return None
    ids: list[str] = []
    names: list[str] = []
    genres: list[list[str]] = []
    years: list[int] = []
    with movies.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            ids.append(row["movieId"].strip())
            title = row["title"].strip()
            names.append(title)
            genres.append([g for g in row["genres"].split("|") if g in GENRES])
            m = _YEAR.search(title)
            years.append(int(m.group(1)) if m else 0)
    year = np.array(years, dtype=np.int64)
    year[year == 0] = int(np.median(year[year > 0]))
    counts = np.zeros(len(ids))
    ratings = folder / "ratings.csv"
    if ratings.is_file():
        index = {m: i for i, m in enumerate(ids)}
        tally: Counter[str] = Counter()
        with ratings.open(newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            next(reader, None)
            for fields_ in reader:
                tally[fields_[1]] += 1
        for movie, n in tally.items():
            if movie in index:
                counts[index[movie]] = n
    return ids, names, genres, year, counts


def build_catalogue(config: SimConfig, geo: Geography, member_weight: np.ndarray) -> Catalogue:
    """``member_weight``: (C,) share of members per country (for the language mix)."""
    rng = np.random.default_rng([config.seed, 100])
    ml = _read_movielens(config.data_dir) if config.data_dir else None
    if ml is not None:
        ids, names, genre_lists, year, counts = ml
        source = "movielens"
        # Ratings counts are the long tail; +0.5 keeps never-rated titles playable but rare.
        base: np.ndarray = (counts + 0.5) ** 1.1
    else:
        n = config.generated_titles
        ids = [f"t{i:05d}" for i in range(n)]
        names = [f"Generated Title {i:05d}" for i in range(n)]
        k = rng.choice([1, 2, 3], size=n, p=[0.4, 0.4, 0.2])
        genre_lists = [list(rng.choice(GENRES, size=int(j), replace=False)) for j in k]
        year = np.clip(2024 - rng.exponential(12.0, size=n).astype(np.int64), 1950, 2024)
        source = "generated"
        ranks = rng.permutation(n) + 1
        base = 1000.0 / ranks**0.9
    t = len(ids)
    genres = np.array([[g in gl for g in GENRES] for gl in genre_lists], dtype=bool)

    # Original language: mostly English; the rest follows the members' language mix.
    mix: dict[str, float] = {}
    for ci in np.flatnonzero(member_weight > 0):
        codes, shares = country_languages(geo.countries[ci])
        for code, share in zip(codes, shares, strict=True):
            mix[code] = mix.get(code, 0.0) + float(member_weight[ci]) * share
    mix.pop("en", None)
    other = sorted(mix)
    other_p = np.array([mix[c] for c in other])
    if len(other) and other_p.sum() > 0:
        drawn = rng.choice(len(other), size=t, p=other_p / other_p.sum())
        # MovieLens is mostly US/UK cinema; a generated catalogue is more international.
        english = rng.random(t) < (0.9 if source == "movielens" else 0.75)
        language = tuple("en" if english[i] else other[int(drawn[i])] for i in range(t))
    else:
        language = tuple("en" for _ in range(t))

    kids = genres[:, GENRES.index("Children")] | genres[:, GENRES.index("Animation")]
    median_min = np.where(kids, 90.0, 105.0)
    duration_s = np.round(np.clip(median_min * rng.lognormal(0.0, 0.18, size=t), 45, 240) * 60.0)

    start = config.start_ms
    # Catalogue titles have been on the platform for a while (up to 5 years).
    release_ms = start - rng.integers(30, 5 * 365, size=t) * DAY_MS - rng.integers(0, DAY_MS, size=t)
    boost = np.zeros(t)
    tau_ms = np.full(t, 7.0 * DAY_MS)
    # New releases launch from two weeks before the period (still decaying) to its end.
    window_days = config.days + 14
    n_new = min(int(rng.poisson(config.new_releases_per_week * window_days / 7.0)), t // 4)
    if n_new:
        recent = np.argsort(-year, kind="stable")[: max(n_new * 4, 1)]
        chosen = rng.choice(recent, size=n_new, replace=False)
        release_ms[chosen] = start - 14 * DAY_MS + rng.integers(0, window_days * DAY_MS, size=n_new)
        peak = float(np.quantile(base, 0.999))
        boost[chosen] = peak * rng.lognormal(0.0, 0.6, size=n_new)
        tau_ms[chosen] = DAY_MS * rng.lognormal(np.log(7.0), 0.3, size=n_new)
    # Popular titles are dubbed everywhere; the rest play in the original with subtitles.
    dubbed = base >= np.quantile(base, 0.5)
    dubbed[boost > 0] = True
    # Creative variants (own generator: the rest of the catalogue does not depend on them).
    vr = np.random.default_rng([config.seed, 103])
    n_var = vr.integers(2, 5, size=t)
    var_start = np.concatenate([[0], np.cumsum(n_var)]).astype(np.int64)
    keys = vr.random((t, len(VARIANT_STYLES)))
    ranked = np.argsort(keys, axis=1)
    var_style = ranked[np.arange(len(VARIANT_STYLES))[None, :] < n_var[:, None]].astype(np.int64)
    return Catalogue(
        title_ids=tuple(ids),
        names=tuple(names),
        genres=genres,
        language=language,
        duration_s=duration_s,
        year=year,
        release_ms=release_ms.astype(np.int64),
        base=base.astype(np.float64),
        boost=boost,
        tau_ms=tau_ms,
        dubbed=dubbed,
        var_start=var_start,
        var_style=var_style,
        source=source,
        _seed=config.seed,
    )
