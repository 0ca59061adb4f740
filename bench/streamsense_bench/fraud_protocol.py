"""The handbook's evaluation protocol (benchmarks.md section 1): train/delay/test splits with
the removal of known compromised customers, and the metrics AUC ROC, AP and CP@100."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
from sklearn.metrics import average_precision_score, roc_auc_score
from streamsense.fraud.history import History
from streamsense.fraud.windows import MS_PER_DAY

DAY0 = int(datetime(2018, 4, 1, tzinfo=UTC).timestamp() * 1000)  # TX_TIME_DAYS = 0


@dataclass(frozen=True)
class Split:
    name: str
    train: npt.NDArray[np.int64]  # history rows
    test: npt.NDArray[np.int64]
    test_day: npt.NDArray[np.int64]  # TX_TIME_DAYS of each test row


def day_index(ms: int | npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    return np.asarray((np.asarray(ms) - DAY0) // MS_PER_DAY, dtype=np.int64)


def split(h: History, start: str, name: str = "", train_days: int = 7, delay_days: int = 7, test_days: int = 7) -> Split:
    """The handbook's get_train_test_set: train on ``train_days`` from ``start``; test on the
    ``test_days`` after a ``delay_days`` gap, removing from each test day the customers already
    known as compromised (a fraud in the training week, or in the delay days up to the day
    before the test day's equivalent, added one by one as the test days advance)."""
    days = day_index(h.ts_ms)
    d0 = int(day_index(int(datetime.fromisoformat(start).replace(tzinfo=UTC).timestamp() * 1000)))
    train = np.flatnonzero((days >= d0) & (days < d0 + train_days))
    known = set(np.unique(h.customer[train][h.fraud[train] == 1]).tolist())
    tests = []
    for k in range(test_days):
        delay_day = d0 + train_days + k - 1
        dd = np.flatnonzero(days == delay_day)
        known |= set(np.unique(h.customer[dd][h.fraud[dd] == 1]).tolist())
        rows = np.flatnonzero(days == d0 + train_days + delay_days + k)
        rows = rows[~np.isin(h.customer[rows], np.fromiter(known, dtype=np.int64, count=len(known)))]
        tests.append(rows)
    test = np.concatenate(tests)
    return Split(name or start, train, test, days[test])


def card_precision_top_k(day: npt.ArrayLike, customer: npt.ArrayLike, fraud: npt.ArrayLike, score: npt.ArrayLike, k: int = 100) -> float:
    """CP@k as the handbook computes it: per test day, each customer scored by its highest
    prediction and compromised if any of its transactions that day is a fraud; precision of the
    day's top k customers; customers detected as compromised on an earlier day (in that day's
    top k and compromised) are left out of later days; mean over days."""
    day_a, cust_a = np.asarray(day), np.asarray(customer)
    fraud_a, score_a = np.asarray(fraud), np.asarray(score, dtype=np.float64)
    detected: set[int] = set()
    values = []
    for d in np.unique(day_a):
        m = (day_a == d) & ~np.isin(cust_a, np.fromiter(detected, dtype=np.int64, count=len(detected)))
        cust, inv = np.unique(cust_a[m], return_inverse=True)
        best = np.full(len(cust), -np.inf)
        np.maximum.at(best, inv, score_a[m])
        comp = np.zeros(len(cust), dtype=np.int64)
        np.maximum.at(comp, inv, fraud_a[m].astype(np.int64))
        # ties broken by customer id, as a stable sort over the grouped frame would
        top = np.argsort(-best, kind="stable")[:k]
        values.append(comp[top].sum() / k)
        detected |= set(cust[top][comp[top] == 1].tolist())
    return float(np.mean(values))


def metrics(h: History, s: Split, score: npt.ArrayLike) -> dict[str, float]:
    y = h.fraud[s.test]
    return {
        "auc": float(roc_auc_score(y, score)),
        "ap": float(average_precision_score(y, score)),
        "cp100": card_precision_top_k(s.test_day, h.customer[s.test], y, score, 100),
    }


def protocol_a(h: History) -> list[Split]:
    return [split(h, "2018-07-25", "A")]


def protocol_b(h: History, validation: bool = False) -> list[Split]:
    base = np.datetime64("2018-07-11" if validation else "2018-08-15")
    return [split(h, str(base - np.timedelta64(7 * i, "D")), f"{'valid' if validation else 'test'}{i}") for i in range(4)]
