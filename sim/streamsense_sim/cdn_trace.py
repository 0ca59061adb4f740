"""A long-tailed CDN request trace for the cache benchmark (benchmarks.md section 3b).

Each request is one edge site fetching one title object (all the renditions a site serves for
that title, so a title is one cached object with one size). Demand for title t at site s at
hour x::

    w(s, t, x) = taste(s, t) * (base(t) * drift(t, day) + boost(t) * spike(x - release(t) - lag(s, t)))

- **Long tail**: ``base`` is Zipf(``zipf_alpha``) over a shuffled catalogue rank, so most titles
  are requested rarely and a few often.
- **Regional tastes**: sites belong to language groups; a title has a home group where its
  taste is ``home_boost`` times higher, and every (site, title) pair has its own log-normal
  taste noise (``taste_sigma``), so each site has its own hits.
- **New releases** (``releases_per_day``, on a launch calendar the service knows ahead): zero
  demand before release, then a spike of height ``boost`` (log-normal, relative to the top
  catalogue title) that decays with a per-title time constant (log-normal around
  ``decay_days``) to a small long-term level. The spike reaches the home group first and other
  groups after a word-of-mouth ``lag`` (log-normal around ``rollout_lag_hours``): what trends
  in one market tends to arrive in others next.
- **Drift**: catalogue popularity takes a daily log-normal random walk (``drift_sigma``).
- **Diurnal cycle**: each site's request rate follows its local time (sites spread over time
  zones), peaking at 21:00 local with ``diurnal_amplitude``.
- **Sizes**: log-normal around ``size_median_mb`` (films to series seasons), in bytes.

Requests per (site, hour) are Poisson around the site's rate x its diurnal factor, split over
titles by a multinomial draw on ``w``; times are uniform within the hour. Everything is drawn
from one seed, so a trace is reproducible, and a different seed is an independent trace (the
benchmark tunes on one seed and reports on another).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np

HOUR_S = 3600
DAY_S = 86_400


@dataclass(frozen=True)
class TraceParams:
    seed: int = 3
    days: int = 21
    sites: int = 10
    language_groups: int = 4
    catalogue_titles: int = 6000
    releases_per_day: float = 5.0
    release_lead_days: int = 7  # releases start this many days before the trace (a live catalogue)
    zipf_alpha: float = 0.9
    taste_sigma: float = 0.7
    home_boost: float = 3.0
    launch_boost_median: float = 0.15  # spike height relative to the top catalogue title's base
    launch_boost_sigma: float = 1.2
    launch_tail: float = 0.02  # long-term level after the spike, relative to the spike height
    decay_days: float = 3.0
    decay_sigma: float = 0.5
    rollout_lag_hours: float = 36.0
    rollout_lag_sigma: float = 0.6
    home_lag_hours: float = 4.0
    drift_sigma: float = 0.15
    requests_per_site_day: float = 2500.0
    site_size_sigma: float = 0.4  # sites differ in traffic (log-normal)
    diurnal_amplitude: float = 0.7
    peak_local_hour: float = 21.0
    size_median_mb: float = 1800.0
    size_sigma: float = 0.5

    def describe(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


@dataclass
class LaunchCalendar:
    """Titles the service will release: known ahead, unlike how popular they will be."""

    titles: np.ndarray  # title indices
    release_s: np.ndarray  # release time (seconds from trace start; may be negative)


@dataclass
class Trace:
    params: TraceParams
    time_s: np.ndarray  # int64, sorted
    site: np.ndarray  # int32
    title: np.ndarray  # int32
    size: np.ndarray  # int64 bytes per title [T]
    site_group: np.ndarray  # [S] language group of each site
    site_utc_offset_h: np.ndarray  # [S]
    title_home: np.ndarray  # [T] home language group
    calendar: LaunchCalendar
    expected: np.ndarray | None = None  # [window, site, title] expected requests (see generate)

    @property
    def n_requests(self) -> int:
        return len(self.time_s)

    @property
    def n_titles(self) -> int:
        return len(self.size)

    def request_bytes(self) -> np.ndarray:
        return self.size[self.title]


def _lognormal(rng: np.random.Generator, median: float, sigma: float, n: int | tuple[int, ...]) -> np.ndarray:
    return median * np.exp(rng.normal(0.0, sigma, n))


def generate(params: TraceParams | None = None, expected_window_s: int | None = None) -> Trace:
    """Draw a trace. With ``expected_window_s``, also keep the expected number of requests per
    (window, site, title) the draw was made from (``Trace.expected``): what a forecaster that
    knew the generator exactly would predict, the ceiling of any forecast-driven fill."""
    p = params or TraceParams()
    rng = np.random.default_rng(p.seed)
    S, G = p.sites, p.language_groups
    hours = p.days * 24
    n_rel = round(p.releases_per_day * (p.days + p.release_lead_days))
    T = p.catalogue_titles + n_rel

    site_group = np.arange(S) % G
    site_utc = np.sort(rng.choice(np.arange(-8, 10), S, replace=True)).astype(np.float64)
    site_rate = p.requests_per_site_day / 24.0 * np.exp(rng.normal(0.0, p.site_size_sigma, S))
    title_home = rng.integers(0, G, T)

    # Catalogue: Zipf base over a random rank order; releases: base = tail of their spike.
    rank = rng.permutation(p.catalogue_titles) + 1
    base = np.zeros(T)
    base[: p.catalogue_titles] = rank.astype(np.float64) ** -p.zipf_alpha
    boost = np.zeros(T)
    rel = np.arange(p.catalogue_titles, T)
    boost[rel] = _lognormal(rng, p.launch_boost_median, p.launch_boost_sigma, n_rel)
    base[rel] = boost[rel] * p.launch_tail
    release_s = np.full(T, -(10**9), np.int64)
    release_s[rel] = np.sort(rng.uniform(-p.release_lead_days * DAY_S, p.days * DAY_S, n_rel)).astype(np.int64)
    tau_h = np.full(T, 1.0)
    tau_h[rel] = _lognormal(rng, p.decay_days * 24.0, p.decay_sigma, n_rel)

    taste = np.exp(rng.normal(0.0, p.taste_sigma, (S, T)))
    taste *= np.where(site_group[:, None] == title_home[None, :], p.home_boost, 1.0)
    lag_h = _lognormal(rng, p.rollout_lag_hours, p.rollout_lag_sigma, (S, T))
    home = site_group[:, None] == title_home[None, :]
    lag_h = np.where(home, _lognormal(rng, p.home_lag_hours, p.rollout_lag_sigma, (S, T)), lag_h)

    drift = np.exp(np.cumsum(rng.normal(0.0, p.drift_sigma, (p.days, T)), axis=0))
    drift[:, p.catalogue_titles :] = 1.0

    size = np.clip(_lognormal(rng, p.size_median_mb, p.size_sigma, T), 200, 4000).astype(np.int64) * 1_000_000

    expected = None
    if expected_window_s is not None:
        n_win = -(-p.days * DAY_S // expected_window_s)
        expected = np.zeros((n_win, S, T), np.float32)
    times: list[np.ndarray] = []
    sites: list[np.ndarray] = []
    titles: list[np.ndarray] = []
    for h in range(hours):
        x_h = h + 0.5  # mid-hour
        day = h // 24
        since = x_h - release_s / HOUR_S  # [T] hours since release (huge for catalogue titles)
        released = since >= 0
        for s in range(S):
            local = (h + site_utc[s]) % 24
            diurnal = 1.0 + p.diurnal_amplitude * np.cos(2 * np.pi * (local - p.peak_local_hour) / 24.0)
            n = rng.poisson(site_rate[s] * diurnal)
            y = since - lag_h[s]  # hours since the spike reached this site
            spike = np.where(y >= 0, np.exp(-np.maximum(y, 0) / tau_h), np.exp(np.minimum(y, 0) / 12.0))
            w = taste[s] * (base * drift[day] + boost * spike) * released
            if expected is not None and expected_window_s is not None:
                expected[int(h * HOUR_S // expected_window_s), int(s)] += site_rate[s] * diurnal * w / w.sum()
            if n == 0:
                continue
            counts = rng.multinomial(n, w / w.sum())
            t = np.repeat(np.arange(T, dtype=np.int32), counts)
            times.append(h * HOUR_S + rng.integers(0, HOUR_S, len(t)))
            sites.append(np.full(len(t), s, np.int32))
            titles.append(t)
    time_s = np.concatenate(times)
    order = np.argsort(time_s, kind="stable")
    cal = np.flatnonzero(release_s > -(10**9))
    return Trace(
        params=p,
        time_s=time_s[order].astype(np.int64),
        site=np.concatenate(sites)[order],
        title=np.concatenate(titles)[order],
        size=size,
        site_group=site_group,
        site_utc_offset_h=site_utc,
        title_home=title_home,
        calendar=LaunchCalendar(titles=cal, release_s=release_s[cal]),
        expected=expected,
    )


def summary(trace: Trace) -> dict[str, float]:
    """What the trace looks like: requests, distinct titles, the tail, the launch share."""
    counts = np.bincount(trace.title, minlength=trace.n_titles)
    requested = counts[counts > 0]
    top1 = np.sort(requested)[::-1][: max(1, len(requested) // 100)].sum() / requested.sum()
    launches = np.isin(trace.title, trace.calendar.titles[trace.calendar.release_s >= 0])
    return {
        "requests": float(trace.n_requests),
        "distinct_titles": float(len(requested)),
        "requested_once_share": float((requested == 1).sum() / len(requested)),
        "top1pct_request_share": float(top1),
        "in_trace_launch_request_share": float(launches.mean()),
        "distinct_bytes": float(trace.size[counts > 0].sum()),
    }
