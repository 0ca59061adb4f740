"""Injected attacks: every type present, labeled, and shaped as its definition says."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import numpy as np
from sim_case import SMALL, Run
from streamsense.events import validate_event
from streamsense_sim import ATTACK_TYPES, vpn_asns
from streamsense_sim.geo import haversine_km


def _ms(event: dict[str, Any]) -> float:
    return validate_event(event).occurred_at.timestamp() * 1000.0


def _by_attack(run: Run) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in run.events:
        row = run.truth.get(e["event_id"])
        if row is not None:
            out[row["attack_id"]].append(e)
    return out


def test_ground_truth_rows_match_the_events_they_label(small_run: Run) -> None:
    events = {e["event_id"]: e for e in small_run.events}
    assert set(small_run.truth) <= set(events)
    for eid, row in small_run.truth.items():
        e = events[eid]
        assert (row["type"], row["account_id"], row["occurred_at"]) == (e["type"], e["account_id"], e["occurred_at"])
        assert row["attack_type"] in ATTACK_TYPES
    assert {r["attack_type"] for r in small_run.truth.values()} == set(ATTACK_TYPES)
    # One attack id never mixes types.
    types = defaultdict(set)
    for row in small_run.truth.values():
        types[row["attack_id"]].add(row["attack_type"])
    assert all(len(v) == 1 for v in types.values())


def test_label_events_point_at_attack_events(small_run: Run) -> None:
    events = {e["event_id"]: e for e in small_run.events}
    labels = [e for e in small_run.events if e["type"] == "label"]
    assert len(labels) >= 20
    for lab in labels:
        p = lab["payload"]
        target = events[p["target_event_id"]]
        assert p["target_event_id"] in small_run.truth
        assert p["is_fraud"] is True
        assert target["type"] == p["target_type"]
        assert target["occurred_at"] == p["target_occurred_at"]
        assert lab["account_id"] == target["account_id"]
        assert _ms(lab) > _ms(target) + 86_400_000 * 0.99  # labels arrive days later
        if p["kind"] == "chargeback":
            assert p["merchant_id"] == target["payload"]["merchant_id"]
            assert p["card_number"] == target["payload"]["card_number"]
            assert target["payload"]["status"] == "approved"


def test_account_takeover_shape(small_run: Run) -> None:
    world, geo = small_run.sim.world, small_run.sim.geo
    index = {a: i for i, a in enumerate(world.account_id)}
    seen = 0
    for events in _by_attack(small_run).values():
        if small_run.truth[events[0]["event_id"]]["attack_type"] != "account_takeover":
            continue
        seen += 1
        kinds = [e["type"] for e in events]
        ok_login = next(e for e in events if e["type"] == "login" and e["payload"]["success"])
        a = index[ok_login["account_id"]]
        net = ok_login["payload"]["network"]
        km = float(haversine_km(geo.lat[world.home[a]], geo.lon[world.home[a]], net["lat"], net["lon"]))
        assert km >= 3000
        assert ok_login["payload"]["device"]["device_id"] not in world.device_id[world.dev_start[a]:world.dev_start[a + 1]]
        changes = [e["payload"]["field"] for e in events if e["type"] == "account_change"]
        assert changes[:2] == ["password", "email"]
        first_play = kinds.index("playback_start")
        assert first_play > kinds.index("account_change")
        assert kinds.count("playback_start") >= 1
    assert seen >= 3


def test_credential_stuffing_is_one_ip_over_many_accounts_in_minutes(small_run: Run) -> None:
    seen = 0
    for events in _by_attack(small_run).values():
        if small_run.truth[events[0]["event_id"]]["attack_type"] != "credential_stuffing":
            continue
        seen += 1
        assert {e["type"] for e in events} == {"login"}
        assert len({e["payload"]["network"]["ip"] for e in events}) == 1
        assert len({e["account_id"] for e in events}) >= 100
        span = _ms(events[-1]) - _ms(events[0])
        assert span <= 15 * 60_000
        fails = sum(not e["payload"]["success"] for e in events)
        assert fails >= 0.9 * len(events)
        reasons = {e["payload"].get("failure_reason") for e in events if not e["payload"]["success"]}
        assert reasons == {"bad_password", "unknown_account"}
    assert seen >= 1


def test_impossible_travel_outruns_any_airliner(small_run: Run) -> None:
    last: dict[str, tuple[float, float, float]] = {}
    seen = 0
    for e in small_run.events:
        net = e["payload"].get("network")
        if net is None or e["type"] == "label":
            continue
        row = small_run.truth.get(e["event_id"])
        if row is None:
            last[e["account_id"]] = (_ms(e), net["lat"], net["lon"])
            continue
        if row["attack_type"] == "impossible_travel" and e["type"] == "login":
            prev = last[e["account_id"]]
            km = float(haversine_km(prev[1], prev[2], net["lat"], net["lon"]))
            hours = (_ms(e) - prev[0]) / 3_600_000
            assert km >= 5000
            assert km / hours >= 3300
            seen += 1
    assert seen >= 3


def test_concurrent_streams_exceed_the_plan_from_far_apart_cities(small_run: Run) -> None:
    world = small_run.sim.world
    index = {a: i for i, a in enumerate(world.account_id)}
    seen = 0
    for events in _by_attack(small_run).values():
        if small_run.truth[events[0]["event_id"]]["attack_type"] != "concurrent_streams":
            continue
        starts = [e for e in events if e["type"] == "playback_start"]
        stops = {e["payload"]["session_id"]: _ms(e) for e in events if e["type"] == "playback_stop"}
        plan = int(world.plan[index[starts[0]["account_id"]]])
        assert len(starts) > plan
        latest_start = max(_ms(e) for e in starts)
        assert all(stops.get(e["payload"]["session_id"], float("inf")) > latest_start for e in starts)
        lat = np.array([e["payload"]["network"]["lat"] for e in starts])
        lon = np.array([e["payload"]["network"]["lon"] for e in starts])
        d = haversine_km(lat[:, None], lon[:, None], lat[None, :], lon[None, :])
        assert np.min(d[~np.eye(len(starts), dtype=bool)]) >= 1000
        seen += 1
    assert seen >= 3


def test_card_testing_is_a_burst_of_small_declined_payments(small_run: Run) -> None:
    seen = 0
    for events in _by_attack(small_run).values():
        if small_run.truth[events[0]["event_id"]]["attack_type"] != "card_testing":
            continue
        pays = [e["payload"] for e in events if e["type"] == "payment"]
        assert events[0]["type"] == "signup"
        assert len(pays) >= 10
        assert len({p["card_number"] for p in pays}) == len(pays)
        assert all(0.5 <= p["amount"] < 3.0 for p in pays)
        assert sum(p["status"] == "declined" for p in pays) > len(pays) / 2
        assert (_ms(events[-1]) - _ms(events[2])) <= 10 * 60_000
        seen += 1
    assert seen >= 1


def test_stolen_card_payments_are_approved_then_charged_back(small_run: Run) -> None:
    charged = {e["payload"]["target_event_id"] for e in small_run.events if e["type"] == "label" and e["payload"]["kind"] == "chargeback"}
    seen = 0
    for events in _by_attack(small_run).values():
        if small_run.truth[events[0]["event_id"]]["attack_type"] != "stolen_card":
            continue
        pays = [e for e in events if e["type"] == "payment"]
        assert len(pays) >= 2
        assert len({p["payload"]["card_number"] for p in pays}) == 1
        assert all(p["payload"]["status"] == "approved" for p in pays)
        assert all(p["event_id"] in charged for p in pays)
        seen += 1
    assert seen >= 3


def test_vpn_asns_are_shared_by_attackers_and_legit_vpn_members(small_run: Run, small_files: Any) -> None:
    vpn = vpn_asns()
    assert len(vpn) == 12
    manifest = json.loads((small_files / "manifest.json").read_text())
    assert set(manifest["vpn_asns"]) == vpn
    world, geo, reg = small_run.sim.world, small_run.sim.geo, small_run.sim.asns
    egress = {reg.asns[i].number: (geo.lat[c], geo.lon[c]) for i, c in reg.egress.items()}
    index = {a: i for i, a in enumerate(world.account_id)}
    attack_vpn = legit_vpn = 0
    for e in small_run.events:
        net = e["payload"].get("network")
        if net is None or net["asn"] not in vpn:
            continue
        # Members and attackers alike: GeoIP puts a VPN egress in its one data-centre city.
        assert (net["lat"], net["lon"]) == egress[net["asn"]]
        if e["event_id"] in small_run.truth:
            attack_vpn += 1
            continue
        # A legitimate event on a VPN ASN is always a VPN member's own (and tagged as a trap).
        legit_vpn += 1
        assert small_run.trapped(e, "vpn_member"), e
        a = index[e["account_id"]]
        assert reg.asns[int(world.vpn_asn[a])].number == net["asn"]
        assert e["payload"]["device"]["device_type"] in ("mobile", "tablet", "web")
    assert attack_vpn >= 100 and legit_vpn >= 100
    # Tagged VPN events are exactly the legitimate events on VPN ASNs.
    tagged = [e for e in small_run.events if small_run.trapped(e, "vpn_member")]
    assert all(e["payload"]["network"]["asn"] in vpn for e in tagged) and len(tagged) == legit_vpn


def test_takeover_victims_are_locked_out_then_some_reset_from_their_own_device(small_run: Run) -> None:
    world = small_run.sim.world
    index = {a: i for i, a in enumerate(world.account_id)}
    attacks = _by_attack(small_run)
    locked = resets = 0
    for events in attacks.values():
        if small_run.truth[events[0]["event_id"]]["attack_type"] != "account_takeover":
            continue
        acc = events[0]["account_id"]
        a = index[acc]
        t_pw = _ms(next(e for e in events if e["type"] == "account_change"))
        assert t_pw == world.revoked_ms[a]
        own = [e for e in small_run.events if e["account_id"] == acc and e["event_id"] not in small_run.truth
               and e["type"] != "label" and _ms(e) >= t_pw]  # fmt: skip
        reset = [e for e in own if e["type"] == "account_change" and e["payload"]["field"] == "password"]
        t_reset = _ms(reset[0]) if reset else float("inf")
        assert len(reset) <= 1
        for e in own:
            if e["type"] == "login" and _ms(e) < t_reset:
                # Before the reset every attempt uses the old password.
                assert not e["payload"]["success"] and e["payload"]["failure_reason"] == "bad_password"
                assert small_run.trapped(e, "takeover_victim")
                locked += 1
            if e["type"] == "playback_start":
                # Signed out: no new play until the reset (a login may precede its play by <= 2 min).
                assert _ms(e) < t_pw + 150_000 or _ms(e) > t_reset
        if reset:
            resets += 1
            assert bool(world.victim_resets[a])
            change = reset[0]
            assert small_run.trapped(change, "takeover_victim")
            # From one of the victim's own devices, after a failed attempt, then a good login.
            devices = set(world.device_id[world.dev_start[a]:world.dev_start[a + 1]])
            assert change["payload"]["device"]["device_id"] in devices
            before = [e for e in own if e["type"] == "login" and _ms(e) < t_reset]
            assert any(e["payload"]["device"] == change["payload"]["device"] for e in before)
            after = next(e for e in own if e["type"] == "login" and _ms(e) > t_reset)
            assert after["payload"]["success"] and _ms(after) == t_reset + 60_000
        elif any(e["type"] == "login" for e in own):
            # Locked out and no reset in the file: a victim who never resets, or one whose
            # reset falls after the period's end.
            assert not world.victim_resets[a] or world.reset_ms[a] >= SMALL.end_ms
    assert locked >= 3 and resets >= 1
