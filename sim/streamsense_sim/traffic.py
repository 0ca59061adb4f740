"""Legitimate traffic of one local day for one block of accounts.

Daily rhythm in each household's local time: a profile is active with probability 0.40
(Monday) rising to 0.55 (Saturday); an active profile starts 1 + Poisson(0.5) sessions whose
start hours follow a mixture peaking at 21:00 (weekends: more daytime viewing). A session
picks a device the profile's household has with it (only portable ones while travelling), a
title from its country's current demand (45% of the time within the profile's favourite
genre), a start position (70% from the beginning) and a viewing length (log-normal, median
40 min, within the title). ``home_row_share`` of sessions start from the home page: the
member first sees a row of titles with randomly chosen creative variants and plays the one
they pick, if any (``impressions``). Sessions the plan cannot host (more concurrent streams
than the plan allows, counting both households of a shared account, or a device already
playing) are never started, so legitimate accounts always stay within their plan.

A device logs in when its token is older than 24 h, when it is used in another place than
its last login (the first use at a trip's destination), or when it was signed out by a
takeover's password change (3% of first attempts fail with a bad password, then succeed).
A takeover victim's device fails with bad_password until the victim resets the password from
it (``victim_reset_share`` of victims, 3-30 min after the first failure); the session it was
starting does not happen. Billing runs on the signup day of month, early morning local time
(3% declined, 60% of those succeed on the next day's retry; ``card_expiry_share`` hit an
expired card and renew it, see ``_card_renewal``); a small share of accounts change a
password, payment method, phone or email.

Where an event says it comes from (GeoIP) is the true place, except for VPN sessions (the
egress city) and for cellular sessions at home of members whose carrier geolocates to a
regional gateway. Those, the second household's traffic, trips and renewals are tagged as
legitimate traps (``traps``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from streamsense_sim import traps
from streamsense_sim.catalogue import DAY_MS, GENRES, Catalogue
from streamsense_sim.impressions import avoid_row, home_rows, render_impressions
from streamsense_sim.qoe import ThroughputModel
from streamsense_sim.render import Batch, Fragments, RareEvents, new_ids
from streamsense_sim.sessions import Sessions, render_sessions, simulate_player
from streamsense_sim.world import BIG_MS, DEVICE_TYPES, PLAN_PRICE, PORTABLE, World, luhn_cards

HOUR_MS = 3_600_000
ACTIVE_P = np.array([0.40, 0.40, 0.41, 0.42, 0.47, 0.55, 0.52])  # Monday..Sunday
#: (weight, mean hour, sd) of session start hours, weekdays and weekends.
WEEKDAY_HOURS = ((0.08, 7.5, 1.0), (0.12, 12.5, 1.2), (0.15, 17.0, 1.5), (0.65, 21.0, 1.4))
WEEKEND_HOURS = ((0.15, 10.0, 1.5), (0.25, 14.5, 2.0), (0.60, 21.0, 1.6))
#: Relative chance of picking each device type for a session at home (tv, mobile, tablet, web, console).
DEVICE_PREF = np.array([4.0, 0.5, 0.8, 0.6, 0.8])
MERCHANT_OF_DEVICE = ("checkout-tv", "checkout-app", "checkout-app", "checkout-web", "checkout-tv")
RECURRING_MERCHANT = "billing-recurring"
CARD_CHECK_MERCHANT = "billing-card-check"
TOKEN_TTL_MS = 24 * HOUR_MS
#: How long a finished session stays in an account's plan-limit memory.
RUNNING_HORIZON_MS = 2 * DAY_MS


@dataclass
class Anchors:
    """Legitimate playback starts of a step: where attacks find victims that are active."""

    account: list[np.ndarray] = field(default_factory=list)
    t: list[np.ndarray] = field(default_factory=list)
    city: list[np.ndarray] = field(default_factory=list)
    device: list[np.ndarray] = field(default_factory=list)


class DemandCache:
    """Per-step cumulative title demand per (country, genre-or-all)."""

    def __init__(self, catalogue: Catalogue, world: World, at_ms: int) -> None:
        self.catalogue = catalogue
        self.world = world
        self.at_ms = at_ms
        self._base: dict[int, np.ndarray] = {}
        self._cdf: dict[tuple[int, int], np.ndarray] = {}

    def cdf(self, country: int, genre: int) -> np.ndarray:
        key = (country, genre)
        out = self._cdf.get(key)
        if out is None:
            base = self._base.get(country)
            if base is None:
                base = self.catalogue.demand(country, self.at_ms, self.world.geo)
                self._base[country] = base
            w = base if genre < 0 else np.where(self.catalogue.genres[:, genre], base, 0.0)
            out = np.cumsum(w)
            if out[-1] <= 0:
                out = np.cumsum(base)
            self._cdf[key] = out
        return out

    def sample(self, rng: np.random.Generator, country: np.ndarray, genre: np.ndarray) -> np.ndarray:
        out = np.empty(len(country), dtype=np.int64)
        u = rng.random(len(country))
        keys = country * (len(GENRES) + 1) + (genre + 1)
        for key in np.unique(keys):
            idx = np.flatnonzero(keys == key)
            c, g = divmod(int(key), len(GENRES) + 1)
            cdf = self.cdf(c, g - 1)
            out[idx] = np.minimum(np.searchsorted(cdf, u[idx] * cdf[-1], side="right"), len(cdf) - 1)
        return out


def _hours(rng: np.random.Generator, n: int, weekend: bool) -> np.ndarray:
    mix = WEEKEND_HOURS if weekend else WEEKDAY_HOURS
    w = np.array([m[0] for m in mix])
    comp = rng.choice(len(mix), size=n, p=w / w.sum())
    mean = np.array([m[1] for m in mix])[comp]
    sd = np.array([m[2] for m in mix])[comp]
    return np.mod(rng.normal(mean, sd), 24.0)


def local_midnight_ms(world: World, city: np.ndarray, day_index: int) -> np.ndarray:
    """UTC ms of local midnight of simulated day ``day_index`` at each place."""
    return world_midnight(world, day_index) - zone_offsets_ms(world, day_index)[world.geo.zone[city]]


def world_midnight(world: World, day_index: int) -> int:
    return world.config.start_ms + day_index * DAY_MS


_OFFSETS: dict[tuple[int, int], np.ndarray] = {}


def zone_offsets_ms(world: World, day_index: int) -> np.ndarray:
    from datetime import UTC, datetime

    midnight = world_midnight(world, day_index)
    key = (id(world.geo), midnight)
    cached = _OFFSETS.get(key)
    if cached is None:
        noon = datetime.fromtimestamp((midnight + 12 * HOUR_MS) / 1000, tz=UTC)
        cached = world.geo.utc_offset_s(noon) * 1000
        _OFFSETS[key] = cached
    return cached


def audio_and_subtitles(world: World, catalogue: Catalogue, profile: np.ndarray, title: np.ndarray) -> tuple[list[str], list[str]]:
    audio: list[str] = []
    subs: list[str] = []
    for p, t in zip(profile.tolist(), title.tolist(), strict=True):
        own = world.prof_lang[p]
        original = catalogue.language[t]
        a = own if (own == original or (catalogue.dubbed[t] and not world.prof_purist[p])) else original
        audio.append(a)
        subs.append(own if (a != own or world.prof_subs[p]) else "off")
    return audio, subs


def legit_day(
    world: World,
    catalogue: Catalogue,
    throughput: ThroughputModel,
    frags: Fragments,
    demand: DemandCache,
    day_index: int,
    block: tuple[int, int],
    rng: np.random.Generator,
    batch: Batch,
    anchors: Anchors,
    running: dict[int, list[tuple[int, int, int]]],
    log_affinity: np.ndarray,
) -> None:
    """``running``: account -> [(start ms, end ms, device)] of its recent sessions, carried over
    from earlier steps so the plan limit also holds across local midnights (and across the two
    households of a shared account, whose local days may be in different zones)."""
    cfg = world.config
    a0, a1 = block
    # The traps, rows and victims draw from their own generator: the base traffic's draws
    # stay aligned with the sessions they describe when those shares change.
    rx = np.random.default_rng([cfg.seed, 17, day_index + 1, a0])
    weekday = (cfg.start.weekday() + day_index) % 7
    p0, p1 = int(world.prof_start[a0]), int(world.prof_start[a1])
    profiles = np.arange(p0, p1)
    active = profiles[rng.random(len(profiles)) < ACTIVE_P[weekday]]
    n_sess = 1 + rng.poisson(0.5, size=len(active))
    prof = np.repeat(active, n_sess)
    acc = world.prof_account[prof]
    site = world.prof_site[prof]
    base = world.site_home(acc, site)
    hours = _hours(rng, len(prof), weekend=weekday >= 5)
    t0 = local_midnight_ms(world, base, day_index) + (hours * HOUR_MS).astype(np.int64)
    city = np.where(site == 1, base, world.location(acc, t0))
    ok = (city >= 0) & (t0 >= world.signup_ms[acc] + 10 * 60_000) & (t0 >= cfg.start_ms) & (t0 < cfg.end_ms)
    prof, acc, t0, city, site, base = prof[ok], acc[ok], t0[ok], city[ok], site[ok], base[ok]
    away = city != base

    # Device: among the household's devices (of this profile's home), portable only while away.
    n_dev = world.dev_start[acc + 1] - world.dev_start[acc]
    dmax = int(n_dev.max()) if len(acc) else 1
    slot = world.dev_start[acc][:, None] + np.arange(dmax)[None, :]
    valid = np.arange(dmax)[None, :] < n_dev[:, None]
    slot = np.where(valid, slot, 0)
    dtype = world.dev_type[slot]
    w = np.where(valid & (world.dev_site[slot] == site[:, None]), DEVICE_PREF[dtype], 0.0)
    w = np.where(away[:, None] & ~PORTABLE[dtype], 0.0, w)
    total = w.sum(axis=1)
    has_device = total > 0
    cum = np.cumsum(w, axis=1) / np.maximum(total, 1e-12)[:, None]
    pick = np.minimum((cum < rng.random(len(acc))[:, None]).sum(axis=1), dmax - 1)
    device = slot[np.arange(len(acc)), pick]
    keep = has_device
    prof, acc, t0, city, away, device, site = (x[keep] for x in (prof, acc, t0, city, away, device, site))
    n = len(prof)
    dtype = world.dev_type[device]

    # Title, position, length. Sessions from the home page play the row's pick when there is one.
    country = world.geo.country[city]
    genre = np.where(rng.random(n) < 0.45, world.prof_genre[prof], -1)
    title = demand.sample(rng, country, genre)
    visit = np.flatnonzero(rx.random(n) < cfg.home_row_share)
    rows = home_rows(rx, demand, catalogue, country[visit], world.country[acc[visit]], world.prof_genre[prof[visit]], log_affinity)
    picked = rows.played >= 0
    title[visit[picked]] = rows.titles[np.flatnonzero(picked), rows.played[picked]]
    title[visit] = avoid_row(rx, demand, title[visit], rows, country[visit])
    row_of = np.full(n, -1, dtype=np.int64)
    row_of[visit] = np.arange(len(visit))
    dur = catalogue.duration_s[title]
    start_pos = np.where(rng.random(n) < 0.7, 0.0, np.floor(rng.random(n) * 0.8 * dur))
    length = np.clip(rng.lognormal(np.log(40 * 60.0), 0.8, size=n), 60.0, None)
    watched = np.minimum(length, dur - start_pos)
    # Stop watching before the household leaves for a trip (or comes back).
    limit_s = (world.phase_end(acc, t0) - t0) / 1000.0 - 15 * 60
    watched = np.floor(np.minimum(watched, limit_s))
    keep = watched >= 60
    prof, acc, t0, city, away, device, dtype, title, start_pos, watched, site, row_of = (
        x[keep] for x in (prof, acc, t0, city, away, device, dtype, title, start_pos, watched, site, row_of)
    )
    n = len(prof)
    country = world.geo.country[city]

    # Network: type by device and place; ASN/IP: the home line, a local line abroad, or a carrier.
    u = rng.random(n)
    net = np.zeros(n, dtype=np.int64)
    big_screen = (dtype == 0) | (dtype == 4)
    net[big_screen] = np.where(u[big_screen] < 0.6, 0, 1)
    web = dtype == 3
    net[web] = np.where(u[web] < 0.75, 0, 1)
    handheld = (dtype == 1) | (dtype == 2)
    cell_p = np.where(away, 0.55, np.where(dtype == 2, 0.05, 0.30))
    cellular = handheld & (u < cell_p)
    v = rng.random(n)
    net[cellular] = np.where(v[cellular] < 0.72, 2, np.where(v[cellular] < 0.92, 3, 4))
    if away.any():
        net[away & web] = 0  # laptops on the road use Wi-Fi
    asn = np.where(site == 1, world.home2_asn[acc], world.home_asn[acc])
    ip = [world.home2_ip[a] if st else world.home_ip[a] for a, st in zip(acc.tolist(), site.tolist(), strict=True)]
    foreign_line = (net <= 1) & away
    mobile_line = net >= 2
    pick_u = rng.random(n)
    for idx, kind in ((np.flatnonzero(foreign_line), "broadband"), (np.flatnonzero(mobile_line), "mobile")):
        if not len(idx):
            continue
        for i in idx.tolist():
            options = world.asns.by_country[world.geo.countries[int(country[i])]][kind]
            asn[i] = options[int(pick_u[i] * len(options))]
        fresh = world.asns.ips(asn[idx], rng)
        for i, addr in zip(idx.tolist(), fresh, strict=True):
            ip[i] = addr
    # What GeoIP reports: the VPN's egress city, or the carrier's regional gateway.
    seen_city = city.copy()
    vpn = (world.vpn_asn[acc] >= 0) & PORTABLE[dtype] & (rx.random(n) < cfg.vpn_use_p)
    noisy = mobile_line & ~vpn & ~away & (site == 0) & (world.gateway[acc] >= 0)
    if vpn.any():
        idx = np.flatnonzero(vpn)
        asn[idx] = world.vpn_asn[acc[idx]]
        for i, addr in zip(idx.tolist(), world.asns.ips(asn[idx], rx), strict=True):
            ip[i] = addr
        seen_city[idx] = [world.asns.egress[int(a)] for a in asn[idx].tolist()]
    seen_city[noisy] = world.gateway[acc[noisy]]
    trap = (
        np.where(vpn, traps.VPN, 0)
        | np.where(noisy, traps.GEOIP, 0)
        | np.where(site == 1, traps.SECOND_HOME, 0)
        | np.where(away, traps.TRAVELLER, 0)
    ).astype(np.int64)

    audio, subs = audio_and_subtitles(world, catalogue, prof, title)
    s = Sessions(
        t_start=t0,
        account=[world.account_id[a] for a in acc.tolist()],
        profile=[world.profile_id[p] for p in prof.tolist()],
        title=title,
        device_id=[world.device_id[d] for d in device.tolist()],
        device_type=dtype,
        city=seen_city,
        asn=asn,
        ip=ip,
        net=net,
        start_pos=start_pos,
        watched=watched,
        audio=audio,
        subtitles=subs,
        attack_type=[None] * n,
        attack_id=[None] * n,
        trap=trap,
    )
    factor = country_factor(world, country)
    player = simulate_player(s, rng, throughput, cfg.heartbeat_s, factor)

    # The plan's concurrency limit and one stream per device: greedy in start order. A
    # session is refused when the streams overlapping it, started before or after it, already
    # fill the plan (an upper bound of the concurrency at any instant of it).
    end = t0 + player.stop_wall_ms
    order = np.lexsort((t0, acc))
    kept = np.zeros(n, dtype=bool)
    for i in order.tolist():
        a = int(acc[i])
        ti, ei, di = int(t0[i]), int(end[i]), int(device[i])
        recent = [r for r in running.get(a, []) if r[1] > ti - RUNNING_HORIZON_MS]
        overlap = [r for r in recent if r[1] > ti and r[0] < ei]
        if len(overlap) < int(world.plan[a]) and all(r[2] != di for r in overlap):
            recent.append((ti, ei, di))
            kept[i] = True
        running[a] = recent
    idx = np.flatnonzero(kept)
    s = s.take(idx)
    player = _take_player(player, idx)
    device, acc, city, row_of = device[idx], acc[idx], city[idx], row_of[idx]

    # The home-page visit precedes the session; a login (token refresh, or a new place)
    # precedes the visit.
    has_row = row_of >= 0
    t_visit = s.t_start - np.where(has_row, rx.integers(8_000, 90_000, size=len(s)), 0)
    rare = RareEvents()
    order = np.argsort(s.t_start, kind="stable")
    login_ids = new_ids(rng, 2 * len(order))
    lu = rng.random((len(order), 3))
    live = np.ones(len(s), dtype=bool)
    for j, i in enumerate(order.tolist()):
        d = int(device[i])
        t = int(s.t_start[i])
        a = int(acc[i])
        t_login = int(t_visit[i]) - 5_000 - int(lu[j, 0] * (25_000 if has_row[i] else 55_000))
        here = int(city[i])
        revoked = int(world.revoked_ms[a])
        if revoked <= t_login < int(world.reset_ms[a]):
            live[i] = False
            _locked_out(world, frags, s, i, a, d, t_login, here, rx, rare)
            continue
        stale = t - int(world.last_login_ms[d]) > TOKEN_TTL_MS
        moved = here != int(world.last_login_city[d])
        signed_out = int(world.last_login_ms[d]) < revoked <= t_login
        if not (stale or moved or signed_out):
            continue
        dev = {"device_id": world.device_id[d], "device_type": DEVICE_TYPES[int(world.dev_type[d])]}
        net_ctx = frags.network_dict(s.ip[i], int(s.asn[i]), int(s.city[i]))
        mask = int(s.trap[i])
        if lu[j, 1] < 0.03:
            rare.add(login_ids[2 * j + 1], t_login - 40_000, world.account_id[a], "login", {
                "email": world.email[a], "success": False, "failure_reason": "bad_password", "device": dev, "network": net_ctx,
            }, trap=mask)  # fmt: skip
        rare.add(login_ids[2 * j], t_login, world.account_id[a], "login", {
            "email": world.email[a], "success": True, "device": dev, "network": net_ctx,
        }, trap=mask)  # fmt: skip
        world.last_login_ms[d] = t_login
        world.last_login_city[d] = here

    idx = np.flatnonzero(live)
    if len(idx) < len(s):
        s, player = s.take(idx), _take_player(player, idx)
        device, acc, row_of, t_visit = device[idx], acc[idx], row_of[idx], t_visit[idx]
    render_sessions(s, player, catalogue, frags, rng, cfg.heartbeat_s, batch, cfg.end_ms)
    shown = np.flatnonzero(row_of >= 0)
    batch.impressions += render_impressions(
        rows.take(row_of[shown]), t_visit[shown], [s.account[i] for i in shown.tolist()],
        [s.profile[i] for i in shown.tolist()], catalogue, rx, batch,
    )  # fmt: skip
    anchors.account.append(acc)
    anchors.t.append(s.t_start)
    anchors.city.append(s.city)
    anchors.device.append(device)

    _billing(world, frags, day_index, block, rng, rx, rare)
    _signups(world, frags, day_index, block, rng, rare)
    _account_changes(world, frags, day_index, block, rng, rare)
    rare.into(batch)


def _locked_out(
    world: World, frags: Fragments, s: Sessions, i: int, a: int, d: int, t_login: int, here: int,
    rx: np.random.Generator, rare: RareEvents,
) -> None:  # fmt: skip
    """A takeover victim tries to log in after the attacker changed the password: the old
    password fails; the first time, a victim who resets does so from this device minutes later."""
    dev = {"device_id": world.device_id[d], "device_type": DEVICE_TYPES[int(world.dev_type[d])]}
    net_ctx = frags.network_dict(s.ip[i], int(s.asn[i]), int(s.city[i]))
    mask = int(s.trap[i]) | traps.TAKEOVER_VICTIM
    acc_id = world.account_id[a]
    tries = 1 + int(rx.random() < 0.5)
    ids = new_ids(rx, tries + 2)
    for k in range(tries):
        rare.add(ids[k], t_login + k * int(rx.integers(15_000, 60_000)), acc_id, "login", {
            "email": world.email[a], "success": False, "failure_reason": "bad_password", "device": dev, "network": net_ctx,
        }, trap=mask)  # fmt: skip
    if world.victim_resets[a] and world.reset_ms[a] >= BIG_MS:
        t_reset = t_login + int(rx.integers(3 * 60_000, 30 * 60_000))
        rare.add(ids[tries], t_reset, acc_id, "account_change", {"field": "password", "device": dev, "network": net_ctx}, trap=mask)
        rare.add(ids[tries + 1], t_reset + 60_000, acc_id, "login", {
            "email": world.email[a], "success": True, "device": dev, "network": net_ctx,
        }, trap=mask)  # fmt: skip
        world.reset_ms[a] = t_reset
        world.last_login_ms[d] = t_reset + 60_000
        world.last_login_city[d] = here


def country_factor(world: World, country: np.ndarray) -> np.ndarray:
    """A fixed per-country network quality factor for the parametric throughput model."""
    f = np.random.default_rng([world.config.seed, 55]).lognormal(0.0, 0.3, size=len(world.geo.countries))
    return f[country]


def _take_player(p: Any, idx: np.ndarray) -> Any:
    from dataclasses import fields, replace

    return replace(p, **{f.name: getattr(p, f.name)[idx] for f in fields(p)})


def _billing(
    world: World, frags: Fragments, day_index: int, block: tuple[int, int], rng: np.random.Generator,
    rx: np.random.Generator, rare: RareEvents,
) -> None:  # fmt: skip
    cfg = world.config
    a0, a1 = block
    acc = np.arange(a0, a1)
    midnight = local_midnight_ms(world, world.home[acc], day_index)
    # Local day k is calendar date start + k everywhere (only its UTC instant differs).
    day_of_month = (np.datetime64(cfg.start, "D") + np.timedelta64(day_index, "D")).astype(object).day
    t = midnight + rng.integers(3 * HOUR_MS, 7 * HOUR_MS, size=len(acc))
    due = (day_of_month == world.billing_dom[acc]) & (world.signup_ms[acc] < t - 2 * DAY_MS)
    due &= (t >= cfg.start_ms) & (t < cfg.end_ms)
    idx = np.flatnonzero(due)
    ids = new_ids(rng, 2 * len(idx))
    u = rng.random((len(idx), 2))
    # An expired card (members at home, never a locked-out takeover victim) renews instead.
    expired = rx.random(len(idx)) < cfg.card_expiry_share
    for j, i in enumerate(idx.tolist()):
        a = int(acc[i])
        if expired[j] and world.revoked_ms[a] >= BIG_MS and world.location(np.array([a]), t[i : i + 1])[0] == world.home[a]:
            _card_renewal(world, frags, a, int(t[i]), rx, rare)
            continue
        declined = u[j, 0] < 0.03
        payload: dict[str, Any] = {
            "card_number": world.card[a], "merchant_id": RECURRING_MERCHANT, "amount": PLAN_PRICE[int(world.plan[a])],
            "currency": "USD", "status": "declined" if declined else "approved",
        }  # fmt: skip
        rare.add(ids[2 * j], int(t[i]), world.account_id[a], "payment", payload)
        if declined and u[j, 1] < 0.6:
            rare.add(ids[2 * j + 1], int(t[i]) + DAY_MS, world.account_id[a], "payment", {**payload, "status": "approved"})


def _card_renewal(world: World, frags: Fragments, a: int, t: int, rx: np.random.Generator, rare: RareEvents) -> None:
    """The monthly charge declines on the expired card; hours later the member adds the
    renewed card from a device at home: a $1.00 verification charge (declined once or twice
    for half of them: a mistyped expiry date or CVC), then the charge on the new card."""
    acc_id = world.account_id[a]
    price = PLAN_PRICE[int(world.plan[a])]
    mask = traps.CARD_RENEWAL
    ids = new_ids(rx, 6)
    rare.add(ids[0], t, acc_id, "payment", {
        "card_number": world.card[a], "merchant_id": RECURRING_MERCHANT, "amount": price, "currency": "USD", "status": "declined",
    }, trap=mask)  # fmt: skip
    lo, hi = int(world.dev_start[a]), int(world.dev_start[a + 1])
    own = [d for d in range(lo, hi) if world.dev_site[d] == 0]
    handy = [d for d in own if world.dev_type[d] in (1, 3)] or own
    d = handy[int(rx.integers(0, len(handy)))]
    dev = {"device_id": world.device_id[d], "device_type": DEVICE_TYPES[int(world.dev_type[d])]}
    net_ctx = frags.network_dict(world.home_ip[a], int(world.home_asn[a]), int(world.home[a]))
    t_fix = t + int(rx.integers(1 * HOUR_MS, 12 * HOUR_MS))
    rare.add(ids[1], t_fix, acc_id, "account_change", {"field": "payment_method", "device": dev, "network": net_ctx}, trap=mask)
    card = luhn_cards(rx, 1)[0]
    typos = int(rx.choice(3, p=[0.5, 0.35, 0.15]))
    tv = t_fix + 30_000
    for k in range(typos + 1):
        rare.add(ids[2 + k], tv, acc_id, "payment", {
            "card_number": card, "merchant_id": CARD_CHECK_MERCHANT, "amount": 1.0, "currency": "USD",
            "status": "declined" if k < typos else "approved", "device": dev, "network": net_ctx,
        }, trap=mask)  # fmt: skip
        tv += int(rx.integers(40_000, 120_000))
    rare.add(ids[5], tv + 60_000, acc_id, "payment", {
        "card_number": card, "merchant_id": RECURRING_MERCHANT, "amount": price, "currency": "USD", "status": "approved",
    }, trap=mask)  # fmt: skip
    world.card[a] = card


def _signups(world: World, frags: Fragments, day_index: int, block: tuple[int, int], rng: np.random.Generator, rare: RareEvents) -> None:
    if day_index < 0:
        return
    a0, a1 = block
    lo, hi = world_midnight(world, day_index), world_midnight(world, day_index) + DAY_MS
    acc = np.arange(a0, a1)
    idx = acc[(world.signup_ms[acc] >= lo) & (world.signup_ms[acc] < hi)]
    ids = new_ids(rng, 4 * len(idx))
    u = rng.random((len(idx), 2))
    for j, a in enumerate(idx.tolist()):
        t = int(world.signup_ms[a])
        d = int(world.dev_start[a])
        dev = {"device_id": world.device_id[d], "device_type": DEVICE_TYPES[int(world.dev_type[d])]}
        net_ctx = frags.network_dict(world.home_ip[a], int(world.home_asn[a]), int(world.home[a]))
        acc_id = world.account_id[a]
        rare.add(ids[4 * j], t, acc_id, "signup", {"email": world.email[a], "plan_streams": int(world.plan[a]), "device": dev, "network": net_ctx})
        rare.add(ids[4 * j + 1], t + 30_000, acc_id, "login", {"email": world.email[a], "success": True, "device": dev, "network": net_ctx})
        world.last_login_ms[d] = t + 30_000
        payment: dict[str, Any] = {
            "card_number": world.card[a], "merchant_id": MERCHANT_OF_DEVICE[int(world.dev_type[d])],
            "amount": PLAN_PRICE[int(world.plan[a])], "currency": "USD",
            "status": "declined" if u[j, 0] < 0.04 else "approved", "device": dev, "network": net_ctx,
        }  # fmt: skip
        rare.add(ids[4 * j + 2], t + 120_000, acc_id, "payment", payment)
        if payment["status"] == "declined":
            rare.add(ids[4 * j + 3], t + 240_000, acc_id, "payment", {**payment, "status": "approved"})


def _account_changes(world: World, frags: Fragments, day_index: int, block: tuple[int, int], rng: np.random.Generator, rare: RareEvents) -> None:
    cfg = world.config
    a0, a1 = block
    acc = np.arange(a0, a1)
    t = local_midnight_ms(world, world.home[acc], day_index) + rng.integers(9 * HOUR_MS, 22 * HOUR_MS, size=len(acc))
    chosen = (rng.random(len(acc)) < 0.0005) & (t >= cfg.start_ms) & (t < cfg.end_ms) & (world.signup_ms[acc] < t)
    chosen &= world.location(acc, t) == world.home[acc]
    chosen &= world.revoked_ms[acc] >= BIG_MS  # takeover victims' changes are their resets
    idx = np.flatnonzero(chosen)
    ids = new_ids(rng, len(idx))
    fields_ = rng.choice(["password", "payment_method", "phone", "email"], size=len(idx), p=[0.6, 0.25, 0.1, 0.05])
    for j, i in enumerate(idx.tolist()):
        a = int(acc[i])
        d = int(world.dev_start[a])
        dev = {"device_id": world.device_id[d], "device_type": DEVICE_TYPES[int(world.dev_type[d])]}
        net_ctx = frags.network_dict(world.home_ip[a], int(world.home_asn[a]), int(world.home[a]))
        rare.add(ids[j], int(t[i]), world.account_id[a], "account_change", {"field": str(fields_[j]), "device": dev, "network": net_ctx})

