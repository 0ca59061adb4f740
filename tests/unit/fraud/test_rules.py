"""Every rule on both sides of its threshold, and the decision policy."""

from __future__ import annotations

import pytest
from streamsense.fraud.decisions import decide, model_action
from streamsense.fraud.features import Activity
from streamsense.fraud.rules import (
    Hit,
    RuleConfig,
    card_testing,
    concurrent_streams,
    credential_stuffing,
    evaluate,
    impossible_travel,
    sensitive_change_new_device_country,
)

C = RuleConfig()


def travel(km: float, hours: float, asn: int = 3320, prev_asn: int = 3320) -> Activity:
    return Activity("login", asn=asn, prev_distance_km=km, prev_hours=hours, prev_asn=prev_asn)


@pytest.mark.parametrize(
    ("km", "hours", "fires"),
    [
        (500.0, 0.01, False),  # exactly 500 km: GeoIP-noise tolerance, never fires
        (500.1, 0.01, True),
        (900.0, 1.0, False),  # exactly 900 km/h
        (900.1, 1.0, True),
        (1800.0, 2.0, False),
        (1800.0, 1.999, True),
        (6000.0, 0.0, True),  # same instant, far apart
        (120.0, 0.0, False),  # a short hop at the same instant: noise
    ],
)
def test_impossible_travel_threshold(km: float, hours: float, fires: bool) -> None:
    assert (impossible_travel(travel(km, hours), C) is not None) is fires


def test_impossible_travel_excepts_relay_and_vpn_networks() -> None:
    assert impossible_travel(travel(6000, 1, asn=36183), C) is None  # iCloud Private Relay exit
    assert impossible_travel(travel(6000, 1, prev_asn=9009), C) is None  # came from a VPN host
    hit = impossible_travel(travel(6000, 1), C)
    assert hit is not None and hit.action == "challenge" and "6000 km" in hit.detail


def streams(active: int, plan: int, km: float) -> Activity:
    return Activity("playback_start", active_streams=active, plan_streams=plan, max_stream_distance_km=km)


@pytest.mark.parametrize(
    ("active", "plan", "km", "fires"),
    [
        (2, 2, 9000.0, False),  # within the plan
        (3, 2, 9000.0, True),
        (3, 2, 500.0, False),  # over the plan but in one place (a household)
        (3, 2, 500.5, True),
        (5, 0, 9000.0, True),  # unknown plan counts as 4 streams
        (4, 0, 9000.0, False),
    ],
)
def test_concurrent_streams_threshold(active: int, plan: int, km: float, fires: bool) -> None:
    assert (concurrent_streams(streams(active, plan, km), C) is not None) is fires


@pytest.mark.parametrize(
    ("ip24", "asn", "failed", "expected"),
    [
        (9, 49, True, None),
        (10, 0, True, "challenge"),
        (0, 50, True, "challenge"),
        (10, 0, False, "review"),  # a success from a stuffing source
        (9, 49, False, None),
    ],
)
def test_credential_stuffing_threshold(ip24: int, asn: int, failed: bool, expected: str | None) -> None:
    hit = credential_stuffing(Activity("login", ip24_failed_accounts=ip24, asn_failed_accounts=asn, login_failed=failed), C)
    assert (hit.action if hit else None) == expected


@pytest.mark.parametrize(
    ("card", "account", "ip24", "fires"),
    [(2, 4, 4, False), (3, 0, 0, True), (0, 5, 0, True), (0, 0, 5, True), (2, 4, 4, False)],
)
def test_card_testing_threshold(card: int, account: int, ip24: int, fires: bool) -> None:
    a = Activity("payment", card_small_declines=card, account_small_declines=account, ip24_small_declines=ip24)
    assert (card_testing(a, C) is not None) is fires


@pytest.mark.parametrize(
    ("sensitive", "device_seen", "country_seen", "fires"),
    [
        (True, False, False, True),
        (True, True, False, False),  # known device
        (True, False, True, False),  # known country
        (False, False, False, False),  # not a sensitive change
        (True, None, False, False),  # no device information: no claim
    ],
)
def test_sensitive_change_rule(sensitive: bool, device_seen: bool | None, country_seen: bool, fires: bool) -> None:
    a = Activity("account_change", country="BR", sensitive_change=sensitive, device_seen=device_seen, country_seen=country_seen)
    assert (sensitive_change_new_device_country(a, C) is not None) is fires


THRESHOLDS = {"challenge": 0.3, "review": 0.6, "block": 0.9}


@pytest.mark.parametrize(
    ("score", "action"),
    [(0.0, "allow"), (0.2999, "allow"), (0.3, "challenge"), (0.6, "review"), (0.8999, "review"), (0.9, "block")],
)
def test_model_thresholds(score: float, action: str) -> None:
    assert model_action(score, THRESHOLDS) == action


def test_decision_policy_challenges_before_blocking() -> None:
    travel_hit = Hit("impossible_travel", "challenge", "")
    testing_hit = Hit("card_testing", "review", "")
    assert decide(None, {}, [travel_hit]) == "challenge"  # rules alone never block
    assert decide(None, {}, [travel_hit, testing_hit]) == "review"
    assert decide(None, {}, [travel_hit, Hit("x", "challenge", "")]) == "review"  # two rules
    assert decide(0.1, THRESHOLDS, [travel_hit]) == "challenge"
    assert decide(0.65, THRESHOLDS, []) == "review"
    assert decide(0.65, THRESHOLDS, [travel_hit]) == "block"  # model review + a rule
    assert decide(0.95, THRESHOLDS, []) == "block"
    assert decide(0.35, THRESHOLDS, []) == "challenge"


def test_evaluate_runs_every_rule() -> None:
    a = Activity("payment", card_small_declines=3, prev_distance_km=8000, prev_hours=1, asn=1, prev_asn=1)
    assert sorted(h.rule for h in evaluate(a)) == ["card_testing", "impossible_travel"]
