"""Injected attacks, each event tagged with its attack type and id (the ground truth).

* ``account_takeover``: 0-3 failed logins, then a successful one from a new device in a
  country >= 3,000 km from the victim's home (40% through a VPN/relay ASN), a password
  change 2-10 min later, an email change, sometimes a new payment method, then 2-4 long
  back-to-back streams (1.5-3 h each). Labels: the customer confirms 1-5 days later.
  Victims and times are planned before the day's traffic (``plan_takeovers``): the password
  change signs every device out, so the victim's later logins fail (bad_password) and
  ``victim_reset_share`` of victims reset the password from their own device (tagged
  ``takeover_victim`` in legit_traps.jsonl: legitimate, see traffic.py).
* ``credential_stuffing``: one IP (70% in a VPN/relay ASN) and one client try 100-400 emails
  in 3-15 minutes: 60% unknown to the service (account id ``unknown-<hash>``), the rest real
  members (bad password; 3% succeed). Labels: analyst confirms each success 1-3 days later.
* ``impossible_travel``: 10-90 minutes after a member's real playback start, a login and
  a stream from >= 5,000 km away (>= 3,300 km/h) from it and from every place the account
  is legitimately seen at (homes, VPN egress, carrier gateway), from a new device.
* ``concurrent_streams``: plan + 1..3 streams from cities >= 1,000 km apart and from the home,
  starting within 5 minutes of each other, each 1-2 h long, on new devices.
* ``card_testing``: a fresh account (signup + login) fires 10-60 small payments ($0.50-2.99)
  with different card numbers within 2-10 minutes; about 90% are declined. Labels: analyst
  on the signup (1-3 days), chargebacks on the approved ones (7-45 days).
* ``stolen_card``: a fresh account pays its plan and 1-3 gift cards ($25/50/100) with a stolen
  card, all approved, then streams. Labels: a chargeback per payment 10-60 days later.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from streamsense_sim.catalogue import DAY_MS, Catalogue
from streamsense_sim.config import ATTACK_TYPES
from streamsense_sim.geo import Geography, haversine_km
from streamsense_sim.qoe import ThroughputModel
from streamsense_sim.render import Batch, Fragments, RareEvents, iso1, new_ids
from streamsense_sim.sessions import Sessions, render_sessions, simulate_player
from streamsense_sim.traffic import MERCHANT_OF_DEVICE, Anchors, DemandCache, country_factor
from streamsense_sim.world import DEVICE_TYPES, PLAN_PRICE, CitySampler, World, luhn_cards

MIN_ATTACK_SPEED_KMH = 3_300.0
GIFT_CARD_MERCHANT = "giftcard-web"
MIN = 60_000
HOUR = 3_600_000


@dataclass
class AttackRecord:
    attack_id: str
    attack_type: str
    accounts: list[str]
    start_ms: int
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "attack_id": self.attack_id,
            "attack_type": self.attack_type,
            "accounts": self.accounts,
            "start": iso1(self.start_ms),
            "detail": self.detail,
        }


@dataclass
class _SessionRow:
    t: int
    account: str
    profile: str
    device_id: str
    device_type: int
    city: int
    asn: int
    ip: str
    net: int
    watched: float
    attack: tuple[str, str]


class AttackInjector:
    def __init__(
        self,
        world: World,
        catalogue: Catalogue,
        throughput: ThroughputModel,
        frags: Fragments,
        demand: DemandCache,
        step: int,
        rng: np.random.Generator,
    ) -> None:
        self.w = world
        self.cat = catalogue
        self.tp = throughput
        self.frags = frags
        self.demand = demand
        self.step = step
        self.rng = rng
        self.rare = RareEvents()
        self.sessions: list[_SessionRow] = []
        self.records: list[AttackRecord] = []
        self.cfg = world.config
        self.day_lo = self.cfg.start_ms + step * DAY_MS
        self.day_hi = self.day_lo + DAY_MS
        # Attackers come from anywhere, even when members' countries are restricted.
        self.anywhere = world.cities if world.config.countries is None else _unrestricted(world.geo)

    # ---- helpers ----------------------------------------------------------------------------

    def _id(self) -> str:
        return new_ids(self.rng, 1)[0]

    def _device(self, types: tuple[int, ...]) -> dict[str, str]:
        t = int(self.rng.choice(types))
        raw = int(self.rng.integers(0, 2**63, dtype=np.int64))
        return {"device_id": f"dev-{raw:016x}", "device_type": DEVICE_TYPES[t]}

    def _line(self, city: int, kind: str = "broadband") -> tuple[int, str]:
        cc = self.w.geo.countries[int(self.w.geo.country[city])]
        options = self.w.asns.by_country[cc][kind] or self.w.asns.by_country[cc]["broadband"]
        a = int(options[int(self.rng.integers(0, len(options)))])
        return a, self.w.asns.ip(a, self.rng)

    def _vpn_line(self) -> tuple[int, str, int]:
        """A VPN/relay egress: its ASN, an IP in it, and where GeoIP puts it (as for members)."""
        a = int(self.w.asns.vpn[int(self.rng.integers(0, len(self.w.asns.vpn)))])
        return a, self.w.asns.ip(a, self.rng), self.w.asns.egress[a]

    def _far(self, city: int, km: float) -> int:
        return int(self.anywhere.far_from(self.rng, np.array([city]), km, tries=50)[0])

    def _label(self, target_id: str, target_type: str, target_t: int, account: str, kind: str,
               source: str, delay_days: tuple[float, float], payment: dict[str, Any] | None = None) -> None:  # fmt: skip
        t = target_t + int(self.rng.uniform(*delay_days) * DAY_MS)
        if t >= self.cfg.end_ms and not self.cfg.include_late_labels:
            return
        payload: dict[str, Any] = {
            "kind": kind, "target_event_id": target_id, "target_type": target_type,
            "target_occurred_at": iso1(target_t), "is_fraud": True,
        }  # fmt: skip
        if payment is not None:
            payload["merchant_id"] = payment["merchant_id"]
            payload["card_number"] = payment["card_number"]
        payload["source"] = source
        self.rare.add(self._id(), t, account, "label", payload)

    def _login(self, t: int, account: str, email: str, dev: dict[str, str], net: dict[str, Any],
               attack: tuple[str, str], success: bool = True, reason: str = "bad_password") -> str:  # fmt: skip
        eid = self._id()
        payload: dict[str, Any] = {"email": email, "success": success}
        if not success:
            payload["failure_reason"] = reason
        payload["device"] = dev
        payload["network"] = net
        self.rare.add(eid, t, account, "login", payload, attack)
        return eid

    def _stream(self, t: int, account: str, profile: str, dev: dict[str, str], city: int, asn: int, ip: str,
                minutes: tuple[float, float], attack: tuple[str, str]) -> int:  # fmt: skip
        """Queue one attacker playback session; returns its planned end."""
        watched = float(np.floor(self.rng.uniform(*minutes) * 60))
        dtype = DEVICE_TYPES.index(dev["device_type"])
        net = 0 if dtype != 1 else 2
        self.sessions.append(_SessionRow(t, account, profile, dev["device_id"], dtype, city, asn, ip, net, watched, attack))
        return t + int(watched * 1000)

    def _count(self, name: str) -> int:
        rate = getattr(self.cfg.attack_rates, name) * self.cfg.accounts / 100_000.0
        return int(self.rng.poisson(rate))

    def _victims(self, anchors: Anchors, n: int) -> list[tuple[int, int, int]]:
        """n (account, t, city) legit playback starts of this UTC day, distinct accounts."""
        if not anchors.account or n == 0:
            return []
        acc = np.concatenate(anchors.account)
        t = np.concatenate(anchors.t)
        city = np.concatenate(anchors.city)
        ok = np.flatnonzero((t >= self.day_lo) & (t < self.day_hi - 3 * HOUR))
        if not len(ok):
            return []
        _, first = np.unique(acc[ok], return_index=True)
        pool = ok[first]
        chosen = self.rng.choice(pool, size=min(n, len(pool)), replace=False)
        return [(int(acc[i]), int(t[i]), int(city[i])) for i in sorted(chosen.tolist())]

    def _existing(self, n: int) -> np.ndarray:
        signed = np.flatnonzero(self.w.signup_ms < self.day_lo)
        if not len(signed):
            return np.zeros(0, dtype=np.int64)
        return np.sort(self.rng.choice(signed, size=min(n, len(signed)), replace=False))

    def _attack_id(self, kind: str, j: int) -> str:
        return f"atk-{self.cfg.seed}-{self.step:03d}-{ATTACK_TYPES.index(kind)}{j:05d}"

    # ---- attacks ----------------------------------------------------------------------------

    def run(self, anchors: Anchors, takeovers: list[tuple[int, int, int]]) -> None:
        """``takeovers``: this day's planned (victim, login ms, password change ms)."""
        counts = {name: self._count(name) for name in ATTACK_TYPES}
        for j, (a, t, t_pw) in enumerate(takeovers):
            self.account_takeover(j, a, t, t_pw)
        for j in range(counts["credential_stuffing"]):
            self.credential_stuffing(j)
        for j, (a, t, city) in enumerate(self._victims(anchors, counts["impossible_travel"])):
            self.impossible_travel(j, a, t, city)
        for j, (a, t, _city) in enumerate(self._victims(anchors, counts["concurrent_streams"])):
            self.concurrent_streams(j, a, t)
        for j in range(counts["card_testing"]):
            self.card_testing(j)
        for j in range(counts["stolen_card"]):
            self.stolen_card(j)

    def account_takeover(self, j: int, a: int, t: int, t_pw: int) -> None:
        w = self.w
        tag = ("account_takeover", self._attack_id("account_takeover", j))
        if self.rng.random() < 0.4:
            asn, ip, city = self._vpn_line()
            if haversine_km(w.geo.lat[city], w.geo.lon[city], w.geo.lat[w.home[a]], w.geo.lon[w.home[a]]) < 3000:
                city = -1
        else:
            city = -1
        if city < 0:
            city = self._far(int(w.home[a]), 3000)
            if city < 0:
                raise RuntimeError("no place 3,000 km from a home: the geography is incomplete")
            asn, ip = self._line(city)
        dev = self._device((3, 3, 1))
        net = self.frags.network_dict(ip, asn, city)
        acc = w.account_id[a]
        for k in range(int(self.rng.integers(0, 4)), 0, -1):
            self._login(t - k * int(self.rng.integers(20_000, 60_000)), acc, w.email[a], dev, net, tag, success=False)
        login = self._login(t, acc, w.email[a], dev, net, tag)
        self.rare.add(self._id(), t_pw, acc, "account_change", {"field": "password", "device": dev, "network": net}, tag)
        t_em = t_pw + int(self.rng.integers(1 * MIN, 5 * MIN))
        email_change = self._id()
        self.rare.add(email_change, t_em, acc, "account_change", {"field": "email", "device": dev, "network": net}, tag)
        t_next = t_em + 2 * MIN
        if self.rng.random() < 0.3:
            self.rare.add(self._id(), t_next, acc, "account_change", {"field": "payment_method", "device": dev, "network": net}, tag)
            t_next += 2 * MIN
        t_next += 10 * MIN
        for _ in range(int(self.rng.integers(2, 5))):
            end = self._stream(t_next, acc, w.profile_id[int(w.prof_start[a])], dev, city, asn, ip, (90, 180), tag)
            t_next = end + int(self.rng.integers(1 * MIN, 5 * MIN))
        self._label(login, "login", t, acc, "confirmed_fraud", "customer", (1, 5))
        self._label(email_change, "account_change", t_em, acc, "confirmed_fraud", "customer", (1, 5))
        self.records.append(AttackRecord(tag[1], tag[0], [acc], t, {
            "country": w.geo.countries[int(w.geo.country[city])], "asn": int(w.asns.asns[asn].number),
            "vpn": w.asns.asns[asn].vpn, "password_changed_at": iso1(t_pw),
            "victim_resets_when_locked_out": bool(w.victim_resets[a]),
        }))  # fmt: skip

    def credential_stuffing(self, j: int) -> None:
        w = self.w
        tag = ("credential_stuffing", self._attack_id("credential_stuffing", j))
        t0 = self.day_lo + int(self.rng.integers(0, DAY_MS - HOUR))
        if self.rng.random() < 0.7:
            asn, ip, city = self._vpn_line()
        else:
            city = int(self.anywhere.anywhere(self.rng, 1)[0])
            asn, ip = self._line(city)
        dev = self._device((3,))
        net = self.frags.network_dict(ip, asn, city)
        n = int(self.rng.integers(100, 401))
        span = int(self.rng.integers(3 * MIN, 15 * MIN))
        times = np.sort(t0 + self.rng.integers(0, span, size=n))
        known = self.rng.random(n) < 0.4
        real = self._existing(int(known.sum()))
        accounts: list[str] = []
        ri = 0
        for i in range(n):
            if known[i] and ri < len(real):
                a = int(real[ri])
                ri += 1
                ok = bool(self.rng.random() < 0.03)
                eid = self._login(int(times[i]), w.account_id[a], w.email[a], dev, net, tag, success=ok)
                accounts.append(w.account_id[a])
                if ok:
                    self._label(eid, "login", int(times[i]), w.account_id[a], "confirmed_fraud", "analyst", (1, 3))
            else:
                email = f"{self.rng.bytes(5).hex()}@example.net"
                acc = "unknown-" + hashlib.sha256(email.encode()).hexdigest()[:16]
                self._login(int(times[i]), acc, email, dev, net, tag, success=False, reason="unknown_account")
        self.records.append(AttackRecord(tag[1], tag[0], accounts, t0, {"ip": ip, "asn": int(w.asns.asns[asn].number), "vpn": w.asns.asns[asn].vpn, "attempts": n}))

    def impossible_travel(self, j: int, a: int, t_anchor: int, anchor_city: int) -> None:
        w = self.w
        tag = ("impossible_travel", self._attack_id("impossible_travel", j))
        seen = np.array([anchor_city, *self._places(a)], dtype=np.int64)
        city = -1
        for _ in range(200):
            c = int(self.anywhere.anywhere(self.rng, 1)[0])
            if float(np.min(haversine_km(w.geo.lat[c], w.geo.lon[c], w.geo.lat[seen], w.geo.lon[seen]))) >= 5000:
                city = c
                break
        if city < 0:
            return
        t = t_anchor + int(self.rng.integers(10 * MIN, 90 * MIN))
        asn, ip = self._line(city)
        dev = self._device((3, 1))
        net = self.frags.network_dict(ip, asn, city)
        acc = w.account_id[a]
        login = self._login(t, acc, w.email[a], dev, net, tag)
        self._stream(t + 2 * MIN, acc, w.profile_id[int(w.prof_start[a])], dev, city, asn, ip, (30, 90), tag)
        self._label(login, "login", t, acc, "confirmed_fraud", "analyst", (1, 4))
        km = float(haversine_km(w.geo.lat[anchor_city], w.geo.lon[anchor_city], w.geo.lat[city], w.geo.lon[city]))
        self.records.append(AttackRecord(tag[1], tag[0], [acc], t, {"km": round(km, 1), "minutes_after_member": round((t - t_anchor) / MIN, 1)}))

    def _places(self, a: int) -> list[int]:
        """Every place the account's legitimate traffic may geolocate to."""
        w = self.w
        out = [int(w.home[a])]
        if w.home2[a] >= 0:
            out.append(int(w.home2[a]))
        if w.gateway[a] >= 0:
            out.append(int(w.gateway[a]))
        if w.vpn_asn[a] >= 0:
            out.append(w.asns.egress[int(w.vpn_asn[a])])
        if w.trip_dest[a] >= 0:
            out.append(int(w.trip_dest[a]))
        return out

    def concurrent_streams(self, j: int, a: int, t_anchor: int) -> None:
        w = self.w
        tag = ("concurrent_streams", self._attack_id("concurrent_streams", j))
        k = int(w.plan[a]) + 1 + int(self.rng.integers(0, 3))
        cities: list[int] = [int(w.home[a])]
        for _ in range(200):
            if len(cities) > k:
                break
            c = int(self.anywhere.anywhere(self.rng, 1)[0])
            d = haversine_km(w.geo.lat[c], w.geo.lon[c], w.geo.lat[np.array(cities)], w.geo.lon[np.array(cities)])
            if np.min(d) >= 1000:
                cities.append(c)
        if len(cities) <= k:
            return
        acc = w.account_id[a]
        for c in cities[1:]:
            t = t_anchor + int(self.rng.integers(0, 5 * MIN))
            asn, ip = self._line(c)
            dev = self._device((0, 3, 1))
            net = self.frags.network_dict(ip, asn, c)
            login = self._login(t - 30_000, acc, w.email[a], dev, net, tag)
            profile = w.profile_id[int(w.prof_start[a]) + int(self.rng.integers(0, w.prof_start[a + 1] - w.prof_start[a]))]
            self._stream(t, acc, profile, dev, c, asn, ip, (60, 120), tag)
            self._label(login, "login", t - 30_000, acc, "confirmed_fraud", "analyst", (1, 4))
        self.records.append(AttackRecord(tag[1], tag[0], [acc], t_anchor, {"plan_streams": int(w.plan[a]), "streams": k, "countries": sorted({w.geo.countries[int(w.geo.country[c])] for c in cities[1:]})}))

    def _fraud_account(self, j: int, kind: str, tag: tuple[str, str], t: int, types: tuple[int, ...],
                       vpn_p: float) -> tuple[str, str, dict[str, str], dict[str, Any], int, int, str]:  # fmt: skip
        """A fraudster's fresh account: signup + login. Returns (account, signup event id,
        device, network, city, asn, ip)."""
        acc = f"acc-f{self.cfg.seed}-{self.step:03d}-{ATTACK_TYPES.index(kind)}{j:05d}"
        email = f"{self.rng.bytes(6).hex()}@example.org"
        if self.rng.random() < vpn_p:
            asn, ip, city = self._vpn_line()
        else:
            city = int(self.anywhere.anywhere(self.rng, 1)[0])
            asn, ip = self._line(city)
        dev = self._device(types)
        net = self.frags.network_dict(ip, asn, city)
        signup = self._id()
        self.rare.add(signup, t, acc, "signup", {"email": email, "plan_streams": 1, "device": dev, "network": net}, tag)
        self._login(t + 30_000, acc, email, dev, net, tag)
        return acc, signup, dev, net, city, asn, ip

    def card_testing(self, j: int) -> None:
        tag = ("card_testing", self._attack_id("card_testing", j))
        t = self.day_lo + int(self.rng.integers(0, DAY_MS - HOUR))
        acc, signup_id, dev, net, _city, _asn, _ip = self._fraud_account(j, "card_testing", tag, t, (3,), 0.5)
        n = int(self.rng.integers(10, 61))
        span = int(self.rng.integers(2 * MIN, 10 * MIN))
        times = np.sort(t + MIN + self.rng.integers(0, span, size=n))
        cards = luhn_cards(self.rng, n)
        merchant = GIFT_CARD_MERCHANT if self.rng.random() < 0.5 else "checkout-web"
        approved = 0
        for i in range(n):
            ok = bool(self.rng.random() < 0.1)
            payment: dict[str, Any] = {
                "card_number": cards[i], "merchant_id": merchant,
                "amount": round(float(self.rng.uniform(0.5, 2.99)), 2), "currency": "USD",
                "status": "approved" if ok else "declined", "device": dev, "network": net,
            }  # fmt: skip
            eid = self._id()
            self.rare.add(eid, int(times[i]), acc, "payment", payment, tag)
            if ok:
                approved += 1
                self._label(eid, "payment", int(times[i]), acc, "chargeback", "processor", (7, 45), payment)
        self._label(signup_id, "signup", t, acc, "confirmed_fraud", "analyst", (1, 3))
        self.records.append(AttackRecord(tag[1], tag[0], [acc], t, {"attempts": n, "approved": approved, "merchant_id": merchant}))

    def stolen_card(self, j: int) -> None:
        tag = ("stolen_card", self._attack_id("stolen_card", j))
        t = self.day_lo + int(self.rng.integers(0, DAY_MS - 6 * HOUR))
        acc, _signup, dev, net, city, asn, ip = self._fraud_account(j, "stolen_card", tag, t, (3, 1), 0.3)
        card = luhn_cards(self.rng, 1)[0]
        dtype = DEVICE_TYPES.index(dev["device_type"])
        buys = [(MERCHANT_OF_DEVICE[dtype], PLAN_PRICE[1], t + 2 * MIN)]
        tb = t + 5 * MIN
        for _ in range(int(self.rng.integers(1, 4))):
            tb += int(self.rng.integers(2 * MIN, 20 * MIN))
            buys.append((GIFT_CARD_MERCHANT, float(self.rng.choice([25.0, 50.0, 100.0])), tb))
        total = 0.0
        for merchant, amount, tp in buys:
            payment: dict[str, Any] = {
                "card_number": card, "merchant_id": merchant, "amount": amount, "currency": "USD",
                "status": "approved", "device": dev, "network": net,
            }  # fmt: skip
            eid = self._id()
            self.rare.add(eid, tp, acc, "payment", payment, tag)
            total += amount
            self._label(eid, "payment", tp, acc, "chargeback", "processor", (10, 60), payment)
        self._stream(tb + 10 * MIN, acc, f"{acc}-p0", dev, city, asn, ip, (40, 120), tag)
        self.records.append(AttackRecord(tag[1], tag[0], [acc], t, {"payments": len(buys), "amount": round(total, 2)}))

    # ---- output -----------------------------------------------------------------------------

    def render(self, batch: Batch) -> None:
        self.rare.into(batch)
        if not self.sessions:
            return
        rows = self.sessions
        city = np.array([r.city for r in rows], dtype=np.int64)
        country = self.w.geo.country[city]
        title = self.demand.sample(self.rng, country, np.full(len(rows), -1))
        dur = self.cat.duration_s[title]
        watched = np.minimum(np.array([r.watched for r in rows]), dur)
        # Attackers keep the original audio, without subtitles.
        audio = [self.cat.language[t] for t in title.tolist()]
        subs = ["off"] * len(rows)
        s = Sessions(
            t_start=np.array([r.t for r in rows], dtype=np.int64),
            account=[r.account for r in rows],
            profile=[r.profile for r in rows],
            title=title,
            device_id=[r.device_id for r in rows],
            device_type=np.array([r.device_type for r in rows], dtype=np.int64),
            city=city,
            asn=np.array([r.asn for r in rows], dtype=np.int64),
            ip=[r.ip for r in rows],
            net=np.array([r.net for r in rows], dtype=np.int64),
            start_pos=np.zeros(len(rows)),
            watched=watched,
            audio=audio,
            subtitles=subs,
            attack_type=[r.attack[0] for r in rows],
            attack_id=[r.attack[1] for r in rows],
            trap=np.zeros(len(rows), dtype=np.int64),
        )
        player = simulate_player(s, self.rng, self.tp, self.cfg.heartbeat_s, country_factor(self.w, country))
        render_sessions(s, player, self.cat, self.frags, self.rng, self.cfg.heartbeat_s, batch, self.cfg.end_ms)


