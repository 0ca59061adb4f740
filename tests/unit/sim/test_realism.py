"""Legitimate traffic behaves physically and commercially: travel, plans, daily rhythm."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
from sim_case import SMALL, Run
from streamsense.events import validate_event
from streamsense_sim.geo import haversine_km

AIRLINER_KMH = 900.0  # cruise speed of a jet airliner


def _ms(event: dict) -> float:
    return validate_event(event).occurred_at.timestamp() * 1000.0


def test_no_legitimate_traveller_moves_faster_than_an_airliner(small_run: Run) -> None:
    """Physical movement: each household (the second home of a shared account is its own)
    from event to event, leaving out the places GeoIP makes up (VPN egress, carrier gateway)."""
    last: dict[tuple[str, bool], tuple[float, float, float]] = {}
    moves = 0
    fastest = 0.0
    for e in small_run.events:
        net = e["payload"].get("network")
        if net is None or e["event_id"] in small_run.truth or e["type"] == "label":
            continue
        if small_run.trapped(e, "vpn_member") or small_run.trapped(e, "geoip_noise"):
            continue
        t = _ms(e)
        key = (e["account_id"], small_run.trapped(e, "second_home"))
        prev = last.get(key)
        if prev is not None:
            km = float(haversine_km(prev[1], prev[2], net["lat"], net["lon"]))
            if km > 0:
                moves += 1
                speed = km / max((t - prev[0]) / 3_600_000, 1e-9)
                fastest = max(fastest, speed)
                assert speed <= AIRLINER_KMH, (e["account_id"], km, t - prev[0])
        last[key] = (t, net["lat"], net["lon"])
    # The period does contain legitimate trips (not a vacuous check).
    assert moves >= 5
    assert 0 < fastest <= AIRLINER_KMH


def _apparent_jumps(run: Run, kind: str) -> int:
    """Trap events of ``kind`` that, seen per account as GeoIP reports it, look faster than an
    airliner since the account's previous event: what an impossible-travel rule would see."""
    last: dict[str, tuple[float, float, float]] = {}
    jumps = 0
    for e in run.events:
        net = e["payload"].get("network")
        if net is None or e["event_id"] in run.truth or e["type"] == "label":
            continue
        t = _ms(e)
        prev = last.get(e["account_id"])
        if prev is not None and run.trapped(e, kind) and e["type"] in ("login", "playback_start"):
            km = float(haversine_km(prev[1], prev[2], net["lat"], net["lon"]))
            jumps += km >= 100 and km / max((t - prev[0]) / 3_600_000, 1e-9) > AIRLINER_KMH
        last[e["account_id"]] = (t, net["lat"], net["lon"])
    return jumps


def test_legitimate_traps_are_never_labelled_as_attacks(small_run: Run) -> None:
    events = {e["event_id"]: e for e in small_run.events}
    assert not set(small_run.traps) & set(small_run.truth)
    labelled = {e["payload"]["target_event_id"] for e in small_run.events if e["type"] == "label"}
    assert not set(small_run.traps) & labelled
    kinds = {k for row in small_run.traps.values() for k in row["traps"]}
    assert kinds == {"vpn_member", "geoip_noise", "second_home", "traveller", "card_renewal", "takeover_victim"}
    for eid, row in small_run.traps.items():
        e = events[eid]
        assert row["label"] == "legitimate"
        assert (row["type"], row["account_id"], row["occurred_at"]) == (e["type"], e["account_id"], e["occurred_at"])
    # The traps are real traps: seen naively, VPN and shared-home traffic jumps impossibly fast.
    assert _apparent_jumps(small_run, "vpn_member") >= 3
    assert _apparent_jumps(small_run, "second_home") >= 3
    # A gateway is only 150-600 km off: a jump needs a home event minutes before (2 here).
    assert _apparent_jumps(small_run, "geoip_noise") >= 1


