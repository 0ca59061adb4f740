"""What the main job replays, built from the team's real data and the simulator.

Every source is moved onto one replay period that starts at ``t0`` (a Monday 00:00 UTC), so
the local stack sees one coherent stretch of traffic whose event times run with the runtime's
clock (Kinesis arrival times, record ages, TTLs and the fill-window schedule all agree):
- the Fraud Detection Handbook's payments move by whole weeks (weekday and hour of day, which
  its features use, are kept); their warm-up weeks come before ``t0``;
- MovieLens' newer plays keep their order and are spread over the period (the data set is 22
  years long; its last plays are months apart);
- the simulator generates the period itself.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

DAY = timedelta(days=1)
WEEK = timedelta(days=7)


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def next_monday(now: datetime) -> datetime:
    midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight + timedelta(days=7 - midnight.weekday())


@dataclass
class Replay:
    """Events to put on Kinesis (dicts, time-ordered) and objects to drop into S3 first."""

    name: str
    events: list[dict[str, Any]] = field(default_factory=list)
    exports: list[tuple[str, str, bytes]] = field(default_factory=list)  # (bucket, key, body)
    truth: dict[str, Any] = field(default_factory=dict)  # what the report joins against
    notes: list[str] = field(default_factory=list)


# ---- MovieLens ----------------------------------------------------------------------------


@dataclass(frozen=True)
class MovieLensPlan:
    new_plays: int  # newest ratings replayed as plays; everything older is the S3 export
    days: int


def movielens_replay(data_dir: Path, plan: MovieLensPlan, t0: datetime) -> Replay:
    path = data_dir / "movielens" / "ml-latest-small" / "ratings.csv"
    rows = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64)
    order = np.lexsort((rows[:, 1], rows[:, 0], rows[:, 3]))  # by time, then user, then movie
    rows = rows[order]
    old, new = rows[: -plan.new_plays], rows[-plan.new_plays :]
    export = io.StringIO()
    export.write("member,title,timestamp,weight\n")
    for u, m, r, ts in old:
        export.write(f"ml-{int(u)},{int(m)},{int(ts)},{r:g}\n")
    replay = Replay("movielens")
    cutoff = datetime.fromtimestamp(float(old[-1, 3]), UTC)
    key = f"viewing-history/movielens-until-{cutoff:%Y%m%d}.csv"
    replay.exports.append(("exports", key, export.getvalue().encode()))
    contexts = ContextFactory(sorted({f"ml-{int(u)}" for u in new[:, 0]}), seed=1)
    span = max(float(new[-1, 3] - new[0, 3]), 1.0)
    period = plan.days * 86400 - 3600
    held: dict[str, list[str]] = {}
    for i, (u, m, r, ts) in enumerate(new):
        at = t0 + timedelta(seconds=(ts - new[0, 3]) / span * period)
        account = f"ml-{int(u)}"
        replay.events.extend(contexts.play(account, str(int(m)), at, watch_fraction=min(1.0, r / 5.0), seq=i))
        held.setdefault(account, []).append(str(int(m)))
    replay.truth = {"export_key": key, "export_rows": len(old), "new_plays": held}
    replay.notes.append(
        f"MovieLens: {len(old):,} ratings until {cutoff:%Y-%m-%d} exported to S3; the newest "
        f"{len(new):,} replayed as plays over {plan.days} day(s) in their original order"
    )
    return replay


# ---- the Fraud Detection Handbook -------------------------------------------------------------


@dataclass(frozen=True)
class HandbookPlan:
    train_start: date  # labeled history exported to S3 for fraud_trainer
    train_days: int
    replay_start: date  # payments replayed from here (warm-up first), labels 7 days after
    warmup_days: int
    eval_days: int
    customer_share: float  # a seeded subset of customers keeps the replay small


def card_number(customer: int) -> str:
    """A stable, Luhn-valid 16-digit card number per handbook customer (the data has none)."""
    body = f"4{customer:014d}"
    digits = [int(d) for d in body]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 0:
            d *= 2
            d = d - 9 if d > 9 else d
        total += d
    return body + str((10 - total % 10) % 10)


def _handbook_rows(data_dir: Path) -> Iterator[dict[str, str]]:
    with gzip.open(data_dir / "fraud-handbook" / "transactions.csv.gz", "rt", newline="") as fh:
        yield from csv.DictReader(fh)


def handbook_replay(data_dir: Path, plan: HandbookPlan, t0: datetime) -> Replay:
    """Payments of [replay_start, +warmup+eval) shifted so that the evaluation starts at t0,
    each fraud's chargeback label 7 days after it, and the labeled export for training."""
    eval_start = datetime.combine(plan.replay_start, datetime.min.time(), UTC) + timedelta(days=plan.warmup_days)
    weeks = -(-(t0 - eval_start) // WEEK)
    shift = weeks * WEEK
    train_lo = datetime.combine(plan.train_start, datetime.min.time())
    train_hi = train_lo + timedelta(days=plan.train_days)
    lo = datetime.combine(plan.replay_start, datetime.min.time())
    hi = lo + timedelta(days=plan.warmup_days + plan.eval_days)
    eval_lo = lo + timedelta(days=plan.warmup_days)

    def keep(customer: str) -> bool:
        digest = hashlib.sha256(f"handbook-subset:{customer}".encode()).digest()
        return int.from_bytes(digest[:4], "big") / 2**32 < plan.customer_share

    export = io.StringIO()
    writer = csv.writer(export, lineterminator="\n")
    writer.writerow(["event_id", "occurred_at", "account_id", "card_number", "merchant_id", "amount", "is_fraud"])
    replay = Replay("handbook")
    labels: list[dict[str, Any]] = []
    fraud_ids: list[str] = []
    eval_ids: list[str] = []
    for row in _handbook_rows(data_dir):
        if not keep(row["CUSTOMER_ID"]):
            continue
        when = datetime.strptime(row["TX_DATETIME"], "%Y-%m-%d %H:%M:%S")
        event_id = f"hb-tx-{row['TRANSACTION_ID']}"
        account = f"hb-c{int(row['CUSTOMER_ID'])}"
        card = card_number(int(row["CUSTOMER_ID"]))
        merchant = f"hb-t{int(row['TERMINAL_ID'])}"
        fraud = row["TX_FRAUD"] == "1"
        if train_lo <= when < train_hi:
            writer.writerow([event_id, iso(when.replace(tzinfo=UTC)), account, card, merchant, row["TX_AMOUNT"], int(fraud)])
        if not lo <= when < hi:
            continue
        at = when.replace(tzinfo=UTC) + shift
        replay.events.append(
            {
                "type": "payment",
                "version": 1,
                "event_id": event_id,
                "occurred_at": iso(at),
                "account_id": account,
                "payload": {"card_number": card, "merchant_id": merchant, "amount": float(row["TX_AMOUNT"]), "currency": "USD", "status": "approved"},
            }
        )
        if when >= eval_lo:
            eval_ids.append(event_id)
        if fraud:
            fraud_ids.append(event_id)
            labels.append(
                {
                    "type": "label",
                    "version": 1,
                    "event_id": f"hb-cb-{row['TRANSACTION_ID']}",
                    "occurred_at": iso(at + WEEK),
                    "account_id": account,
                    "payload": {
                        "kind": "chargeback",
                        "target_event_id": event_id,
                        "target_type": "payment",
                        "target_occurred_at": iso(at),
                        "is_fraud": True,
                        "merchant_id": merchant,
                        "card_number": card,
                        "source": "processor",
                    },
                }
            )
    end = eval_start + shift + timedelta(days=plan.eval_days)
    replay.events.extend(label for label in labels if label["occurred_at"] < iso(end))
    replay.events.sort(key=lambda e: e["occurred_at"])
    key = f"fraud-labels/handbook-{plan.train_start:%Y%m%d}-{plan.train_days}d.csv"
    replay.exports.append(("exports", key, export.getvalue().encode()))
    replay.truth = {"fraud_event_ids": set(fraud_ids), "eval_event_ids": set(eval_ids), "export_key": key}
    replay.notes.append(
        f"Handbook: {plan.customer_share:.0%} of customers; trained on {plan.train_start} +{plan.train_days} d; "
        f"replayed {plan.replay_start} +{plan.warmup_days} d warm-up + {plan.eval_days} d evaluation, "
        f"moved {weeks} weeks forward; chargebacks 7 days after each fraud"
    )
    return replay


# ---- contexts for sources that have none (MovieLens members) -----------------------------------


class ContextFactory:
    """Gives MovieLens members a household from the simulator's world model (home city,
    ASN, IP, device), so their plays carry the same kind of context as everyone else's."""

    def __init__(self, accounts: list[str], seed: int = 0) -> None:
        from streamsense_sim import SimConfig
        from streamsense_sim.geo import load_asns, load_geography
        from streamsense_sim.render import Fragments
        from streamsense_sim.world import build_world

        geo, asns = load_geography(), load_asns()
        self.world = build_world(SimConfig(accounts=max(1, len(accounts)), seed=seed), geo, asns)
        self.index = {a: i for i, a in enumerate(accounts)}
        self.fragments = Fragments(geo, asns)
        self.device_types = ("tv", "mobile", "tablet", "web", "console")

    def _context(self, account: str) -> tuple[dict[str, Any], dict[str, Any], str, str]:
        w, i = self.world, self.index[account]
        devices = np.flatnonzero(w.dev_account == i)
        d = int(devices[0]) if len(devices) else 0
        network = json.loads(self.fragments.network(w.home_ip[i], int(w.home_asn[i]), int(w.home[i])))
        device = {"device_id": w.device_id[d], "device_type": self.device_types[int(w.dev_type[d])]}
        profiles = np.flatnonzero(w.prof_account == i)
        p = int(profiles[0]) if len(profiles) else 0
        return network, device, w.profile_id[p], w.prof_lang[p]

    def play(self, account: str, title: str, at: datetime, *, watch_fraction: float, seq: int) -> list[dict[str, Any]]:
        # A MovieLens member is one profile: its id is the member id of the S3 export.
        network, device, _, lang = self._context(account)
        profile = account
        session = hashlib.sha256(f"{account}:{title}:{seq}".encode()).hexdigest()[:24]
        duration = 6000.0
        base = {"version": 1, "account_id": account}
        start = {
            **base,
            "type": "playback_start",
            "event_id": f"ml-start-{session}",
            "occurred_at": iso(at),
            "payload": {
                "session_id": session,
                "profile_id": profile,
                "title_id": title,
                "device": device,
                "network": network,
                "network_type": "wifi" if device["device_type"] != "mobile" else "cellular_4g",
                "startup_ms": 1200,
                "audio_language": lang,
                "subtitle_language": "off",
            },
        }
        watched = round(duration * max(0.05, watch_fraction), 1)
        stop = {
            **base,
            "type": "playback_stop",
            "event_id": f"ml-stop-{session}",
            "occurred_at": iso(at + timedelta(seconds=watched)),
            "payload": {
                "session_id": session,
                "profile_id": profile,
                "title_id": title,
                "watched_s": watched,
                "title_duration_s": duration,
                "device": device,
                "network": network,
            },
        }
        return [start, stop]
