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
    last: dict[str, tuple[float, float, float]] = {}
    moves = 0
    fastest = 0.0
    for e in small_run.events:
        net = e["payload"].get("network")
        if net is None or e["event_id"] in small_run.truth or e["type"] == "label":
            continue
        t = _ms(e)
        prev = last.get(e["account_id"])
        if prev is not None:
            km = float(haversine_km(prev[1], prev[2], net["lat"], net["lon"]))
            if km > 0:
                moves += 1
                speed = km / max((t - prev[0]) / 3_600_000, 1e-9)
                fastest = max(fastest, speed)
                assert speed <= AIRLINER_KMH, (e["account_id"], km, t - prev[0])
        last[e["account_id"]] = (t, net["lat"], net["lon"])
    # The period does contain legitimate trips (not a vacuous check).
    assert moves >= 5
    assert 0 < fastest <= AIRLINER_KMH


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