def test_travellers_log_in_at_the_far_end_of_a_real_trip(small_run: Run) -> None:
    world, geo = small_run.sim.world, small_run.sim.geo
    index = {a: i for i, a in enumerate(world.account_id)}
    far = 0
    for e in small_run.events:
        if e["type"] != "login" or not small_run.trapped(e, "traveller") or small_run.trapped(e, "vpn_member"):
            continue
        a = index[e["account_id"]]
        dest = int(world.trip_dest[a])
        net = e["payload"]["network"]
        assert world.trip_in[a] <= _ms(e) < world.trip_back[a]  # after arriving, before leaving
        km = float(haversine_km(geo.lat[world.home[a]], geo.lon[world.home[a]], geo.lat[dest], geo.lon[dest]))
        if not small_run.trapped(e, "geoip_noise"):
            assert (net["lat"], net["lon"]) == (geo.lat[dest], geo.lon[dest])
        assert km >= 150
        far += km >= 1000
    assert far >= 3


def test_second_homes_stream_at_the_same_time_within_the_plan(small_run: Run) -> None:
    world, geo = small_run.sim.world, small_run.sim.geo
    index = {a: i for i, a in enumerate(world.account_id)}
    spans: dict[str, list] = {}
    for e in small_run.events:
        if e["event_id"] in small_run.truth:
            continue
        if e["type"] == "playback_start":
            spans[e["payload"]["session_id"]] = [e["account_id"], _ms(e), float("inf"), small_run.trapped(e, "second_home"), e]
        elif e["type"] == "playback_stop":
            spans[e["payload"]["session_id"]][2] = _ms(e)
    by_account: dict[str, list] = defaultdict(list)
    for row in spans.values():
        by_account[row[0]].append(row)
    together = 0
    for acc, rows in by_account.items():
        a = index[acc]
        second = [r for r in rows if r[3]]
        if not second:
            continue
        assert world.home2[a] >= 0 and world.plan[a] >= 2
        h1, h2 = int(world.home[a]), int(world.home2[a])
        assert float(haversine_km(geo.lat[h1], geo.lon[h1], geo.lat[h2], geo.lon[h2])) >= 100
        for r in second:
            assert r[4]["payload"]["profile_id"] == world.profile_id[world.prof_start[a + 1] - 1]
            assert r[4]["payload"]["device"]["device_id"] in {
                world.device_id[d] for d in range(world.dev_start[a], world.dev_start[a + 1]) if world.dev_site[d] == 1}
        together += any(f[1] < s[2] and s[1] < f[2] for f in rows if not f[3] for s in second)
    assert together >= 2


def test_carrier_geoip_places_members_at_a_regional_gateway(small_run: Run) -> None:
    world, geo, reg = small_run.sim.world, small_run.sim.geo, small_run.sim.asns
    index = {a: i for i, a in enumerate(world.account_id)}
    mobile = {reg.asns[i].number for kinds in reg.by_country.values() for i in kinds["mobile"]}
    seen = 0
    for e in small_run.events:
        if not small_run.trapped(e, "geoip_noise"):
            continue
        a = index[e["account_id"]]
        g, h = int(world.gateway[a]), int(world.home[a])
        net = e["payload"]["network"]
        assert (net["lat"], net["lon"], net["country"]) == (geo.lat[g], geo.lon[g], geo.country_code(h))
        assert 150 <= float(haversine_km(geo.lat[h], geo.lon[h], geo.lat[g], geo.lon[g])) <= 600
        assert net["asn"] in mobile
        if "network_type" in e["payload"]:
            assert e["payload"]["network_type"].startswith("cellular")
        seen += 1
    assert seen >= 20


