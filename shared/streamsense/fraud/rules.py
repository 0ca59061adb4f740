"""Account-activity rules with the thresholds practice uses. Each rule reads the ``Activity``
features of one event and says whether it fires, why, and the action it asks for. Rules never
block on their own: they challenge (step-up) or send to review; blocking needs the model.

Thresholds (``RuleConfig``), every one tested on both sides:
- impossible travel: > 500 km from the previous located event at > 900 km/h (an airliner's
  cruise speed). Hops of 500 km or less never fire: GeoIP puts the same user a few hundred km
  apart when a mobile carrier or ISP exits elsewhere. Known relay/VPN ASNs are excepted.
- concurrent streams: more active streams than the plan allows and two of them > 500 km apart.
- credential stuffing: failed logins of >= 10 distinct accounts from one IP /24, or >= 50 from
  one ASN, within 10 minutes.
- card testing: within an hour, >= 3 small (<= 5.00) declined payments on one card, >= 5 on one
  account, or >= 5 from one IP /24.
- sensitive change (email, password, payment method) from a device not seen on the account in
  30 days and a country not seen in 30 days.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from streamsense.fraud.features import Activity

Action = Literal["allow", "challenge", "review", "block"]
ACTIONS: tuple[Action, ...] = ("allow", "challenge", "review", "block")

#: Relay and VPN networks whose exit points move users across the map (Apple iCloud Private
#: Relay exits through Akamai, Cloudflare and Fastly; the rest are large commercial VPN hosts).
RELAY_ASNS = frozenset(
    {
        36183,  # Akamai (iCloud Private Relay)
        13335,  # Cloudflare (iCloud Private Relay, WARP)
        54113,  # Fastly (iCloud Private Relay)
        9009,  # M247 (many VPN providers)
        212238,  # Datacamp / CDN77 (NordVPN and others)
        60068,  # Datacamp
        20473,  # Vultr (self-hosted VPNs)
        14061,  # DigitalOcean
        16509,  # Amazon (VPN exit nodes)
    }
)


@dataclass(frozen=True)
class RuleConfig:
    travel_min_km: float = 500.0
    travel_max_kmh: float = 900.0
    stream_min_km: float = 500.0
    stuffing_ip24_accounts: int = 10
    stuffing_asn_accounts: int = 50
    testing_card: int = 3
    testing_account: int = 5
    testing_ip24: int = 5
    relay_asns: frozenset[int] = field(default=RELAY_ASNS)


@dataclass(frozen=True)
class Hit:
    rule: str
    action: Action
    detail: str


def impossible_travel(a: Activity, c: RuleConfig) -> Hit | None:
    if a.prev_distance_km is None or a.prev_hours is None:
        return None
    if a.prev_distance_km <= c.travel_min_km:
        return None
    if a.asn in c.relay_asns or a.prev_asn in c.relay_asns:
        return None
    speed = a.prev_distance_km / a.prev_hours if a.prev_hours > 0 else float("inf")
    if speed <= c.travel_max_kmh:
        return None
    return Hit("impossible_travel", "challenge", f"{a.prev_distance_km:.0f} km in {a.prev_hours:.2f} h ({min(speed, 1e6):.0f} km/h)")


def concurrent_streams(a: Activity, c: RuleConfig) -> Hit | None:
    if a.event_type != "playback_start":
        return None
    allowed = a.plan_streams or 4  # unknown plan: the largest one
    if a.active_streams <= allowed or a.max_stream_distance_km <= c.stream_min_km:
        return None
    return Hit(
        "concurrent_streams",
        "challenge",
        f"{a.active_streams} streams on a {allowed}-stream plan, {a.max_stream_distance_km:.0f} km apart",
    )


def credential_stuffing(a: Activity, c: RuleConfig) -> Hit | None:
    if a.event_type != "login":
        return None
    if a.ip24_failed_accounts >= c.stuffing_ip24_accounts:
        scope = f"{a.ip24_failed_accounts} accounts failing from one /24 in 10 min"
    elif a.asn_failed_accounts >= c.stuffing_asn_accounts:
        scope = f"{a.asn_failed_accounts} accounts failing from one ASN in 10 min"
    else:
        return None
    # a successful login from a stuffing source is the dangerous one
    return Hit("credential_stuffing", "challenge" if a.login_failed else "review", scope)


def card_testing(a: Activity, c: RuleConfig) -> Hit | None:
    if a.event_type != "payment":
        return None
    parts = []
    if a.card_small_declines >= c.testing_card:
        parts.append(f"{a.card_small_declines} small declines on the card")
    if a.account_small_declines >= c.testing_account:
        parts.append(f"{a.account_small_declines} on the account")
    if a.ip24_small_declines >= c.testing_ip24:
        parts.append(f"{a.ip24_small_declines} from the /24")
    if not parts:
        return None
    return Hit("card_testing", "review", ", ".join(parts) + " in 1 h")


def sensitive_change_new_device_country(a: Activity, c: RuleConfig) -> Hit | None:
    if not a.sensitive_change or a.device_seen is not False or a.country_seen is not False:
        return None
    return Hit("sensitive_change_new_device_country", "challenge", f"sensitive change from a new device in new country {a.country}")


RULES = (impossible_travel, concurrent_streams, credential_stuffing, card_testing, sensitive_change_new_device_country)


def evaluate(a: Activity, config: RuleConfig | None = None) -> list[Hit]:
    c = config or RuleConfig()
    return [h for rule in RULES if (h := rule(a, c)) is not None]
