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
import hashlib
import io
import json
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
    export_since: date | None = None  # quick runs export only the recent history


def movielens_replay(data_dir: Path, plan: MovieLensPlan, t0: datetime) -> Replay:
    path = data_dir / "movielens" / "ml-latest-small" / "ratings.csv"
    rows = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64)
    order = np.lexsort((rows[:, 1], rows[:, 0], rows[:, 3]))  # by time, then user, then movie
    rows = rows[order]
    old, new = rows[: -plan.new_plays], rows[-plan.new_plays :]
    if plan.export_since is not None:
        old = old[old[:, 3] >= datetime.combine(plan.export_since, datetime.min.time(), UTC).timestamp()]
    export = io.StringIO()
    export.write("member,title,timestamp,weight\n")
    for u, m, r, ts in old:
        export.write(f"ml-{int(u)},{int(m)},{int(ts)},{r:g}\n")
    replay = Replay("movielens")
    cutoff = datetime.fromtimestamp(float(old[-1, 3]), UTC)
    key = f"viewing-history/movielens-until-{cutoff:%Y%m%d}.csv"
    # The catalogue goes first: the trainer reads it with the plays, so titles with no plays yet
    # reach members through their genres and tags. Tags stop at the cutoff (no later knowledge).
    replay.exports += _movielens_catalogue(data_dir / "movielens" / "ml-latest-small", float(old[-1, 3]))
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
    since = f" from {plan.export_since}" if plan.export_since else ""
    replay.notes.append(
        f"MovieLens: {len(old):,} ratings{since} until {cutoff:%Y-%m-%d} exported to S3; the newest "
        f"{len(new):,} replayed as plays over {plan.days} day(s) in their original order"
    )
    return replay


