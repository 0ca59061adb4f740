"""Streaming fraud features: one definition, two drivers.

``payment_feature_matrix`` is the definition of every payment feature (the handbook's 14 plus
the product's extras), written over arrays with the window kernels of ``windows``. Two drivers
feed it:

- ``StreamingFeatures.process`` (the Lambda): a batch of parsed events; it loads the logs of the
  batch's entities, adds the batch's rows (idempotently), applies the definition to logs + batch,
  and saves what changed.
- ``offline_payment_features`` (training, benchmarks): the whole history as one set of logs.

Because features are pure functions of the set of events received (with their times and label
times), both drivers give the same numbers, whatever the batch boundaries; tests/unit/fraud
checks exactly that, and the benchmark checks the 14 against the handbook's reference file.

Conventions: customer = account, terminal = merchant. Customer windows are (t - w, t] including
the current payment; merchant windows are (t - 7d - w, t - 7d] (the label delay), their risk is
the share of those payments whose fraud label was known at t, 0 when the window is empty.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from streamsense.events import Event
from streamsense.fraud.state import (
    ACCOUNT_CHANGE,
    FAILED,
    HAS_GEO,
    HORIZON_MS,
    LABEL,
    LOGIN,
    PAYMENT,
    PLAYBACK_HEARTBEAT,
    PLAYBACK_START,
    PLAYBACK_STOP,
    SENSITIVE,
    SIGNUP,
    EntityLog,
    FraudStateStore,
    country_code,
    empty_rows,
    id_hash,
    materialize,
)
from streamsense.fraud.windows import (
    F64,
    I64,
    MS_PER_DAY,
    MS_PER_HOUR,
    NO_LABEL,
    SortedEntries,
    known_label_count,
    prefix,
    range_sum,
)
from streamsense.privacy import Pseudonymizer, ip_prefix

LABEL_DELAY_DAYS = 7
HEARTBEAT_EVERY_MS = 5 * 60_000  # heartbeats kept per session at most this often
CUSTOMER_WINDOWS = (1, 7, 30)
TERMINAL_WINDOWS = (1, 7, 30)

#: The handbook's 14 features, in the reference file's column order.
REFERENCE_FEATURES: tuple[str, ...] = (
    "TX_DURING_WEEKEND",
    "TX_DURING_NIGHT",
    *(f"CUSTOMER_ID_{m}_{w}DAY_WINDOW" for w in CUSTOMER_WINDOWS for m in ("NB_TX", "AVG_AMOUNT")),
    *(f"TERMINAL_ID_{m}_{w}DAY_WINDOW" for w in TERMINAL_WINDOWS for m in ("NB_TX", "RISK")),
)
#: What the product adds (all computable from the same logs, in the same pass).
EXTRA_FEATURES: tuple[str, ...] = (
    "TX_AMOUNT",
    "CUSTOMER_ID_AMOUNT_Z_30DAY",  # (amount - mean of the other payments) / their std
    "CUSTOMER_ID_AMOUNT_RATIO_30DAY",  # amount / mean of the other payments in 30 days
    "CUSTOMER_ID_AMOUNT_RATIO_7DAY",
    "CUSTOMER_ID_AMOUNT_RATIO_BASE",  # amount / mean of (t - 44d, t - 14d]: before a takeover
    "CUSTOMER_ID_AMOUNT_Z_BASE",
    "CUSTOMER_ID_NB_TX_1HOUR",
    "CUSTOMER_ID_HOURS_SINCE_PREV",
    "CUSTOMER_ID_KNOWN_FRAUD_30DAY",  # the account's payments labeled fraud, known at t
    "TERMINAL_ID_NB_TX_1DAY_NOW",  # undelayed volume (t - 1d, t], current included
    "TERMINAL_ID_RISK_14DAY_WINDOW",
    "TERMINAL_ID_RISK_60DAY_WINDOW",
    "TERMINAL_ID_KNOWN_FRAUD_7DAY_NOW",  # labels known at t for payments in (t - 7d, t]
)
PAYMENT_FEATURES: tuple[str, ...] = REFERENCE_FEATURES + EXTRA_FEATURES


@dataclass(frozen=True)
class PaymentRows:
    """Payments of many entities of one kind: entity index, time (ms), tie order (event id
    hash), amount, fraud label and when it became known (NO_LABEL if never)."""

    key: I64
    ts: I64
    tie: npt.NDArray[np.uint64]
    amount: F64
    fraud: npt.NDArray[np.int8]
    label_ts: I64


def _sorted(entries: SortedEntries, values: npt.ArrayLike, dtype: Any = np.float64) -> npt.NDArray[Any]:
    out = np.empty(len(entries), dtype=dtype)
    out[entries.order] = np.asarray(values, dtype=dtype)
    return out


def payment_feature_matrix(acct: PaymentRows, merch: PaymentRows, q_acct: I64, q_merch: I64) -> F64:
    """Features (columns in PAYMENT_FEATURES order) of the payments at rows ``q_acct`` of
    ``acct`` and ``q_merch`` of ``merch`` (the same payments seen from each entity)."""
    q_acct = np.asarray(q_acct, dtype=np.int64)
    q_merch = np.asarray(q_merch, dtype=np.int64)
    out = np.empty((len(q_acct), len(PAYMENT_FEATURES)), dtype=np.float64)
    col = {name: j for j, name in enumerate(PAYMENT_FEATURES)}

    # Account side, computed with the queries in (account, time) order: searchsorted is much
    # faster on sorted needles.
    A = SortedEntries.build(acct.key, acct.ts, acct.tie)
    pos_all = A.order[q_acct]
    perm = np.argsort(pos_all, kind="stable")
    pos = pos_all[perm]
    n = len(pos)
    ts = A.ts[pos]
    amt = _sorted(A, acct.amount)
    amount = amt[pos]
    cols: dict[str, F64] = {}
    day = ts // MS_PER_DAY
    cols["TX_DURING_WEEKEND"] = (((day + 3) % 7) >= 5).astype(np.float64)  # 1970-01-01 was a Thursday
    cols["TX_DURING_NIGHT"] = (((ts % MS_PER_DAY) // MS_PER_HOUR) <= 6).astype(np.float64)
    cols["TX_AMOUNT"] = amount
    p1, p2 = prefix(amt), prefix(amt * amt)
    for w in (*CUSTOMER_WINDOWS, 0):
        a, b = A.window_incl_self(pos, w * MS_PER_DAY if w else MS_PER_HOUR)
        cnt = (b - a).astype(np.float64)
        s = range_sum(p1, a, b)
        if w == 0:
            cols["CUSTOMER_ID_NB_TX_1HOUR"] = cnt
            continue
        cols[f"CUSTOMER_ID_NB_TX_{w}DAY_WINDOW"] = cnt
        cols[f"CUSTOMER_ID_AVG_AMOUNT_{w}DAY_WINDOW"] = s / cnt
        if w in (7, 30):
            others = cnt - 1
            mean_o = np.divide(s - amount, others, out=np.full(n, np.nan), where=others > 0)
            cols[f"CUSTOMER_ID_AMOUNT_RATIO_{w}DAY"] = np.divide(
                amount, mean_o, out=np.full(n, np.nan), where=(others > 0) & (mean_o > 0)
            )
            if w == 30:
                ss = range_sum(p2, a, b) - amount * amount
                var = np.divide(ss, others, out=np.full(n, np.nan), where=others > 0) - mean_o**2
                std = np.sqrt(np.maximum(var, 0.0))
                cols["CUSTOMER_ID_AMOUNT_Z_30DAY"] = np.divide(
                    amount - mean_o, std + 1.0, out=np.full(n, np.nan), where=others > 1
                )
    a, b = A.window(A.key[pos], ts, 44 * MS_PER_DAY, 14 * MS_PER_DAY)
    cnt = (b - a).astype(np.float64)
    mean_b = np.divide(range_sum(p1, a, b), cnt, out=np.full(n, np.nan), where=cnt > 0)
    var_b = np.divide(range_sum(p2, a, b), cnt, out=np.full(n, np.nan), where=cnt > 0) - mean_b**2
    cols["CUSTOMER_ID_AMOUNT_RATIO_BASE"] = np.divide(amount, mean_b, out=np.full(n, np.nan), where=(cnt > 0) & (mean_b > 0))
    cols["CUSTOMER_ID_AMOUNT_Z_BASE"] = np.divide(
        amount - mean_b, np.sqrt(np.maximum(var_b, 0.0)) + 1.0, out=np.full(n, np.nan), where=cnt > 1
    )
    prev = A.previous(pos)
    cols["CUSTOMER_ID_HOURS_SINCE_PREV"] = np.where(
        prev >= 0, (ts - A.ts[np.maximum(prev, 0)]) / MS_PER_HOUR, np.nan
    )
    cols["CUSTOMER_ID_KNOWN_FRAUD_30DAY"] = known_label_count(
        A, acct.fraud, acct.label_ts, A.key[pos], ts, 30 * MS_PER_DAY, 0
    )
    for name, values in cols.items():
        out[perm, col[name]] = values

    # Merchant side, in (merchant, time) order.
    M = SortedEntries.build(merch.key, merch.ts, merch.tie)
    mpos_all = M.order[q_merch]
    perm = np.argsort(mpos_all, kind="stable")
    mpos = mpos_all[perm]
    mk, ts = M.key[mpos], M.ts[mpos]
    cols = {}
    d = LABEL_DELAY_DAYS * MS_PER_DAY
    for w in (*TERMINAL_WINDOWS, 14, 60):
        a, b = M.window(mk, ts, d + w * MS_PER_DAY, d)
        cnt = (b - a).astype(np.float64)
        frauds = known_label_count(M, merch.fraud, merch.label_ts, mk, ts, d + w * MS_PER_DAY, d)
        if w in TERMINAL_WINDOWS:
            cols[f"TERMINAL_ID_NB_TX_{w}DAY_WINDOW"] = cnt
        cols[f"TERMINAL_ID_RISK_{w}DAY_WINDOW"] = np.divide(frauds, cnt, out=np.zeros(n), where=cnt > 0)
    a, b = M.window_incl_self(mpos, MS_PER_DAY)
    cols["TERMINAL_ID_NB_TX_1DAY_NOW"] = (b - a).astype(np.float64)
    cols["TERMINAL_ID_KNOWN_FRAUD_7DAY_NOW"] = known_label_count(M, merch.fraud, merch.label_ts, mk, ts, d, 0)
    for name, values in cols.items():
        out[perm, col[name]] = values
    return out


# ---- offline driver ----------------------------------------------------------------------------


def handbook_event_id(transaction_id: int) -> str:
    return f"tx-{transaction_id:09d}"


def handbook_label_id(transaction_id: int) -> str:
    return f"lb-{transaction_id:09d}"


def offline_payment_features(
    customer: npt.ArrayLike,
    terminal: npt.ArrayLike,
    ts_ms: npt.ArrayLike,
    amount: npt.ArrayLike,
    fraud: npt.ArrayLike,
    label_ts_ms: npt.ArrayLike,
    rows: npt.ArrayLike | None = None,
) -> F64:
    """Features of every payment (or of ``rows``) of a complete history given in arrival order:
    one array per column (customer and terminal as integer ids). ``label_ts_ms`` is when each
    payment's label arrived (NO_LABEL for none). Same-millisecond payments of one entity are
    ordered by arrival, as in the streaming path."""
    ts = np.asarray(ts_ms, dtype=np.int64)
    tie = np.arange(len(ts), dtype=np.uint64)
    amt = np.asarray(amount, dtype=np.float64)
    fr = np.asarray(fraud, dtype=np.int8)
    lts = np.asarray(label_ts_ms, dtype=np.int64)
    fr = np.where(lts == NO_LABEL, 0, fr).astype(np.int8)
    acct = PaymentRows(_dense(customer), ts, tie, amt, fr, lts)
    merch = PaymentRows(_dense(terminal), ts, tie, amt, fr, lts)
    q = np.arange(len(ts), dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
    return payment_feature_matrix(acct, merch, q, q)


def _dense(ids: npt.ArrayLike) -> I64:
    _, inverse = np.unique(np.asarray(ids), return_inverse=True)
    return inverse.astype(np.int64)


# ---- streaming driver ---------------------------------------------------------------------------


def _ms(event: Event) -> int:
    return int(event.occurred_at.timestamp() * 1000)


@dataclass
class EventRows:
    """What one event writes: (entity key, row) pairs."""

    event: Event
    rows: list[tuple[str, npt.NDArray[Any]]] = field(default_factory=list)


class EntityKeys:
    """Entity keys of an event's identifiers; personal ones pseudonymized."""

    def __init__(self, pseudo: Pseudonymizer) -> None:
        self.pseudo = pseudo

    def account(self, account_id: str) -> str:
        return f"acct#{account_id}"

    def card(self, card_number: str) -> str:
        return f"card#{self.pseudo.token('card_number', card_number)}"

    def merchant(self, merchant_id: str) -> str:
        return f"merch#{merchant_id}"

    def device(self, device_id: str) -> str:
        return f"dev#{self.pseudo.token('device_id', device_id)}"

    def ip24(self, ip: str) -> str:
        return f"ip24#{ip_prefix(ip)}"

    def asn(self, asn: int) -> str:
        return f"asn#{asn}"