_SAMPLERS: dict[int, CitySampler] = {}


def _unrestricted(geo: Geography) -> CitySampler:
    sampler = _SAMPLERS.get(id(geo))
    if sampler is None:
        sampler = _SAMPLERS[id(geo)] = CitySampler(geo)
    return sampler


def plan_takeovers(world: World) -> dict[int, list[tuple[int, int, int]]]:
    """Each day's account takeovers, (victim, attacker's login, password change), drawn before
    any traffic so that the victim's own traffic can react to the change (an account is taken
    over at most once). Marks the victims in ``world`` (revoked_ms, victim_resets)."""
    cfg = world.config
    out: dict[int, list[tuple[int, int, int]]] = {}
    taken = np.zeros(world.size, dtype=bool)
    for k in range(cfg.days):
        rng = np.random.default_rng([cfg.seed, 9, k])
        day_lo = cfg.start_ms + k * DAY_MS
        n = int(rng.poisson(cfg.attack_rates.account_takeover * cfg.accounts / 100_000.0))
        pool = np.flatnonzero((world.signup_ms < day_lo) & ~taken)
        victims = np.sort(rng.choice(pool, size=min(n, len(pool)), replace=False)) if len(pool) else pool
        plans = []
        for a in victims.tolist():
            t = day_lo + int(rng.integers(0, DAY_MS - 6 * HOUR))
            t_pw = t + int(rng.integers(2 * MIN, 10 * MIN))
            taken[a] = True
            world.revoked_ms[a] = t_pw
            world.victim_resets[a] = bool(rng.random() < cfg.victim_reset_share)
            plans.append((a, t, t_pw))
        out[k] = plans
    return out

