"""Members: accounts with a plan, a home, profiles, devices, a card and (sometimes) a trip.

Everything is drawn once per seed, vectorized, as parallel arrays (profiles and devices in
CSR layout: ``prof_start[a]:prof_start[a+1]`` are account a's profiles).

* Plans: 1, 2 or 4 concurrent streams (30% / 50% / 20%); profiles 1-2, 1-3, 2-5 by plan.
* Home: a GeoNames place drawn by density weight (restricted to ``config.countries``).
* Devices: a shared TV (80% of households), a console (15%), a tablet (35%), a browser (40%)
  and a phone for most profiles; device ids are random 64-bit hex.
* Profiles: audio language drawn from the home country's language mix (CLDR); 25% are
  "original audio" purists; subtitles on for 30% (or whenever audio is not their language);
  a favourite genre drawn from the country's genre affinity.
* Cards: 16-digit Luhn-valid numbers; emails in the reserved example.com/.net/.org domains.
* Trips: each day an account leaves with probability ``trip_rate_per_day`` (0.4%) for 2-10
  days, 60% domestic (>= 150 km), 40% abroad (>= 500 km); travel takes distance / 800 km/h
  plus 90 minutes, and the household is away (its TV stays home) in between.

Legitimate look-alikes of attacks (drawn from their own generator, so the base population
above does not change when their shares do):

* Second homes: ``second_home_share`` of multi-stream accounts with 2+ profiles are shared
  with a second household (80% in the same country >= 100 km away, 20% abroad >= 300 km):
  the account's last profile lives there with its own TV or browser, a phone and a broadband
  line. Such accounts take no trips (each household stays put).
* VPN members: ``vpn_member_share`` of accounts own a VPN subscription with one egress ASN
  (70% one in their own country when it has one); GeoIP puts that egress in the biggest metro
  of the ASN's country (``AsnRegistry.egress``).
* Carrier GeoIP: for ``geoip_noise_share`` of accounts, the mobile carrier's egress gateway is
  a place 150-600 km from home in the same country: cellular sessions at home geolocate there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from streamsense_sim.catalogue import DAY_MS, GENRES, genre_affinity
from streamsense_sim.config import SimConfig
from streamsense_sim.geo import AsnRegistry, Geography, country_languages, haversine_km

DEVICE_TYPES = ("tv", "mobile", "tablet", "web", "console")
PORTABLE = np.array([False, True, True, True, False])
PLANS = np.array([1, 2, 4])
#: Monthly price per plan (USD), billed on the account's signup day of month.
PLAN_PRICE = {1: 7.99, 2: 13.99, 4: 19.99}
TRAVEL_KMH = 800.0
#: "Never" for int64 millisecond timestamps (far beyond any period, safe to add to).
BIG_MS = np.iinfo(np.int64).max // 4
TRAVEL_OVERHEAD_MS = 90 * 60_000
EMAIL_DOMAINS = ("example.com", "example.net", "example.org")


class CitySampler:
    """Draws GeoNames places by density weight, globally or within given countries."""

    def __init__(self, geo: Geography, allowed: np.ndarray | None = None) -> None:
        self.geo = geo
        w = geo.weight.copy()
        if allowed is not None:
            w = np.where(allowed[geo.country], w, 0.0)
        self.order = np.argsort(geo.country, kind="stable")
        self.cum = np.cumsum(w[self.order])
        sorted_country = geo.country[self.order]
        nc = len(geo.countries)
        self.c_lo = np.searchsorted(sorted_country, np.arange(nc), side="left")
        self.c_hi = np.searchsorted(sorted_country, np.arange(nc), side="right")
        before = np.concatenate([[0.0], self.cum])
        self.c_base = before[self.c_lo]
        self.c_total = before[self.c_hi] - self.c_base
        self.country_weight = self.c_total / max(self.cum[-1], 1e-12)

    def anywhere(self, rng: np.random.Generator, n: int) -> np.ndarray:
        u = rng.random(n) * self.cum[-1]
        return self.order[np.minimum(np.searchsorted(self.cum, u, side="right"), len(self.cum) - 1)]

    def within(self, rng: np.random.Generator, country: np.ndarray) -> np.ndarray:
        """One place per entry of ``country`` (countries without weight fall back to anywhere)."""
        u = self.c_base[country] + rng.random(len(country)) * self.c_total[country]
        idx = np.minimum(np.searchsorted(self.cum, u, side="right"), len(self.cum) - 1)
        out = self.order[idx]
        empty = self.c_total[country] <= 0
        if empty.any():
            out[empty] = self.anywhere(rng, int(empty.sum()))
        return out

    def far_from(self, rng: np.random.Generator, city: np.ndarray, min_km: float, tries: int = 8) -> np.ndarray:
        """A place at least ``min_km`` from each given place (-1 if none found)."""
        out = np.full(len(city), -1, dtype=np.int64)
        todo = np.arange(len(city))
        for _ in range(tries):
            if not len(todo):
                break
            cand = self.anywhere(rng, len(todo))
            ok = haversine_km(self.geo.lat[city[todo]], self.geo.lon[city[todo]], self.geo.lat[cand], self.geo.lon[cand]) >= min_km
            out[todo[ok]] = cand[ok]
            todo = todo[~ok]
        return out


def luhn_cards(rng: np.random.Generator, n: int) -> list[str]:
    """Random 16-digit Visa/Mastercard-like numbers with a valid Luhn check digit."""
    body = rng.integers(0, 10, size=(n, 15))
    body[:, 0] = rng.choice([4, 5], size=n)
    # Luhn: from the right of the full number, double every second digit; body's last digit
    # sits next to the check digit, so it is doubled.
    doubled = body.copy()
    idx = np.arange(14, -1, -2)
    d = doubled[:, idx] * 2
    doubled[:, idx] = np.where(d > 9, d - 9, d)
    check = (10 - doubled.sum(axis=1) % 10) % 10
    digits = np.concatenate([body, check[:, None]], axis=1)
    return ["".join(map(str, row)) for row in digits.tolist()]


def luhn_ok(number: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return total % 10 == 0


@dataclass
class World:
    config: SimConfig
    geo: Geography
    asns: AsnRegistry
    cities: CitySampler
    account_id: list[str]
    plan: np.ndarray
    home: np.ndarray
    country: np.ndarray
    home_asn: np.ndarray
    home_ip: list[str]
    email: list[str]
    card: list[str]
    signup_ms: np.ndarray
    billing_dom: np.ndarray
    prof_start: np.ndarray
    profile_id: list[str]
    prof_account: np.ndarray
    prof_lang: list[str]
    prof_purist: np.ndarray
    prof_subs: np.ndarray
    prof_genre: np.ndarray
    dev_start: np.ndarray
    device_id: list[str]
    dev_type: np.ndarray  # index into DEVICE_TYPES
    dev_account: np.ndarray
    last_login_ms: np.ndarray  # mutable: token refresh state per device
    trip_dest: np.ndarray  # -1 = no trip
    trip_out: np.ndarray  # departure (ms)
    trip_in: np.ndarray  # arrival at destination
    trip_back: np.ndarray  # departure home
    trip_home: np.ndarray  # arrival home
    home2: np.ndarray  # second household's place, -1 = none
    home2_asn: np.ndarray
    home2_ip: list[str]
    prof_site: np.ndarray  # 0 = main home, 1 = second home
    dev_site: np.ndarray  # 0 = main home, 1 = second home
    vpn_asn: np.ndarray  # registry index of the member's VPN egress ASN, -1 = no VPN
    gateway: np.ndarray  # GeoIP place of the member's mobile carrier at home, -1 = true place
    last_login_city: np.ndarray  # mutable: the true place of each device's last login
    # Account takeover state (set before the traffic is generated, see attacks.plan_takeovers).
    revoked_ms: np.ndarray  # the attacker's password change: every device signed out
    victim_resets: np.ndarray  # bool: the victim will reset the password when locked out
    reset_ms: np.ndarray  # mutable: when the victim reset the password (BIG = not yet)

    @property
    def size(self) -> int:
        return len(self.account_id)

    def location(self, account: np.ndarray, t_ms: np.ndarray) -> np.ndarray:
        """Where each account's household is at each time: a city, or -1 in transit."""
        home = self.home[account]
        dest = self.trip_dest[account]
        has = dest >= 0
        transit = has & (
            ((t_ms >= self.trip_out[account]) & (t_ms < self.trip_in[account]))
            | ((t_ms >= self.trip_back[account]) & (t_ms < self.trip_home[account]))
        )
        away = has & (t_ms >= self.trip_in[account]) & (t_ms < self.trip_back[account])
        return np.where(transit, -1, np.where(away, dest, home))

    def site_home(self, account: np.ndarray, site: np.ndarray) -> np.ndarray:
        """The place each (account, site) household lives: the main home or the second one."""
        return np.where(site == 1, self.home2[account], self.home[account])

    def phase_end(self, account: np.ndarray, t_ms: np.ndarray) -> np.ndarray:
        """The time the household's current location phase ends (sessions stop by then)."""
        big = BIG_MS
        out = np.full(len(account), big, dtype=np.int64)
        has = self.trip_dest[account] >= 0
        for bound in (self.trip_out, self.trip_in, self.trip_back, self.trip_home):
            b = bound[account]
            nxt = has & (b > t_ms) & (b < out)
            out = np.where(nxt, b, out)
        return out