_KIND = {
    "payment": PAYMENT,
    "login": LOGIN,
    "signup": SIGNUP,
    "account_change": ACCOUNT_CHANGE,
    "playback_start": PLAYBACK_START,
    "playback_heartbeat": PLAYBACK_HEARTBEAT,
    "playback_stop": PLAYBACK_STOP,
}


def event_rows(event: Event, keys: EntityKeys) -> EventRows:
    """The rows an event adds to each entity it touches."""
    out = EventRows(event)
    p: Any = event.payload
    row = empty_rows(1)
    r = row[0]
    r["ts"] = _ms(event)
    r["src"] = id_hash(event.event_id)
    r["account"] = id_hash(event.account_id)
    acct = keys.account(event.account_id)
    if event.type == "label":
        r["kind"] = LABEL
        r["eid"] = id_hash(p.target_event_id)
        r["ts"] = int(p.target_occurred_at.timestamp() * 1000)
        r["label_ts"] = _ms(event)
        r["fraud"] = 1 if p.is_fraud else 0
        out.rows.append((acct, row))
        if p.card_number:
            out.rows.append((keys.card(p.card_number), row))
        if p.merchant_id:
            out.rows.append((keys.merchant(p.merchant_id), row))
        return out
    if event.type == "impression":
        return out
    r["kind"] = _KIND[event.type]
    r["eid"] = r["src"]
    device = getattr(p, "device", None)
    network = getattr(p, "network", None)
    if device is not None:
        r["device"] = id_hash(keys.device(device.device_id))
    if network is not None:
        r["lat"], r["lon"] = network.lat, network.lon
        r["asn"] = network.asn
        r["country"] = country_code(network.country)
        r["flags"] |= HAS_GEO
    if event.type == "payment":
        r["amount"] = p.amount
        if p.status == "declined":
            r["flags"] |= FAILED
    elif event.type == "login" and not p.success:
        r["flags"] |= FAILED
    elif event.type == "account_change" and p.field in ("email", "password", "payment_method"):
        r["flags"] |= SENSITIVE
    elif event.type == "signup":
        r["plan"] = p.plan_streams
    if event.type in ("playback_start", "playback_heartbeat", "playback_stop"):
        r["session"] = id_hash(p.session_id)
    out.rows.append((acct, row))
    if event.type == "payment":
        out.rows.append((keys.card(p.card_number), row))
        out.rows.append((keys.merchant(p.merchant_id), row))
    if event.type in ("playback_heartbeat", "playback_stop"):
        return out  # session liveness is account state; shared entities need starts only
    if device is not None:
        out.rows.append((keys.device(device.device_id), row))
    if network is not None:
        out.rows.append((keys.ip24(network.ip), row))
        out.rows.append((keys.asn(network.asn), row))
    return out


