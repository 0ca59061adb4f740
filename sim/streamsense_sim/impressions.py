"""Home-page impressions: which creative variant of each title a member was shown, and whether
they then played it (the logged data the content bandit learns from and is evaluated on).

A legitimate session starts from the home page with probability ``home_row_share`` (the rest
resume from "continue watching", search or a deep link). There the member first sees one
personalized row of ``ROW_SLOTS`` distinct titles (positions 0-9), drawn from the demand of the
country they are in (45% per slot from the profile's favourite genre, as plays are). The
*logging policy* shows each title with one of its 2-4 variants (``catalogue.VARIANT_STYLES``)
uniformly at random: propensity = 1 / (the title's number of variants), so for every slot the
policy's probabilities over the title's variants sum to 1.

Click model, a cascade (the member scans the row from position 0 and plays the first title
they want)::

    q(slot) = min(Q_MAX, BASE_RATE * POSITION_DECAY ** position
                         * (FAVOURITE_GENRE_BOOST if the title is in the profile's genre)
                         * exp(affinity[home country, variant]))
    P(played at slot i) = q(i) * prod_{j < i} (1 - q(j))

``affinity[c, s] = global[s] + local[c, s]`` with ``global ~ N(0, GLOBAL_SD)`` and
``local ~ N(0, LOCAL_SD)``, drawn per seed: the hidden truth a contextual bandit can learn
(some treatments win everywhere, others only in some countries). It is written to the
manifest with these constants, so the true play probability of any policy can be computed.
If a slot is played, the session plays that title; if none is, the member found something
else and the session's title comes from demand as usual, never one of the row's titles.
Impressions are logged when the row is shown, 8-90 s before the session starts (after the
login, when there is one), and travel on the ``playback`` stream. Attackers' sessions log no
impressions (they go straight to a title).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from streamsense_sim.catalogue import VARIANT_STYLES, Catalogue
from streamsense_sim.render import Batch, iso, new_ids

ROW_SLOTS = 10
BASE_RATE = 0.05
POSITION_DECAY = 0.85
FAVOURITE_GENRE_BOOST = 1.5
Q_MAX = 0.9
GLOBAL_SD = 0.25
LOCAL_SD = 0.45
#: Genre share of row titles (like sessions: 45% from the profile's favourite genre).
GENRE_SHARE = 0.45


def affinity(seed: int, n_countries: int) -> np.ndarray:
    """(C, S) hidden log play-rate multiplier of each creative style in each country."""
    rng = np.random.default_rng([seed, 104])
    glob = rng.normal(0.0, GLOBAL_SD, size=len(VARIANT_STYLES))
    local = rng.normal(0.0, LOCAL_SD, size=(n_countries, len(VARIANT_STYLES)))
    return glob[None, :] + local


def global_affinity(seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, 104])
    return rng.normal(0.0, GLOBAL_SD, size=len(VARIANT_STYLES))


def slot_play_probability(
    position: np.ndarray, favourite: np.ndarray, log_affinity: np.ndarray
) -> np.ndarray:
    """q(slot): the chance the member wants the title at this slot (before the cascade)."""
    q = BASE_RATE * POSITION_DECAY ** position.astype(np.float64) * np.exp(log_affinity)
    q = q * np.where(favourite, FAVOURITE_GENRE_BOOST, 1.0)
    return np.minimum(q, Q_MAX)


def cascade_play_probability(q: np.ndarray) -> np.ndarray:
    """(n, k) chance each slot is *the* played one: q_i * prod_{j<i} (1 - q_j)."""
    survive = np.cumprod(1.0 - q, axis=1)
    before = np.concatenate([np.ones((q.shape[0], 1)), survive[:, :-1]], axis=1)
    return q * before


def duplicated(titles: np.ndarray) -> np.ndarray:
    """(n, k) True where a title already appears at an earlier position of its row."""
    order = np.argsort(titles, axis=1, kind="stable")
    st = np.take_along_axis(titles, order, axis=1)
    eq = np.zeros(st.shape, dtype=bool)
    eq[:, 1:] = st[:, 1:] == st[:, :-1]
    out = np.zeros(st.shape, dtype=bool)
    np.put_along_axis(out, order, eq, axis=1)
    return out


@dataclass
class HomeRows:
    titles: np.ndarray  # (n, k) catalogue index
    valid: np.ndarray  # (n, k) slot shown (False: could not fill it with a distinct title)
    style: np.ndarray  # (n, k) index into VARIANT_STYLES of the variant shown
    n_variants: np.ndarray  # (n, k)
    played: np.ndarray  # (n,) slot played, -1 = none

    def take(self, idx: np.ndarray) -> HomeRows:
        return HomeRows(self.titles[idx], self.valid[idx], self.style[idx], self.n_variants[idx], self.played[idx])


def home_rows(
    rng: np.random.Generator,
    demand: Any,  # traffic.DemandCache
    catalogue: Catalogue,
    country: np.ndarray,
    home_country: np.ndarray,
    fav_genre: np.ndarray,
    log_affinity: np.ndarray,
) -> HomeRows:
    """One row per visit: distinct titles, a uniformly drawn variant each, the cascade outcome."""
    n, k = len(country), ROW_SLOTS
    if n == 0:
        z = np.zeros((0, k), dtype=np.int64)
        return HomeRows(z, z.astype(bool), z, z, np.zeros(0, dtype=np.int64))
    genre = np.where(rng.random((n, k)) < GENRE_SHARE, fav_genre[:, None], -1)
    titles = demand.sample(rng, np.repeat(country, k), genre.ravel()).reshape(n, k)
    for _ in range(6):
        dup = duplicated(titles)
        if not dup.any():
            break
        r, c = np.nonzero(dup)
        titles[r, c] = demand.sample(rng, country[r], np.full(len(r), -1))
    valid = ~duplicated(titles)
    lo = catalogue.var_start[titles]
    n_var = catalogue.var_start[titles + 1] - lo
    pick = np.minimum((rng.random((n, k)) * n_var).astype(np.int64), n_var - 1)
    style = catalogue.var_style[lo + pick]
    favourite = catalogue.genres[titles, np.maximum(fav_genre, 0)[:, None]] & (fav_genre[:, None] >= 0)
    q = slot_play_probability(np.arange(k)[None, :], favourite, log_affinity[home_country[:, None], style])
    q = np.where(valid, q, 0.0)
    want = rng.random((n, k)) < q
    played = np.where(want.any(axis=1), np.argmax(want, axis=1), -1)
    return HomeRows(titles, valid, style, n_var, played)


def avoid_row(rng: np.random.Generator, demand: Any, title: np.ndarray, rows: HomeRows, country: np.ndarray) -> np.ndarray:
    """Titles of sessions not played from their row, redrawn while they sit in the row (a
    member who passed a title over does not play it seconds later)."""
    title = title.copy()
    for _ in range(8):
        clash = ((rows.titles == title[:, None]) & rows.valid).any(axis=1) & (rows.played < 0)
        if not clash.any():
            break
        idx = np.flatnonzero(clash)
        title[idx] = demand.sample(rng, country[idx], np.full(len(idx), -1))
    return title


def render_impressions(
    rows: HomeRows,
    t_visit: np.ndarray,
    account: list[str],
    profile: list[str],
    catalogue: Catalogue,
    rng: np.random.Generator,
    batch: Batch,
) -> int:
    """Impression events (one per shown slot) into the batch; returns how many."""
    r, c = np.nonzero(rows.valid)
    if not len(r):
        return 0
    # The parts shared by a row's slots are built once per visit.
    when = iso(t_visit)
    head = [
        f'","occurred_at":"{w}","account_id":"{a}","type":"impression","payload":{{"profile_id":"{p}","title_id":"'
        for w, a, p in zip(when, account, profile, strict=True)
    ]
    ids = new_ids(rng, len(r))
    tid = catalogue.title_ids
    variant = [f'","variant_id":"{v}","position":' for v in VARIANT_STYLES]
    prop = ["", "", *(f',"propensity":{1.0 / n!r},"played":' for n in range(2, 5))]
    played = (rows.played[r] == c).tolist()
    lines = [
        f'{{"version":1,"event_id":"{e}{head[i]}{tid[t]}{variant[s]}{pos}{prop[n]}{"true" if pl else "false"}}}}}'
        for e, i, pos, t, s, n, pl in zip(
            ids, r.tolist(), c.tolist(), rows.titles[r, c].tolist(), rows.style[r, c].tolist(),
            rows.n_variants[r, c].tolist(), played, strict=True,
        )
    ]  # fmt: skip
    batch.add(t_visit[r], lines, [None] * len(lines), "impression")
    return len(lines)


def ground_truth(seed: int, countries: tuple[str, ...], member_countries: list[str]) -> dict[str, Any]:
    """The click model and the hidden affinities (member countries only) for the manifest."""
    aff = affinity(seed, len(countries))
    glob = global_affinity(seed)
    index = {c: i for i, c in enumerate(countries)}
    return {
        "row_slots": ROW_SLOTS,
        "logging_policy": "uniform over the title's variants; propensity = 1 / variants",
        "click_model": (
            "cascade: q = min(q_max, base_rate * position_decay**position * "
            "favourite_genre_boost[title in the profile's genre] * exp(affinity[home country][variant])); "
            "P(played at slot i) = q_i * prod_{j<i} (1 - q_j)"
        ),
        "base_rate": BASE_RATE,
        "position_decay": POSITION_DECAY,
        "favourite_genre_boost": FAVOURITE_GENRE_BOOST,
        "q_max": Q_MAX,
        "variants": list(VARIANT_STYLES),
        "global_affinity": {s: round(float(v), 6) for s, v in zip(VARIANT_STYLES, glob, strict=True)},
        "affinity": {
            cc: [round(float(v), 6) for v in aff[index[cc]]] for cc in sorted(member_countries)
        },
    }
