"""Legitimate traffic that looks like fraud: the false-positive traps, tagged per event.

Every trap event is legitimate (it never appears in ``ground_truth.jsonl``); each one gets a
row in ``legit_traps.jsonl`` (``{"event_id", "label": "legitimate", "traps": [...], "type",
"account_id", "occurred_at"}``) so that false-positive rates can be measured per trap, region
and device. An event can carry several traps (a VPN member on a trip).

* ``vpn_member``: a member's own session or login through their VPN (GeoIP: the egress city,
  possibly thousands of km from home, minutes after a play at home).
* ``geoip_noise``: a cellular session at home that GeoIP places at the carrier's regional
  gateway, 150-600 km away.
* ``second_home``: the second household of a shared account, in another city (often streaming
  at the same time as the first, within the plan).
* ``traveller``: a member away on a real trip (after a physically possible flight or drive);
  the first use of a device at the destination logs in again.
* ``card_renewal``: a monthly charge declined on an expired card, then the renewed card added
  from the member's own device: small verification charges (some declined) and the charge.
* ``takeover_victim``: the victim of an account takeover, locked out by the attacker's
  password change: failed logins (bad_password), and for most a password reset and a
  successful login from their own device.
"""

from __future__ import annotations

TRAP_KINDS = (
    "vpn_member",
    "geoip_noise",
    "second_home",
    "traveller",
    "card_renewal",
    "takeover_victim",
)
VPN, GEOIP, SECOND_HOME, TRAVELLER, CARD_RENEWAL, TAKEOVER_VICTIM = (1 << i for i in range(len(TRAP_KINDS)))

#: JSON array text of every bit mask (index = mask).
TRAP_JSON: tuple[str, ...] = tuple(
    "[" + ",".join(f'"{k}"' for i, k in enumerate(TRAP_KINDS) if mask >> i & 1) + "]"
    for mask in range(1 << len(TRAP_KINDS))
)


def kinds(mask: int) -> tuple[str, ...]:
    return tuple(k for i, k in enumerate(TRAP_KINDS) if mask >> i & 1)


def trap_line(event_id: str, mask: int, kind: str, account_id: str, when: str) -> str:
    return (
        f'{{"event_id":"{event_id}","label":"legitimate","traps":{TRAP_JSON[mask]},'
        f'"type":"{kind}","account_id":"{account_id}","occurred_at":"{when}"}}'
    )


def masks_of(line: str) -> tuple[str, ...]:
    """The trap kinds of one legit_traps line (cheap: no JSON parse)."""
    inner = line.split('"traps":[', 1)[1].split("]", 1)[0]
    return tuple(x.strip('"') for x in inner.split(",")) if inner else ()
