"""Labeled payment history: the export format the trainer reads, and its mapping to events.

The export is a CSV (optionally gzipped) with the Fraud Detection Handbook's columns:
TRANSACTION_ID, TX_DATETIME (UTC, 'YYYY-MM-DD HH:MM:SS'), CUSTOMER_ID, TERMINAL_ID, TX_AMOUNT,
TX_FRAUD, and optionally LABEL_DATETIME (when the label became known; default: 7 days after
the transaction, the handbook's delay). Customer = account, terminal = merchant.

``payment_event`` / ``label_event`` turn rows into the product's events (what the payment
service and the chargeback feed write to Kinesis), so the same history can be replayed through
the Lambda path.
"""

from __future__ import annotations

import csv
import gzip
import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt

from streamsense.events import Label, Payment, validate_event
from streamsense.fraud.windows import MS_PER_DAY, NO_LABEL

REQUIRED = ("TRANSACTION_ID", "TX_DATETIME", "CUSTOMER_ID", "TERMINAL_ID", "TX_AMOUNT", "TX_FRAUD")
DEFAULT_LABEL_DELAY_MS = 7 * MS_PER_DAY


class BadHistory(ValueError):
    """An export that cannot be used (missing columns, unparsable rows)."""


@dataclass(frozen=True)
class History:
    """Payments in arrival order (time, then transaction id)."""

    transaction_id: npt.NDArray[np.int64]
    ts_ms: npt.NDArray[np.int64]
    customer: npt.NDArray[np.int64]
    terminal: npt.NDArray[np.int64]
    amount: npt.NDArray[np.float64]
    fraud: npt.NDArray[np.int8]
    label_ts_ms: npt.NDArray[np.int64]  # NO_LABEL where no fraud label arrives

    def __len__(self) -> int:
        return len(self.ts_ms)

    def day(self) -> npt.NDArray[np.int64]:
        return self.ts_ms // MS_PER_DAY


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def from_columns(
    transaction_id: npt.ArrayLike,
    ts_ms: npt.ArrayLike,
    customer: npt.ArrayLike,
    terminal: npt.ArrayLike,
    amount: npt.ArrayLike,
    fraud: npt.ArrayLike,
    label_ts_ms: npt.ArrayLike | None = None,
) -> History:
    tid = np.asarray(transaction_id, dtype=np.int64)
    ts = np.asarray(ts_ms, dtype=np.int64)
    fr = np.asarray(fraud, dtype=np.int8)
    if label_ts_ms is None:
        lts = np.where(fr == 1, ts + DEFAULT_LABEL_DELAY_MS, NO_LABEL)
    else:
        lts = np.where(fr == 1, np.asarray(label_ts_ms, dtype=np.int64), NO_LABEL)
    order = np.lexsort((tid, ts))
    return History(
        tid[order],
        ts[order],
        np.asarray(customer, dtype=np.int64)[order],
        np.asarray(terminal, dtype=np.int64)[order],
        np.asarray(amount, dtype=np.float64)[order],
        fr[order],
        lts[order].astype(np.int64),
    )