def test_expired_cards_renew_with_small_verification_charges(small_run: Run) -> None:
    world = small_run.sim.world
    index = {a: i for i, a in enumerate(world.account_id)}
    flows: dict[str, list[dict]] = defaultdict(list)
    for e in small_run.events:
        if small_run.trapped(e, "card_renewal"):
            flows[e["account_id"]].append(e)
    declined_checks = 0
    for acc, events in flows.items():
        a = index[acc]
        kinds = [e["type"] for e in events]
        if len(events) < 4:  # the end of the period cut the flow
            assert _ms(events[-1]) >= SMALL.end_ms - 12 * 3_600_000
            continue
        assert kinds[:2] == ["payment", "account_change"] and set(kinds[2:]) == {"payment"}
        old, change, checks, charge = events[0]["payload"], events[1]["payload"], events[2:-1], events[-1]["payload"]
        assert old["status"] == "declined" and old["merchant_id"] == "billing-recurring"
        assert change["field"] == "payment_method"
        assert change["device"]["device_id"] in world.device_id[world.dev_start[a]:world.dev_start[a + 1]]
        assert all(c["payload"]["amount"] == 1.0 and c["payload"]["merchant_id"] == "billing-card-check" for c in checks)
        assert [c["payload"]["status"] for c in checks][-1] == "approved" and len(checks) <= 3
        declined_checks += sum(c["payload"]["status"] == "declined" for c in checks)
        new_card = checks[0]["payload"]["card_number"]
        assert new_card != old["card_number"] and new_card == world.card[a]
        assert (charge["card_number"], charge["status"], charge["amount"]) == (new_card, "approved", old["amount"])
    assert len(flows) >= 5 and declined_checks >= 2


def test_legitimate_streams_never_exceed_the_plan(small_run: Run) -> None:
    world = small_run.sim.world
    index = {a: i for i, a in enumerate(world.account_id)}
    spans: dict[str, list[float]] = {}
    owner: dict[str, str] = {}
    for e in small_run.events:
        if e["event_id"] in small_run.truth:
            continue
        if e["type"] == "playback_start":
            spans[e["payload"]["session_id"]] = [_ms(e), float("inf")]
            owner[e["payload"]["session_id"]] = e["account_id"]
        elif e["type"] == "playback_stop":
            spans[e["payload"]["session_id"]][1] = _ms(e)
    per_account: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for sid, (a, b) in spans.items():
        per_account[owner[sid]] += [(a, 1), (b, -1)]
    at_plan = 0
    for acc, marks in per_account.items():
        live = peak = 0
        for _, step in sorted(marks, key=lambda m: (m[0], m[1])):
            live += step
            peak = max(peak, live)
        plan = int(world.plan[index[acc]])
        assert peak <= plan, (acc, peak, plan)
        at_plan += peak == plan and plan > 1
    # Households do share: some multi-stream plans are used to their limit.
    assert at_plan >= 3


def test_viewing_peaks_in_the_local_evening(small_run: Run) -> None:
    geo = small_run.sim.geo
    hours = np.zeros(24)
    for e in small_run.events:
        if e["type"] != "playback_start" or e["event_id"] in small_run.truth:
            continue
        net = e["payload"]["network"]
        city = int(np.argmin(np.abs(geo.lat - net["lat"]) + np.abs(geo.lon - net["lon"])))
        local = validate_event(e).occurred_at.astimezone(ZoneInfo(geo.zones[geo.zone[city]]))
        hours[local.hour] += 1
    evening = hours[19:23].sum()
    night = hours[2:6].sum()
    assert evening > 0.4 * hours.sum()
    assert night < 0.05 * hours.sum()


def test_sessions_stay_inside_their_title(small_run: Run) -> None:
    stops = [e["payload"] for e in small_run.events if e["type"] == "playback_stop"]
    assert stops
    for p in stops:
        assert 0 < p["watched_s"] <= p["title_duration_s"]


def test_languages_follow_profiles_and_titles(small_run: Run) -> None:
    world, cat = small_run.sim.world, small_run.sim.catalogue
    prof = {p: i for i, p in enumerate(world.profile_id)}
    title = {t: i for i, t in enumerate(cat.title_ids)}
    checked = 0
    for e in small_run.events:
        if e["type"] != "playback_start" or e["event_id"] in small_run.truth:
            continue
        p = e["payload"]
        own = world.prof_lang[prof[p["profile_id"]]]
        original = cat.language[title[p["title_id"]]]
        assert p["audio_language"] in (own, original)
        if p["audio_language"] != own:
            assert p["subtitle_language"] == own
        checked += 1
    assert checked > 100


def test_start_is_a_monday_and_weekend_is_busier() -> None:
    assert datetime(SMALL.start.year, SMALL.start.month, SMALL.start.day).weekday() == 0
    from streamsense_sim.traffic import ACTIVE_P

    assert ACTIVE_P[5] > ACTIVE_P[0]