@dataclass
class BatchFeatures:
    """Features of one batch: the payment matrix (rows = the batch's payments, in batch order),
    the event index of each of those rows, and the entity logs after the batch (for the rules)."""

    payment_index: list[int]
    payment_matrix: F64
    logs: dict[str, EntityLog]
    event_keys: list[list[str]]
    new_rows: int
    items_written: int
    activity: list[Activity | None] = field(default_factory=list)


def _payment_rows(logs: Sequence[EntityLog]) -> tuple[PaymentRows, npt.NDArray[np.uint64]]:
    """Payment rows of several logs as one PaymentRows (key = position of the log)."""
    keys, parts, fr, lt = [], [], [], []
    for i, log in enumerate(logs):
        events, fraud, label_ts = materialize(log.rows)
        pay = events["kind"] == PAYMENT
        parts.append(events[pay])
        fr.append(fraud[pay])
        lt.append(label_ts[pay])
        keys.append(np.full(int(pay.sum()), i, dtype=np.int64))
    rows = np.concatenate(parts) if parts else empty_rows()
    return PaymentRows(
        np.concatenate(keys) if keys else np.zeros(0, np.int64),
        rows["ts"].astype(np.int64),
        rows["seq"].astype(np.uint64),
        rows["amount"].astype(np.float64),
        np.concatenate(fr) if fr else np.zeros(0, np.int8),
        np.concatenate(lt) if lt else np.zeros(0, np.int64),
    ), rows["eid"]