def _movielens_catalogue(folder: Path, cutoff: float) -> list[tuple[str, str, bytes]]:
    movies = folder / "movies.csv"
    if not movies.is_file():
        return []
    out = [("exports", "viewing-history/catalog/movies.csv", movies.read_bytes())]
    tags = folder / "tags.csv"
    if tags.is_file():
        with tags.open(newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
        body = io.StringIO()
        writer = csv.writer(body, lineterminator="\n")
        writer.writerow(rows[0])
        writer.writerows(r for r in rows[1:] if len(r) == 4 and float(r[3]) <= cutoff)
        out.append(("exports", "viewing-history/catalog/tags.csv", body.getvalue().encode()))
    return out


# ---- the Fraud Detection Handbook -------------------------------------------------------------


@dataclass(frozen=True)
class HandbookPlan:
    train_start: date  # labeled history exported to S3 for fraud_trainer
    # The trainer fits on days [N-21, N-14) of an N-day export (7 held out, 7 for the label
    # delay); N >= 88 gives those days the merchant windows' full 67 days of history before them.
    train_days: int
    replay_start: date  # payments replayed from here (warm-up first), labels 7 days after
    warmup_days: int
    eval_days: int
    customer_share: float  # a subset of customers keeps the replay small
    # The labeled export may cover more customers than the replay: the trainer fits on the last
    # 7 mature days and needs >= 20 frauds there (streamsense.fraud.training.MIN_FRAUDS).
    export_share: float | None = None
    # The subset: a seeded random draw, or one neighbourhood of the map (neighbourhood_order).
    # A random x% leaves every merchant with x% of its payments, so the merchant windows (counts
    # and label-based risk) of the replay look nothing like the complete ones; a neighbourhood of
    # the same size keeps most of the payments at its terminals.
    neighbourhood: bool = False


def _shifted(event: Any, shift: timedelta) -> dict[str, Any]:
    """An event as producers write it, moved by ``shift`` (whole weeks keep weekday and hour)."""
    obj: dict[str, Any] = json.loads(event.model_dump_json(exclude_none=True))
    obj["occurred_at"] = iso(event.occurred_at + shift)
    target = obj["payload"].get("target_occurred_at")
    if target:
        obj["payload"]["target_occurred_at"] = iso(datetime.fromisoformat(target.replace("Z", "+00:00")) + shift)
    return obj


def handbook_replay(data_dir: Path, plan: HandbookPlan, t0: datetime) -> Replay:
    """Payments of [replay_start, +warmup+eval) shifted so that the evaluation starts at t0,
    each fraud's chargeback 7 days after it (streamsense.fraud.history's mapping of the
    handbook to events), and the labeled export of the training window for fraud_trainer."""
    from streamsense.fraud import history as hb

    h = hb.load_handbook(str(data_dir / "fraud-handbook" / "transactions.csv.gz"))
    day_ms = 86_400_000

    def ms(d: date) -> int:
        return int(datetime.combine(d, datetime.min.time(), UTC).timestamp() * 1000)

    customers = np.unique(h.customer)
    export_share = plan.export_share or plan.customer_share
    if plan.neighbourhood:
        # drawn from the payments before the replay only; the export's customers include the replay's
        before = h.ts_ms < ms(plan.replay_start)
        n_kept = round(plan.customer_share * len(customers))
        order = neighbourhood_order(h.customer[before], h.terminal[before], max(n_kept, round(export_share * len(customers))))
        kept, exported_customers = order[:n_kept], order
        how = "one neighbourhood of the map"
    else:
        digests = [hashlib.sha256(f"handbook-subset:{c}".encode()).digest() for c in customers]
        draw = np.array([int.from_bytes(d[:4], "big") / 2**32 for d in digests])
        kept, exported_customers = customers[draw < plan.customer_share], customers[draw < export_share]
        how = "a seeded random draw"
    mine = np.isin(h.customer, kept)
    exported = np.isin(h.customer, exported_customers)

    train_lo = ms(plan.train_start)
    train = np.flatnonzero(exported & (h.ts_ms >= train_lo) & (h.ts_ms < train_lo + plan.train_days * day_ms))
    export = io.StringIO()
    writer = csv.writer(export, lineterminator="\n")
    writer.writerow(hb.REQUIRED)
    for i in train:
        when = datetime.fromtimestamp(int(h.ts_ms[i]) / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
        writer.writerow([int(h.transaction_id[i]), when, int(h.customer[i]), int(h.terminal[i]), float(h.amount[i]), int(h.fraud[i])])

    lo = ms(plan.replay_start)
    eval_lo = lo + plan.warmup_days * day_ms
    hi = eval_lo + plan.eval_days * day_ms
    rows = np.flatnonzero(mine & (h.ts_ms >= lo) & (h.ts_ms < hi))
    eval_start = datetime.fromtimestamp(eval_lo / 1000, UTC)
    weeks = -(-(t0 - eval_start) // WEEK)
    shift = weeks * WEEK
    replay = Replay("handbook")
    for t_ms, kind, row in hb.replay_order(h, rows):
        if t_ms >= hi:  # chargebacks that land after the replay's end
            continue
        event = hb.payment_event(h, row) if kind == "payment" else hb.label_event(h, row)
        replay.events.append(_shifted(event, shift))
    fraud_ids = {hb.payment_event(h, int(i)).event_id for i in rows if h.fraud[i] == 1}
    eval_ids = {hb.payment_event(h, int(i)).event_id for i in rows if h.ts_ms[i] >= eval_lo}
    key = f"fraud-labels/handbook-{plan.train_start:%Y%m%d}-{plan.train_days}d.csv"
    replay.exports.append(("exports", key, export.getvalue().encode()))
    window = (h.ts_ms >= lo) & (h.ts_ms < hi)
    own = terminal_coverage(h.terminal[window], mine[window])
    replay.truth = {"fraud_event_ids": fraud_ids, "eval_event_ids": eval_ids, "export_key": key, "shift_weeks": weeks,
                    "terminal_coverage": own}
    replay.notes.append(
        f"Handbook: {len(kept):,} of {len(customers):,} customers ({plan.customer_share:.0%}, {how}: {own:.0%} of the "
        f"payments at their terminals are theirs); fraud_trainer "
        f"trains on {plan.train_start} +{plan.train_days} d ({len(train):,} payments of "
        f"{export_share:.0%} of customers); replayed "
        f"{plan.replay_start} +{plan.warmup_days} d warm-up + {plan.eval_days} d evaluation "
        f"({len(rows):,} payments), moved {weeks} weeks forward; chargebacks 7 days after each fraud"
    )
    return replay


def neighbourhood_order(customer: np.ndarray, terminal: np.ndarray, n: int) -> np.ndarray:
    """The first ``n`` customers of one neighbourhood of the map, in the order they join it.

    The handbook's customers pay at the terminals within a fixed radius of their home, so
    customers sharing terminals live close together. The neighbourhood starts from the customer
    with the fewest distinct terminals (near a corner of the map, where part of that disk falls
    outside it, so the neighbourhood has less border), then repeatedly takes the customer with
    the largest share of its payments at terminals the neighbourhood already reaches (ties: the
    lowest id). Deterministic; a longer order starts with the shorter one."""
    cu, ci = np.unique(np.asarray(customer), return_inverse=True)
    tu, ti = np.unique(np.asarray(terminal), return_inverse=True)
    pairs, counts = np.unique(ci.astype(np.int64) * len(tu) + ti, return_counts=True)
    pc, pt = pairs // len(tu), pairs % len(tu)  # sorted by customer, then terminal
    c_start = np.searchsorted(pc, np.arange(len(cu) + 1))
    by_t = np.argsort(pt, kind="stable")
    t_start = np.searchsorted(pt[by_t], np.arange(len(tu) + 1))
    total = np.bincount(ci, minlength=len(cu)).astype(np.float64)
    reached = np.zeros(len(tu), dtype=bool)
    at_reached = np.zeros(len(cu))  # each customer's payments at reached terminals
    chosen = np.zeros(len(cu), dtype=bool)
    order: list[int] = []
    c = int(np.lexsort((cu, np.diff(c_start)))[0])
    while len(order) < min(n, len(cu)):
        chosen[c] = True
        order.append(c)
        mine = pt[c_start[c] : c_start[c + 1]]
        for t in mine[~reached[mine]]:
            reached[t] = True
            rows = by_t[t_start[t] : t_start[t + 1]]  # one row per customer of terminal t
            at_reached[pc[rows]] += counts[rows]
        c = int(np.argmax(np.where(chosen, -1.0, at_reached / total)))
    return cu[np.array(order, dtype=np.int64)]


def terminal_coverage(terminal: np.ndarray, kept: np.ndarray) -> float:
    """Share of all payments at the terminals the kept payments use that are kept payments:
    what the merchant windows of the replay see of the complete ones."""
    at = np.isin(terminal, np.unique(terminal[kept]))
    return float(kept[at].mean()) if at.any() else 0.0


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