def read_csv(data: bytes) -> History:
    """Parse an export (plain or gzipped CSV bytes)."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    reader = csv.reader(io.StringIO(data.decode("utf-8")))
    try:
        header = next(reader)
    except StopIteration:
        raise BadHistory("empty export") from None
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise BadHistory(f"missing columns: {', '.join(missing)}")
    idx = {c: header.index(c) for c in header}
    has_label = "LABEL_DATETIME" in idx
    cols: dict[str, list[int | float]] = {c: [] for c in (*REQUIRED, "LABEL_DATETIME")}
    for line, row in enumerate(reader, start=2):
        try:
            cols["TRANSACTION_ID"].append(int(row[idx["TRANSACTION_ID"]]))
            cols["TX_DATETIME"].append(_ms(row[idx["TX_DATETIME"]]))
            cols["CUSTOMER_ID"].append(int(row[idx["CUSTOMER_ID"]]))
            cols["TERMINAL_ID"].append(int(row[idx["TERMINAL_ID"]]))
            cols["TX_AMOUNT"].append(float(row[idx["TX_AMOUNT"]]))
            fraud = int(row[idx["TX_FRAUD"]])
            if fraud not in (0, 1):
                raise ValueError(f"TX_FRAUD must be 0 or 1, got {fraud}")
            cols["TX_FRAUD"].append(fraud)
            if has_label:
                text = row[idx["LABEL_DATETIME"]]
                cols["LABEL_DATETIME"].append(_ms(text) if text else NO_LABEL)
        except (ValueError, IndexError) as exc:
            raise BadHistory(f"line {line}: {exc}") from None
    if not cols["TRANSACTION_ID"]:
        raise BadHistory("export has no rows")
    return from_columns(
        cols["TRANSACTION_ID"],
        cols["TX_DATETIME"],
        cols["CUSTOMER_ID"],
        cols["TERMINAL_ID"],
        cols["TX_AMOUNT"],
        cols["TX_FRAUD"],
        cols["LABEL_DATETIME"] if has_label else None,
    )


def load_handbook(path: str) -> History:
    """The handbook's transactions.csv.gz (fast path through pandas when it is installed)."""
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - Lambda has no pandas; read_csv is enough there
        with open(path, "rb") as f:
            return read_csv(f.read())
    df = pd.read_csv(path, usecols=list(REQUIRED))
    ts = np.asarray(pd.to_datetime(df["TX_DATETIME"]).to_numpy(), dtype="datetime64[ms]").astype(np.int64)
    return from_columns(
        df["TRANSACTION_ID"].to_numpy(),
        ts,
        df["CUSTOMER_ID"].to_numpy(),
        df["TERMINAL_ID"].to_numpy(),
        df["TX_AMOUNT"].to_numpy(),
        df["TX_FRAUD"].to_numpy(),
    )


# ---- history rows as product events ----------------------------------------------------------


def card_number(customer: int) -> str:
    """A synthetic, Luhn-free 16-digit card per customer (the handbook has one card each)."""
    return f"4{customer:015d}"


def _iso(ms: int) -> str:
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=int(ms))).isoformat().replace("+00:00", "Z")


def payment_event(h: History, i: int) -> Payment:
    tid = int(h.transaction_id[i])
    return validate_event(  # type: ignore[return-value]
        {
            "type": "payment",
            "version": 1,
            "event_id": f"tx-{tid:09d}",
            "occurred_at": _iso(int(h.ts_ms[i])),
            "account_id": f"c{int(h.customer[i])}",
            "payload": {
                "card_number": card_number(int(h.customer[i])),
                "merchant_id": f"t{int(h.terminal[i])}",
                "amount": float(h.amount[i]),
            },
        }
    )


def label_event(h: History, i: int) -> Label:
    tid = int(h.transaction_id[i])
    return validate_event(  # type: ignore[return-value]
        {
            "type": "label",
            "version": 1,
            "event_id": f"lb-{tid:09d}",
            "occurred_at": _iso(int(h.label_ts_ms[i])),
            "account_id": f"c{int(h.customer[i])}",
            "payload": {
                "kind": "chargeback",
                "target_event_id": f"tx-{tid:09d}",
                "target_type": "payment",
                "target_occurred_at": _iso(int(h.ts_ms[i])),
                "is_fraud": True,
                "merchant_id": f"t{int(h.terminal[i])}",
                "card_number": card_number(int(h.customer[i])),
            },
        }
    )


def replay_order(h: History, rows: npt.ArrayLike | None = None) -> list[tuple[int, str, int]]:
    """(time, kind, row) in the order a live stream delivers them: by time; at equal times a
    label before a payment (a label at t is known to a payment at t)."""
    rows_arr = np.arange(len(h)) if rows is None else np.asarray(rows)
    items: list[tuple[int, str, int]] = [(int(h.ts_ms[i]), "payment", int(i)) for i in rows_arr]
    items += [(int(h.label_ts_ms[i]), "label", int(i)) for i in rows_arr if h.label_ts_ms[i] != NO_LABEL]
    items.sort(key=lambda x: (x[0], 0 if x[1] == "label" else 1, x[2]))
    return items


def features_of(h: History, rows: npt.ArrayLike | None = None) -> npt.NDArray[np.float64]:
    """The offline driver applied to a history (all rows or ``rows``)."""
    from streamsense.fraud.features import offline_payment_features

    return offline_payment_features(h.customer, h.terminal, h.ts_ms, h.amount, h.fraud, h.label_ts_ms, rows)
