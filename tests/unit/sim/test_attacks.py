"""Injected attacks: every type present, labeled, and shaped as its definition says."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import numpy as np
from sim_case import Run
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


def test_vpn_asns_are_the_ones_attackers_use(small_run: Run, small_files: Any) -> None:
    vpn = vpn_asns()
    assert len(vpn) == 12
    manifest = json.loads((small_files / "manifest.json").read_text())
    assert set(manifest["vpn_asns"]) == vpn
    stuffing_asns = {e["payload"]["network"]["asn"] for e in small_run.events
                     if small_run.truth.get(e["event_id"], {}).get("attack_type") == "credential_stuffing"}  # fmt: skip
    legit_asns = {e["payload"]["network"]["asn"] for e in small_run.events
                  if e["event_id"] not in small_run.truth and "network" in e["payload"]}  # fmt: skip
    assert not legit_asns & vpn
    assert stuffing_asns