def _find(eids: npt.NDArray[np.uint64], wanted: npt.NDArray[np.uint64]) -> I64:
    """Row of each wanted event id (each event is in exactly one of the logs)."""
    order = np.argsort(eids, kind="stable")
    pos = order[np.searchsorted(eids[order], wanted)]
    if not (eids[pos] == wanted).all():
        raise KeyError("a batch payment is missing from its entity log")
    return pos.astype(np.int64)


class StreamingFeatures:
    """The Lambda's driver: load the batch's entity logs, add its rows, compute, save."""

    def __init__(self, store: FraudStateStore, pseudo: Pseudonymizer) -> None:
        self.store = store
        self.keys = EntityKeys(pseudo)
        self._last_stamp = 0

    def _stamp(self) -> int:
        """Arrival order across batches: wall-clock ms << 20 (room for 1M events a batch),
        never going backwards within a container."""
        stamp = max(time.time_ns() // 1_000_000 << 20, self._last_stamp + (1 << 20))
        self._last_stamp = stamp
        return stamp

    def process(self, events: Sequence[Event], *, save: bool = True) -> BatchFeatures:
        """Features of a batch. With ``save=False`` the caller saves ``logs`` itself (after its
        own writes, so that a failure in between is retried with the same answer)."""
        per_event = [event_rows(e, self.keys) for e in events]
        base = self._stamp()
        for i, er in enumerate(per_event):
            for _, row in er.rows[:1]:
                row["seq"] = base + i  # the rows of one event are one shared array
        wanted = [k for er in per_event for k, _ in er.rows]
        logs = self.store.load(wanted)
        new_rows = 0
        by_key: dict[str, list[npt.NDArray[Any]]] = {}
        last_seen: dict[tuple[str, int], int] = {}  # (account, session) -> newest playback row
        for er in per_event:
            if er.event.type == "playback_heartbeat" and er.rows:
                k, row = er.rows[0]
                sk = (k, int(row["session"][0]))
                if sk not in last_seen:
                    mine = logs[k].rows[logs[k].rows["session"] == sk[1]]
                    last_seen[sk] = int(mine["ts"].max()) if len(mine) else -(2**62)
                if int(row["ts"][0]) - last_seen[sk] < HEARTBEAT_EVERY_MS:
                    continue  # thinned: sessions need a sign of life every few minutes, not more
                last_seen[sk] = int(row["ts"][0])
            for k, row in er.rows:
                by_key.setdefault(k, []).append(row)
        for k, rows in by_key.items():
            new_rows += logs[k].add(np.concatenate(rows))
        for er in per_event:
            for k, _ in er.rows:
                if not k.startswith("acct#"):
                    logs[k].link(er.event.account_id)
        for er in per_event:
            if er.event.type == "signup":
                log = logs[self.keys.account(er.event.account_id)]
                plan = int(er.event.payload.plan_streams)
                if log.plan != plan:
                    log.plan, log.changed = plan, True

        pay_idx = [i for i, e in enumerate(events) if e.type == "payment"]
        matrix = np.zeros((0, len(PAYMENT_FEATURES)))
        if pay_idx:
            acct_keys = list(dict.fromkeys(self.keys.account(events[i].account_id) for i in pay_idx))
            payments: dict[int, Any] = {i: events[i].payload for i in pay_idx}
            merch_keys = list(dict.fromkeys(self.keys.merchant(payments[i].merchant_id) for i in pay_idx))
            acct, acct_eids = _payment_rows([logs[k] for k in acct_keys])
            merch, merch_eids = _payment_rows([logs[k] for k in merch_keys])
            wanted_ids = np.array([id_hash(events[i].event_id) for i in pay_idx], dtype=np.uint64)
            matrix = payment_feature_matrix(acct, merch, _find(acct_eids, wanted_ids), _find(merch_eids, wanted_ids))

        activity: list[Activity | None] = []
        for er in per_event:
            e = er.event
            if e.type in ("label", "impression", "playback_heartbeat", "playback_stop") or not er.rows:
                activity.append(None)
                continue
            acct_log = logs[self.keys.account(e.account_id)]
            stored = acct_log.rows[acct_log.rows["src"] == er.rows[0][1]["src"][0]]
            # a replayed event keeps the arrival position it got the first time
            activity.append(activity_features(e, stored[:1] if len(stored) else er.rows[0][1], logs, self.keys))

        for k, log in logs.items():
            log.prune(HORIZON_MS[k.split("#", 1)[0]])
        written = self.store.save(logs) if save else 0
        return BatchFeatures(
            pay_idx, matrix, logs, [[k for k, _ in er.rows] for er in per_event], new_rows, written, activity
        )


# ---- account-activity features (for the rules) ----------------------------------------------

EARTH_RADIUS_KM = 6371.0088
SESSION_IDLE_MS = 10 * 60_000  # a session with no row for this long is over
STUFFING_WINDOW_MS = 10 * 60_000
CARD_TESTING_WINDOW_MS = MS_PER_HOUR
SMALL_AMOUNT = 5.0  # card testers probe with amounts at or below this
HISTORY_MS = 30 * MS_PER_DAY
ESTABLISHED_MS = MS_PER_DAY


def haversine_km(lat1: Any, lon1: Any, lat2: Any, lon2: Any) -> Any:
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(np.asarray(lon2) - np.asarray(lon1))
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


@dataclass(frozen=True)
class Activity:
    """What the rules look at for one event (None where it does not apply)."""

    event_type: str
    country: str = ""
    asn: int = 0
    # travel since the account's previous located event
    prev_distance_km: float | None = None
    prev_hours: float | None = None
    prev_asn: int = 0
    # devices and countries established on the account (seen 30 days to 24 hours before)
    device_seen: bool | None = None
    country_seen: bool | None = None
    sensitive_change: bool = False
    # playback
    active_streams: int = 0
    plan_streams: int = 0
    max_stream_distance_km: float = 0.0
    # credential stuffing: distinct accounts with failed logins in the last 10 minutes
    ip24_failed_accounts: int = 0
    asn_failed_accounts: int = 0
    login_failed: bool = False
    # card testing: small declined payments in the last hour
    card_small_declines: int = 0
    account_small_declines: int = 0
    ip24_small_declines: int = 0


def _before(rows: npt.NDArray[Any], ts: int, seq: int) -> npt.NDArray[Any]:
    """Rows that arrived before (ts, seq): the state this event sees, itself excluded."""
    return rows[(rows["ts"] < ts) | ((rows["ts"] == ts) & (rows["seq"] < seq))]


def _upto(rows: npt.NDArray[Any], ts: int, seq: int) -> npt.NDArray[Any]:
    return rows[(rows["ts"] < ts) | ((rows["ts"] == ts) & (rows["seq"] <= seq))]


def activity_features(event: Event, row: npt.NDArray[Any], logs: dict[str, EntityLog], keys: EntityKeys) -> Activity:
    """Account-activity features of one event, from the entity logs after its batch was added
    (rows that arrived after it are ignored, so the answer does not depend on batch bounds)."""
    r = row[0]
    ts, seq = int(r["ts"]), int(r["seq"])
    p: Any = event.payload
    network = getattr(p, "network", None)
    device = getattr(p, "device", None)
    acct = logs.get(keys.account(event.account_id))
    acct_rows = acct.rows[acct.rows["kind"] != LABEL] if acct is not None else empty_rows()
    prior = _before(acct_rows, ts, seq)
    # "seen" means established: used on the account between 30 days and 24 hours ago (a device
    # first seen ten minutes before a password change is still new)
    recent = prior[(prior["ts"] > ts - HISTORY_MS) & (prior["ts"] <= ts - ESTABLISHED_MS)]
    out: dict[str, Any] = {"event_type": event.type}
    if network is not None:
        out["country"], out["asn"] = network.country, int(network.asn)
        located = prior[(prior["flags"] & HAS_GEO) > 0]
        if len(located):
            last = located[-1]
            out["prev_distance_km"] = float(haversine_km(last["lat"], last["lon"], r["lat"], r["lon"]))
            out["prev_hours"] = (ts - int(last["ts"])) / MS_PER_HOUR
            out["prev_asn"] = int(last["asn"])
        out["country_seen"] = bool((recent["country"] == r["country"]).any())
    if device is not None:
        out["device_seen"] = bool((recent["device"] == r["device"]).any())
    out["sensitive_change"] = bool(r["flags"] & SENSITIVE) and event.type == "account_change"

    if event.type == "playback_start" and acct is not None:
        out["plan_streams"] = acct.plan
        play = _upto(acct_rows, ts, seq)
        play = play[np.isin(play["kind"], (PLAYBACK_START, PLAYBACK_HEARTBEAT, PLAYBACK_STOP)) & (play["ts"] > ts - SESSION_IDLE_MS * 36)]
        sessions: dict[int, npt.NDArray[Any]] = {}
        for row_ in play:  # rows are in arrival order: the last one per session wins
            sessions[int(row_["session"])] = row_
        live = [s for s in sessions.values() if s["kind"] != PLAYBACK_STOP and s["ts"] > ts - SESSION_IDLE_MS]
        out["active_streams"] = len(live)
        if len(live) > 1:
            lat = np.array([s["lat"] for s in live], dtype=np.float64)
            lon = np.array([s["lon"] for s in live], dtype=np.float64)
            d = haversine_km(lat[:, None], lon[:, None], lat[None, :], lon[None, :])
            out["max_stream_distance_km"] = float(d.max())

    if event.type == "login":
        out["login_failed"] = not p.success
        if network is not None:
            for name, key in (("ip24_failed_accounts", keys.ip24(network.ip)), ("asn_failed_accounts", keys.asn(network.asn))):
                log = logs.get(key)
                if log is None:
                    continue
                rows = _upto(log.rows, ts, seq)
                m = (rows["kind"] == LOGIN) & ((rows["flags"] & FAILED) > 0) & (rows["ts"] > ts - STUFFING_WINDOW_MS)
                out[name] = len(np.unique(rows["account"][m]))

    if event.type == "payment":

        def small_declines(key: str | None) -> int:
            log = logs.get(key) if key else None
            if log is None:
                return 0
            rows = _upto(log.rows, ts, seq)
            m = (
                (rows["kind"] == PAYMENT)
                & ((rows["flags"] & FAILED) > 0)
                & (rows["amount"] <= SMALL_AMOUNT)
                & (rows["ts"] > ts - CARD_TESTING_WINDOW_MS)
            )
            return int(m.sum())

        out["card_small_declines"] = small_declines(keys.card(p.card_number))
        out["account_small_declines"] = small_declines(keys.account(event.account_id))
        out["ip24_small_declines"] = small_declines(keys.ip24(network.ip) if network is not None else None)
    return Activity(**out)