def build_world(config: SimConfig, geo: Geography, asns: AsnRegistry) -> World:
    rng = np.random.default_rng([config.seed, 1])
    n = config.accounts
    allowed = None
    if config.countries:
        wanted = set(config.countries)
        unknown = wanted - set(geo.countries)
        if unknown:
            raise ValueError(f"unknown country codes: {sorted(unknown)}")
        allowed = np.array([c in wanted for c in geo.countries])
    cities = CitySampler(geo, allowed)
    account_id = [f"acc-{i:07d}" for i in range(n)]
    plan = rng.choice(PLANS, size=n, p=[0.3, 0.5, 0.2])
    home = cities.anywhere(rng, n)
    country = geo.country[home]

    home_asn = np.empty(n, dtype=np.int64)
    pick = rng.random(n)
    for ci in np.unique(country):
        members = np.flatnonzero(country == ci)
        options = np.array(asns.by_country[geo.countries[ci]]["broadband"])
        home_asn[members] = options[(pick[members] * len(options)).astype(int)]
    home_ip = asns.ips(home_asn, rng)
    domain = rng.integers(0, len(EMAIL_DOMAINS), size=n)
    email = [f"member{i:07d}@{EMAIL_DOMAINS[d]}" for i, d in enumerate(domain.tolist())]
    card = luhn_cards(rng, n)

    start = config.start_ms
    signup_ms = start - rng.integers(30, 2_000, size=n) * DAY_MS - rng.integers(0, DAY_MS, size=n)
    new = rng.random(n) < config.signup_rate_per_day * config.days
    signup_ms[new] = start + rng.integers(0, config.days * DAY_MS, size=int(new.sum()))
    billing_dom = np.array(
        [min(d.day, 28) for d in signup_ms.astype("datetime64[ms]").astype("datetime64[D]").tolist()],
        dtype=np.int64,
    )

    # Profiles.
    lo_hi = {1: (1, 2), 2: (1, 3), 4: (2, 5)}
    n_prof = np.array([rng.integers(lo_hi[int(p)][0], lo_hi[int(p)][1] + 1) for p in plan.tolist()])
    prof_start = np.concatenate([[0], np.cumsum(n_prof)]).astype(np.int64)
    prof_account = np.repeat(np.arange(n), n_prof)
    m = int(prof_start[-1])
    profile_id = [f"{account_id[a]}-p{k}" for a, k in zip(prof_account.tolist(), (np.arange(m) - prof_start[prof_account]).tolist(), strict=True)]
    prof_country = country[prof_account]
    prof_lang: list[str] = [""] * m
    u = rng.random(m)
    for ci in np.unique(prof_country):
        members = np.flatnonzero(prof_country == ci)
        codes, shares = country_languages(geo.countries[ci])
        cum = np.cumsum(shares)
        chosen = np.minimum(np.searchsorted(cum, u[members] * cum[-1], side="right"), len(codes) - 1)
        for i, c in zip(members.tolist(), chosen.tolist(), strict=True):
            prof_lang[i] = codes[c]
    prof_purist = rng.random(m) < 0.25
    prof_subs = rng.random(m) < 0.30
    aff = np.exp(genre_affinity(config.seed, len(geo.countries)))
    prof_genre = np.empty(m, dtype=np.int64)
    gu = rng.random(m)
    cum_aff = np.cumsum(aff, axis=1)
    cum_aff /= cum_aff[:, -1:]
    for ci in np.unique(prof_country):
        members = np.flatnonzero(prof_country == ci)
        prof_genre[members] = np.minimum(np.searchsorted(cum_aff[ci], gu[members], side="right"), len(GENRES) - 1)

    # Second households (own generator: the base population is unchanged by these shares).
    rx = np.random.default_rng([config.seed, 2])
    n_prof_arr = np.asarray(n_prof)
    eligible = (plan >= 2) & (n_prof_arr >= 2)
    home2 = np.full(n, -1, dtype=np.int64)
    pick2 = np.flatnonzero(eligible & (rx.random(n) < config.second_home_share))
    if len(pick2):
        abroad = rx.random(len(pick2)) < 0.2
        dest = np.full(len(pick2), -1, dtype=np.int64)
        todo = np.flatnonzero(~abroad)
        for _ in range(12):
            if not len(todo):
                break
            cand = cities.within(rx, country[pick2[todo]])
            d = haversine_km(geo.lat[home[pick2[todo]]], geo.lon[home[pick2[todo]]], geo.lat[cand], geo.lon[cand])
            ok = d >= 100
            dest[todo[ok]] = cand[ok]
            todo = todo[~ok]
        far = np.flatnonzero(abroad)
        dest[far] = cities.far_from(rx, home[pick2[far]], 300.0)
        home2[pick2] = dest
    second = home2 >= 0
    home2_asn = np.full(n, -1, dtype=np.int64)
    home2_ip = [""] * n
    for a in np.flatnonzero(second).tolist():
        lines2 = asns.by_country[geo.countries[int(geo.country[home2[a]])]]["broadband"]
        home2_asn[a] = lines2[int(rx.integers(0, len(lines2)))]
        home2_ip[a] = asns.ip(int(home2_asn[a]), rx)
    # The account's last profile lives in the second home.
    prof_site = np.zeros(m, dtype=np.int64)
    prof_site[prof_start[1:][second] - 1] = 1

    # Devices: shared ones per household, a phone per profile.
    has = {
        0: rng.random(n) < 0.80,  # tv
        4: rng.random(n) < 0.15,  # console
        2: rng.random(n) < 0.35,  # tablet
        3: rng.random(n) < 0.40,  # web
    }
    phones = rng.random(m) < 0.85
    phones_per_account = np.bincount(prof_account[phones], minlength=n)
    big_screen2 = rx.random(n) < 0.7
    dev_types_per_account: list[list[int]] = []
    dev_sites: list[int] = []
    for a in range(n):
        types = [t for t in (0, 4, 2, 3) if has[t][a]] + [1] * int(phones_per_account[a])
        if not types:
            types = [3]
        sites = [0] * len(types)
        if second[a]:
            # The second household: a TV (or a browser) and the profile's phone.
            types = [*types, 0 if big_screen2[a] else 3, 1]
            sites += [1, 1]
        dev_types_per_account.append(types)
        dev_sites.extend(sites)
    n_dev = np.array([len(t) for t in dev_types_per_account])
    dev_start = np.concatenate([[0], np.cumsum(n_dev)]).astype(np.int64)
    dev_type = np.array([t for ts in dev_types_per_account for t in ts], dtype=np.int64)
    dev_site = np.array(dev_sites, dtype=np.int64)
    dev_account = np.repeat(np.arange(n), n_dev)
    main_dev = dev_site == 0
    n_main, n_extra = int(main_dev.sum()), int((~main_dev).sum())
    raw = np.empty(len(dev_type), dtype=np.int64)
    raw[main_dev] = rng.integers(0, 2**63, size=n_main, dtype=np.int64)
    raw[~main_dev] = rx.integers(0, 2**63, size=n_extra, dtype=np.int64)
    device_id = [f"dev-{v:016x}" for v in raw.tolist()]
    last_login_ms = np.empty(len(dev_type), dtype=np.int64)
    last_login_ms[main_dev] = start - rng.integers(0, DAY_MS, size=n_main)
    last_login_ms[~main_dev] = start - rx.integers(0, DAY_MS, size=n_extra)

    # Trips (at most one overlapping the period per account).
    window = config.days + 10
    p_trip = 1.0 - (1.0 - config.trip_rate_per_day) ** window
    travels = np.flatnonzero(rng.random(n) < p_trip)
    trip_dest = np.full(n, -1, dtype=np.int64)
    big = BIG_MS
    trip_out = np.full(n, big, dtype=np.int64)
    trip_in = trip_out.copy()
    trip_back = trip_out.copy()
    trip_home = trip_out.copy()
    if len(travels):
        domestic = rng.random(len(travels)) < 0.6
        dest = np.where(domestic, cities.within(rng, country[travels]), cities.anywhere(rng, len(travels)))
        dist = haversine_km(geo.lat[home[travels]], geo.lon[home[travels]], geo.lat[dest], geo.lon[dest])
        ok = np.where(domestic, dist >= 150, dist >= 500)
        travels, dest, dist = travels[ok], dest[ok], dist[ok]
        length_days = rng.integers(2, 11, size=len(travels))
        leave_day = start // DAY_MS - 10 + rng.integers(0, window, size=len(travels))
        # Leave between 06:00 and 20:00 UTC-ish of that day; the exact hour matters little.
        out = leave_day * DAY_MS + rng.integers(6 * 3_600_000, 20 * 3_600_000, size=len(travels))
        # Members sign up at home: no trip before a day after the signup.
        ok = out > signup_ms[travels] + DAY_MS
        travels, dest, dist, length_days, out = travels[ok], dest[ok], dist[ok], length_days[ok], out[ok]
        travel_ms = (dist / TRAVEL_KMH * 3_600_000).astype(np.int64) + TRAVEL_OVERHEAD_MS
        back = out + length_days * DAY_MS + rng.integers(-4 * 3_600_000, 4 * 3_600_000, size=len(travels))
        trip_dest[travels] = dest
        trip_out[travels] = out
        trip_in[travels] = out + travel_ms
        trip_back[travels] = back
        trip_home[travels] = back + travel_ms
    # Each household of a shared account stays put (their distance already looks like travel).
    trip_dest[second] = -1
    for arr in (trip_out, trip_in, trip_back, trip_home):
        arr[second] = big

    # VPN members and their egress; carrier gateways GeoIP places members at.
    vpn_asn = np.full(n, -1, dtype=np.int64)
    vpn_members = np.flatnonzero(rx.random(n) < config.vpn_member_share)
    own_u = rx.random(len(vpn_members))
    any_pick = rx.integers(0, len(asns.vpn), size=len(vpn_members))
    for j, a in enumerate(vpn_members.tolist()):
        local = asns.by_country[geo.countries[int(country[a])]]["hosting"]
        if local and own_u[j] < 0.7:
            vpn_asn[a] = local[int(any_pick[j]) % len(local)]
        else:
            vpn_asn[a] = asns.vpn[int(any_pick[j])]
    gateway = np.full(n, -1, dtype=np.int64)
    todo = np.flatnonzero(rx.random(n) < config.geoip_noise_share)
    for _ in range(12):
        if not len(todo):
            break
        cand = cities.within(rx, country[todo])
        d = haversine_km(geo.lat[home[todo]], geo.lon[home[todo]], geo.lat[cand], geo.lon[cand])
        ok = (d >= 150) & (d <= 600) & (geo.country[cand] == country[todo])
        gateway[todo[ok]] = cand[ok]
        todo = todo[~ok]

    last_login_city = np.where(dev_site == 1, home2[dev_account], home[dev_account])

    return World(
        config=config,
        geo=geo,
        asns=asns,
        cities=cities,
        account_id=account_id,
        plan=plan,
        home=home,
        country=country,
        home_asn=home_asn,
        home_ip=home_ip,
        email=email,
        card=card,
        signup_ms=signup_ms,
        billing_dom=billing_dom,
        prof_start=prof_start,
        profile_id=profile_id,
        prof_account=prof_account,
        prof_lang=prof_lang,
        prof_purist=prof_purist,
        prof_subs=prof_subs,
        prof_genre=prof_genre,
        dev_start=dev_start,
        device_id=device_id,
        dev_type=dev_type,
        dev_account=dev_account,
        last_login_ms=last_login_ms,
        trip_dest=trip_dest,
        trip_out=trip_out,
        trip_in=trip_in,
        trip_back=trip_back,
        trip_home=trip_home,
        home2=home2,
        home2_asn=home2_asn,
        home2_ip=home2_ip,
        prof_site=prof_site,
        dev_site=dev_site,
        vpn_asn=vpn_asn,
        gateway=gateway,
        last_login_city=last_login_city,
        revoked_ms=np.full(n, big, dtype=np.int64),
        victim_resets=np.zeros(n, dtype=bool),
        reset_ms=np.full(n, big, dtype=np.int64),
    )
