"""The simulator's building blocks: places, zones, languages, networks, cards, the player."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from streamsense_sim import SimConfig
from streamsense_sim.geo import country_languages, haversine_km, load_asns, load_geography
from streamsense_sim.qoe import LADDER, TraceFamily, _window_sum, play
from streamsense_sim.render import iso
from streamsense_sim.world import luhn_cards, luhn_ok


def _place(name: str, cc: str) -> int:
    geo = load_geography()
    return next(i for i, n in enumerate(geo.name) if n == name and geo.country_code(i) == cc)


def test_geonames_places_and_their_time_zones() -> None:
    geo = load_geography()
    assert geo.size > 140_000 and len(geo.countries) > 240
    assert "NA" in geo.countries  # Namibia is a country code, not a missing value
    for name, cc, zone in [
        ("Madrid", "ES", "Europe/Madrid"),
        ("Los Angeles", "US", "America/Los_Angeles"),
        ("New York City", "US", "America/New_York"),
        ("Vladivostok", "RU", "Asia/Vladivostok"),
        ("Sydney", "AU", "Australia/Sydney"),
        ("Windhoek", "NA", "Africa/Windhoek"),
    ]:
        assert geo.zones[geo.zone[_place(name, cc)]] == zone
    offsets = geo.utc_offset_s(datetime(2024, 6, 3, 12, tzinfo=UTC))
    assert offsets[geo.zones.index("Europe/Madrid")] == 2 * 3600  # CEST in June
    assert offsets[geo.zones.index("Australia/Sydney")] == 10 * 3600


def test_distances() -> None:
    geo = load_geography()
    a, b = _place("Madrid", "ES"), _place("Los Angeles", "US")
    km = float(haversine_km(geo.lat[a], geo.lon[a], geo.lat[b], geo.lon[b]))
    assert 9_300 < km < 9_450  # Madrid-Los Angeles great circle is about 9,380 km
    assert float(haversine_km(10.0, 20.0, 10.0, 20.0)) == 0.0


def test_languages_come_from_cldr() -> None:
    assert country_languages("BR") == (("pt",), (1.0,))
    assert country_languages("CH")[0] == ("de", "fr", "it")
    codes, shares = country_languages("US")
    assert codes == ("en", "es") and shares[0] > 0.85
    assert abs(sum(country_languages("IN")[1]) - 1.0) < 1e-12


def test_asn_registry_is_deterministic_and_disjoint() -> None:
    reg = load_asns()
    numbers = [a.number for a in reg.asns]
    assert len(set(numbers)) == len(numbers)
    prefixes = [p for a in reg.asns for p in a.prefixes]
    assert len(set(prefixes)) == len(prefixes)
    assert all(reg.asns[i].kind == "hosting" and reg.asns[i].vpn for i in reg.vpn)
    assert sum(a.vpn for a in reg.asns) == len(reg.vpn) == 12
    de = reg.by_country["DE"]
    assert len(de["broadband"]) >= 1 and len(de["mobile"]) >= 1
    ip = reg.ip(de["mobile"][0], np.random.default_rng(0))
    first_two = (int(ip.split(".")[0]) << 8) | int(ip.split(".")[1])
    assert first_two in reg.asns[de["mobile"][0]].prefixes


def test_cards_are_luhn_valid() -> None:
    assert luhn_ok("4111111111111111")
    assert not luhn_ok("4111111111111112")
    cards = luhn_cards(np.random.default_rng(3), 500)
    assert all(len(c) == 16 and c[0] in "45" and luhn_ok(c) for c in cards)


def test_iso_timestamps_match_pydantic() -> None:
    assert iso(np.array([1717372800000, 1717372800123])) == [
        "2024-06-03T00:00:00Z",
        "2024-06-03T00:00:00.123000Z",
    ]


def test_player_on_steady_and_dead_networks() -> None:
    # Steady 5 Mbps on a TV: rate-based picks the highest rung <= 0.85 * 5000 = 2850 kbps.
    steady = play(
        startup_kbps=np.array([5000.0]),
        series=np.full((1, 4), 5000.0),
        latency_ms=np.array([50.0]),
        device_type=np.array([0]),
        watched_s=np.array([1300.0]),
        interval_s=300,
    )
    assert steady.n_beats.tolist() == [4]
    assert steady.beat_bitrate[0].tolist() == [2850.0] * 4
    assert steady.beat_rebuffer_ms[0].tolist() == [0, 0, 0, 0]
    # startup: one 4 s chunk at 1850 kbps (<= 40% of 5000) over 5000 kbps + 2 RTTs + 150 ms
    assert steady.startup_ms.tolist() == [round((4 * 1850 / 5000 + 0.1 + 0.15) * 1000)]
    # ... and what playback_start reports: the startup window's rate and the startup chunk's bitrate
    assert steady.startup_kbps.tolist() == [5000.0]
    assert steady.startup_bitrate.tolist() == [1850.0]
    assert steady.watched_s.tolist() == [1300.0]
    # A dead network: the buffer (4 s) drains, the viewer stalls and abandons after >= 120 s.
    dead = play(
        startup_kbps=np.array([1000.0]),
        series=np.zeros((1, 4)),
        latency_ms=np.array([50.0]),
        device_type=np.array([1]),
        watched_s=np.array([1300.0]),
        interval_s=300,
    )
    assert dead.n_beats.tolist() == [1]
    # 40% of 1000 kbps is under the 750 kbps rung: the startup chunk is the 300 kbps rung
    assert dead.startup_bitrate.tolist() == [300.0]
    assert dead.beat_rebuffer_ms[0, 0] == 296_000
    assert dead.watched_s.tolist() == [300.0]
    assert LADDER[0] == 300.0


def test_trace_windows_loop_over_the_trace() -> None:
    bins = np.array([100.0, 200.0, 300.0])
    fam = TraceFamily(
        name="t",
        files=("a",),
        prefix=np.concatenate([[0.0], np.cumsum(bins)]),
        offset=np.array([0]),
        length=np.array([3]),
        total=np.array([600.0]),
        latency_ms=np.array([10.0]),
    )
    trace = np.array([0, 0, 0])
    sums = _window_sum(fam, trace, np.array([0, 1, 2]), np.array([3, 5, 9]))
    assert sums.tolist() == [600.0, 200 + 300 + 100 + 200, 300 + 600 + 600 - 0.0]


def test_vpn_egress_is_one_data_centre_city_per_asn() -> None:
    reg = load_asns()
    # The principal city of the country's first IANA zone (GeoNames' nearest place).
    assert {reg.asns[i].country: name for i, name in reg.egress_name.items()} == {
        "CN": "Shanghai, CN", "DE": "Tiergarten Bezirk, DE", "FR": "Paris, FR",  # Tiergarten: central Berlin
        "ID": "Jakarta, ID", "IT": "Rome, IT", "US": "New York City, US",
    }  # fmt: skip
    assert set(reg.egress) == set(reg.vpn)


def test_world_traps_by_construction() -> None:
    from streamsense_sim.geo import load_geography
    from streamsense_sim.world import build_world

    geo, reg = load_geography(), load_asns()
    cfg = SimConfig(accounts=3000, seed=2, second_home_share=0.2, vpn_member_share=0.1, geoip_noise_share=0.2)
    w = build_world(cfg, geo, reg)
    second = np.flatnonzero(w.home2 >= 0)
    assert 200 <= len(second) <= 500  # 20% of the ~1,400 multi-stream accounts with 2+ profiles
    for a in second.tolist():
        assert w.plan[a] >= 2
        sites = w.prof_site[w.prof_start[a]:w.prof_start[a + 1]].tolist()
        assert sites[-1] == 1 and sum(sites) == 1 and len(sites) >= 2
        devices = range(w.dev_start[a], w.dev_start[a + 1])
        assert sorted(int(w.dev_type[d]) for d in devices if w.dev_site[d] == 1) in ([0, 1], [1, 3])
        assert w.trip_dest[a] == -1
        km = float(haversine_km(geo.lat[w.home[a]], geo.lon[w.home[a]], geo.lat[w.home2[a]], geo.lon[w.home2[a]]))
        assert km >= 100
        assert reg.asns[int(w.home2_asn[a])].country == geo.country_code(int(w.home2[a]))
    members = np.flatnonzero(w.vpn_asn >= 0)
    assert 240 <= len(members) <= 360 and set(w.vpn_asn[members].tolist()) <= set(reg.vpn)
    gw = np.flatnonzero(w.gateway >= 0)
    gw_km = haversine_km(geo.lat[w.home[gw]], geo.lon[w.home[gw]], geo.lat[w.gateway[gw]], geo.lon[w.gateway[gw]])
    assert len(gw) >= 450 and gw_km.min() >= 150 and gw_km.max() <= 600
    assert (geo.country[w.gateway[gw]] == w.country[gw]).all()
    # Without the traps the same seed gives the same base population.
    plain = build_world(SimConfig(accounts=3000, seed=2, second_home_share=0.0, vpn_member_share=0.0), geo, reg)
    assert plain.home.tolist() == w.home.tolist() and plain.card == w.card
    assert [plain.device_id[d] for d in range(len(plain.device_id))] == [w.device_id[d] for d in np.flatnonzero(w.dev_site == 0)]


def test_titles_have_two_to_four_distinct_variants(tmp_path: Path) -> None:
    from streamsense_sim.catalogue import VARIANT_STYLES, build_catalogue
    from streamsense_sim.geo import load_geography

    geo = load_geography()
    cat = build_catalogue(SimConfig(seed=3, generated_titles=500), geo, np.full(len(geo.countries), 1.0 / len(geo.countries)))
    counts = [len(cat.variants(t)) for t in range(cat.size)]
    assert set(counts) == {2, 3, 4}
    assert all(len(set(cat.variants(t))) == counts[t] and set(cat.variants(t)) <= set(VARIANT_STYLES) for t in range(cat.size))
    rows = cat.to_rows()
    assert rows[0][-1] == "variants" and rows[1][-1] == "|".join(cat.variants(0))


def test_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="vpn_member_share"):
        SimConfig(vpn_member_share=1.5)
    with pytest.raises(ValueError, match="home_row_share"):
        SimConfig(home_row_share=-0.1)
    with pytest.raises(ValueError):
        SimConfig(accounts=0)
    with pytest.raises(ValueError):
        SimConfig(trace_split="test")
    with pytest.raises(ValueError):
        SimConfig(heartbeat_s=1)


def test_unknown_country_filter_is_refused(tmp_path: Path) -> None:
    from streamsense_sim import Simulator

    with pytest.raises(ValueError, match="ZZ"):
        Simulator(SimConfig(accounts=10, countries=("ZZ",)))
    sim = Simulator(SimConfig(accounts=200, countries=("NA", "JP")))
    assert set(sim.summary.members_by_country) == {"NA", "JP"}
