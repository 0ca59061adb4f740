"""Account-activity detection on the simulator's labeled traffic (sim/streamsense_sim): every
event fraud_scorer consumes is replayed in time order, in batches of 1,000, through the
scorer's features and rules (in-memory state; no payment model: the model is trained on card
payments and these are account events), and each decision is compared with the ground truth.

- detection rate per attack type: attacks with at least one event decided challenge, review or
  block, over all attacks of that type;
- false-positive rate: legitimate decided events (signups, logins, account changes, payments,
  playback starts) that were not allowed, overall, by the event's country (GeoIP) and by device
  type, and by the simulator's legitimate look-alike kind (VPN members, GeoIP noise, second
  homes, travellers, card renewals, takeover victims).

Two rule configurations: the default relay/VPN ASN list (real-world networks; none of them
occur in the simulation) and the same list extended with the simulator's VPN/relay ASNs, as an
operator would feed their own list of relay networks."""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from typing import Any

from streamsense.events import parse_event
from streamsense.fraud.decisions import decide
from streamsense.fraud.features import StreamingFeatures
from streamsense.fraud.rules import RELAY_ASNS, RuleConfig, evaluate
from streamsense.fraud.state import FraudStateStore
from streamsense.privacy import Pseudonymizer
from streamsense.storage import MemoryTable

CONSUMED = {"signup", "login", "account_change", "payment", "label", "playback_start", "playback_heartbeat", "playback_stop"}
DECIDED = {"signup", "login", "account_change", "payment", "playback_start"}


def activity_detection(accounts: int = 3_000, days: int = 2, seed: int = 11, attack_scale: float = 20.0, batch: int = 1_000) -> dict[str, Any]:
    from streamsense_sim import AttackRates, SimConfig, Simulator, vpn_asns

    cfg = SimConfig(accounts=accounts, days=days, seed=seed, attack_rates=AttackRates().scaled(attack_scale))
    started = time.perf_counter()
    records = [r for r in Simulator(cfg).records() if r.kind in CONSUMED]
    sim_s = time.perf_counter() - started
    configs = {"default_relays": RuleConfig(), "with_operator_relays": RuleConfig(relay_asns=RELAY_ASNS | vpn_asns())}
    sf = StreamingFeatures(FraudStateStore(MemoryTable("fraud_state")), Pseudonymizer(b"bench-activity-pseudonym-key-32b"))
    flagged: dict[str, list[bool]] = {name: [] for name in configs}
    meta: list[tuple[str | None, str | None, str, str, list[str]]] = []  # attack_id, type, country, device, traps
    started = time.perf_counter()
    for s in range(0, len(records), batch):
        chunk = records[s : s + batch]
        events = [parse_event(r.line) for r in chunk]
        bf = sf.process(events)
        for r, e, a in zip(chunk, events, bf.activity, strict=True):
            if e.type not in DECIDED or a is None:
                continue
            for name, c in configs.items():
                flagged[name].append(decide(None, {}, evaluate(a, c)) != "allow")
            truth = json.loads(r.truth) if r.truth else None
            p: Any = e.payload
            country = p.network.country if getattr(p, "network", None) is not None else "??"
            device = p.device.device_type if getattr(p, "device", None) is not None else "none"
            traps = json.loads(r.trap)["traps"] if r.trap else []
            meta.append((truth["attack_id"] if truth else None, truth["attack_type"] if truth else None, country, device, traps))
    score_s = time.perf_counter() - started

    out: dict[str, Any] = {
        "sim": {"accounts": accounts, "days": days, "seed": seed, "attack_rate_scale": attack_scale, "events_replayed": len(records), "decided_events": len(meta)},
        "seconds": {"simulate": round(sim_s, 1), "score": round(score_s, 1), "events_per_s": round(len(records) / score_s, 1)},
    }
    for name, flags in flagged.items():
        attacks: dict[str, dict[str, bool]] = defaultdict(dict)
        legit_total: Counter[str] = Counter()
        legit_fp: Counter[str] = Counter()
        for (aid, atype, country, device, traps), f in zip(meta, flags, strict=True):
            if aid is not None and atype is not None:
                attacks[atype][aid] = attacks[atype].get(aid, False) or f
                continue
            for key in ("all", f"country:{country}", f"device:{device}", *(f"trap:{t}" for t in traps), *(["trap:none"] if not traps else [])):
                legit_total[key] += 1
                legit_fp[key] += int(f)
        res: dict[str, Any] = {
            "detection_rate": {t: round(sum(v.values()) / len(v), 4) for t, v in sorted(attacks.items())},
            "attacks": {t: len(v) for t, v in sorted(attacks.items())},
            "fpr": round(legit_fp["all"] / legit_total["all"], 6),
            "legit_events": legit_total["all"],
            "fpr_by_device": {k[7:]: round(legit_fp[k] / n, 6) for k, n in sorted(legit_total.items()) if k.startswith("device:")},
            "fpr_by_trap": {k[5:]: round(legit_fp[k] / n, 6) for k, n in sorted(legit_total.items()) if k.startswith("trap:")},
        }
        big = [(k, n) for k, n in legit_total.items() if k.startswith("country:")]
        big.sort(key=lambda kv: -kv[1])
        res["fpr_by_country"] = {k[8:]: {"fpr": round(legit_fp[k] / n, 6), "events": n} for k, n in big[:15]}
        countries = [legit_fp[k] / n for k, n in big if n >= 200]
        res["fpr_country_spread"] = {"min": round(min(countries), 6), "max": round(max(countries), 6), "countries_with_200_plus_events": len(countries)} if countries else {}
        out[name] = res
    return out
