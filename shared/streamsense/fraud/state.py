"""Per-entity streaming state: an append-only log of recent events, and where it is kept.

Each entity (account, card, merchant, IP /24, ASN, device) has a log of the events that touched
it within its horizon: one numpy structured row per event (time, amount, location, linked
account/device, ...) plus one row per fraud label received for one of those events. Features
are pure functions of the log (see ``features``), so:

- Idempotency: rows are keyed by the id of the event that wrote them (``src``); a record
  delivered twice adds nothing the second time and the features it gets are the same.
- Delayed labels: a label is its own row (target event id, label time); the latest label of an
  event wins, and windows count a label only from its label time on (``windows.known_label_count``).
- Concurrency: an item has exactly one writer. The item key is (entity, writer slot) where the
  slot is the Kinesis shard that processed the events (Lambda runs one batch per shard at a
  time), and a reader takes the union of all slots' logs. Two shards touching one merchant or
  one IP never overwrite each other, and since the merge is a set union keyed by event id the
  result does not depend on which shard wrote first. The slots in use are listed in a small
  registry item updated with a conditional write (once per new slot).

Storage layout (table ``fraud_state``, keys ``pk``/``sk``):
    pk = "<kind>#<id>" (ids pseudonymized where they are personal), sk = "log#<slot>",
    log = zlib(rows as little-endian bytes), plan = streams in the plan (accounts),
    expires_at = newest row + horizon (DynamoDB TTL).
"""

from __future__ import annotations

import hashlib
import time
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from streamsense.fraud.windows import MS_PER_DAY, NO_LABEL
from streamsense.storage import Item, Key, Table, VersionConflict

ENTRY_DTYPE = np.dtype(
    [
        ("ts", "<i8"),  # event time, ms since epoch (for label rows: the target event's time)
        ("eid", "<u8"),  # hash of the event id (for label rows: the target event's id)
        ("src", "<u8"),  # hash of the id of the event that wrote this row (dedupe key)
        ("seq", "<u8"),  # arrival order: breaks same-millisecond ties within one entity
        ("amount", "<f8"),
        ("label_ts", "<i8"),  # label rows: when the label event occurred
        ("lat", "<f4"),
        ("lon", "<f4"),
        ("account", "<u8"),  # hash of the account id
        ("device", "<u8"),  # hash of the device token
        ("session", "<u8"),  # hash of the playback session id
        ("asn", "<u4"),
        ("country", "<u2"),
        ("kind", "u1"),
        ("flags", "u1"),
        ("fraud", "i1"),  # label rows: 1 fraud, 0 legit
        ("plan", "u1"),  # signup rows: streams in the plan
    ]
)

_RAW = np.dtype((np.void, ENTRY_DTYPE.itemsize))

# kinds
PAYMENT, LOGIN, SIGNUP, ACCOUNT_CHANGE, PLAYBACK_START, PLAYBACK_HEARTBEAT, PLAYBACK_STOP, LABEL = range(1, 9)
# flags
FAILED = 1  # login failed / payment declined
SENSITIVE = 2  # account change of email, password or payment method
HAS_GEO = 4  # lat/lon/country/asn are known

#: Entity kinds and how far back their features look (the log keeps that much history).
HORIZON_MS: dict[str, int] = {
    "acct": 45 * MS_PER_DAY,  # the amount baseline looks 44 days back
    "card": 31 * MS_PER_DAY,
    "merch": 68 * MS_PER_DAY,  # 7-day label delay + 60-day risk window, plus a day
    "ip24": 1 * MS_PER_DAY,
    "asn": 1 * MS_PER_DAY,
    "dev": 31 * MS_PER_DAY,
}
#: Most rows one entity keeps (about 90 bytes each before compression; DynamoDB items are at
#: most 400 KB). Past that the oldest rows go first and the log is marked saturated: counts
#: become lower bounds, which for the rules (thresholds far below this) changes nothing.
MAX_ROWS = 3000
SLOT_REGISTRY: Key = ("_registry", "slots")
MAX_LINKED = 50


def id_hash(value: str) -> int:
    """Stable 64-bit hash of an identifier (event ids, account ids, tokens)."""
    return int.from_bytes(hashlib.blake2b(value.encode(), digest_size=8).digest(), "little")


def country_code(cc: str) -> int:
    return (ord(cc[0]) << 8) | ord(cc[1]) if len(cc) == 2 else 0


def country_str(code: int) -> str:
    return chr(code >> 8) + chr(code & 0xFF) if code else ""


def empty_rows(n: int = 0) -> npt.NDArray[Any]:
    rows = np.zeros(n, dtype=ENTRY_DTYPE)
    rows["label_ts"] = NO_LABEL
    return rows


def _concat(parts: Sequence[npt.NDArray[Any]]) -> npt.NDArray[Any]:
    # as opaque records: concatenating structured arrays re-promotes every field (slow)
    return np.concatenate([np.ascontiguousarray(p).view(_RAW) for p in parts]).view(ENTRY_DTYPE)


def _sort(rows: npt.NDArray[Any]) -> npt.NDArray[Any]:
    return rows[np.lexsort((rows["seq"], rows["ts"]))]


def merge_rows(*parts: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Union of row sets keyed by ``src`` (the writer event), sorted by (ts, seq)."""
    nonempty = [p for p in parts if len(p)]
    if not nonempty:
        return empty_rows()
    if len(nonempty) == 1:
        return nonempty[0]  # every stored log is already unique and sorted
    rows = _concat(nonempty)
    _, first = np.unique(rows["src"], return_index=True)
    if len(first) != len(rows):
        rows = rows[np.sort(first)]
    return _sort(rows)


def _append(rows: npt.NDArray[Any], fresh: npt.NDArray[Any]) -> npt.NDArray[Any]:
    out = _concat([rows, fresh]) if len(rows) else fresh.copy()
    if len(rows) and (int(fresh["ts"].min()), 0) < (int(rows["ts"][-1]), 1):
        return _sort(out)  # something arrived out of time order
    return out if len(fresh) == 1 else _sort(out)


def materialize(rows: npt.NDArray[Any]) -> tuple[npt.NDArray[Any], npt.NDArray[np.int8], npt.NDArray[np.int64]]:
    """Event rows with their current label: (events, fraud, label_ts). The latest label of an
    event wins; an event without a label has fraud 0 and label_ts NO_LABEL."""
    is_label = rows["kind"] == LABEL
    events = rows[~is_label]
    fraud = np.zeros(len(events), dtype=np.int8)
    label_ts = np.full(len(events), NO_LABEL, dtype=np.int64)
    labels = rows[is_label]
    if len(labels) and len(events):
        labels = labels[np.lexsort((labels["fraud"], labels["label_ts"]))]  # last = latest
        _, last = np.unique(labels["eid"][::-1], return_index=True)
        latest = labels[::-1][last]
        order = np.argsort(events["eid"], kind="stable")
        pos = np.searchsorted(events["eid"][order], latest["eid"])
        pos = np.minimum(pos, len(events) - 1)
        hit = events["eid"][order][pos] == latest["eid"]
        idx = order[pos[hit]]
        fraud[idx] = latest["fraud"][hit]
        label_ts[idx] = latest["label_ts"][hit]
    return events, fraud, label_ts


@dataclass
class EntityLog:
    """One entity's rows as read from every slot, and what this writer adds."""

    key: str
    rows: npt.NDArray[Any] = field(default_factory=empty_rows)  # union over all slots
    own: npt.NDArray[Any] = field(default_factory=empty_rows)  # this writer's slot only
    own_version: int | None = None
    plan: int = 0
    saturated: bool = False
    changed: bool = False
    accounts: list[str] = field(default_factory=list)  # recent accounts seen on a shared entity

    def link(self, account_id: str) -> None:
        """Remember an account seen on this entity (investigations list linked accounts)."""
        if account_id in self.accounts:
            return
        self.accounts = [*self.accounts, account_id][-MAX_LINKED:]
        self.changed = True

    def add(self, new: npt.NDArray[Any]) -> int:
        """Add rows not seen before (by src); returns how many were new."""
        if not len(new):
            return 0
        if not len(self.rows):
            fresh = new
        elif len(new) <= 8:  # the usual case: one or two rows; cheaper than np.isin's sort
            have = self.rows["src"]
            fresh = new[[not bool((have == v).any()) for v in new["src"]]]
        else:
            fresh = new[~np.isin(new["src"], self.rows["src"])]
        if len(fresh) > 1:
            _, first = np.unique(fresh["src"], return_index=True)
            fresh = fresh[np.sort(first)]
        if len(fresh):
            self.rows = _append(self.rows, fresh)
            self.own = _append(self.own, fresh)
            self.changed = True
        return len(fresh)

    def prune(self, horizon_ms: int) -> None:
        """Drop this writer's rows older than the horizon (relative to the entity's newest row)
        and keep at most MAX_ROWS."""
        if not len(self.own):
            return
        newest = int(self.rows["ts"].max())
        keep = self.own["ts"] > newest - horizon_ms
        # session liveness rows matter for hours, not for the entity's whole horizon
        short = np.isin(self.own["kind"], (PLAYBACK_HEARTBEAT, PLAYBACK_STOP))
        keep &= ~short | (self.own["ts"] > newest - MS_PER_DAY)
        own = self.own[keep]
        if len(own) > MAX_ROWS:
            own = own[-MAX_ROWS:]
            self.saturated = True
        if len(own) != len(self.own):
            self.own = own
            self.changed = True


def pack_rows(rows: npt.NDArray[Any]) -> bytes:
    return b"SSF1" + zlib.compress(np.ascontiguousarray(rows, dtype=ENTRY_DTYPE).tobytes(), 1)


def unpack_rows(blob: bytes) -> npt.NDArray[Any]:
    if blob[:4] != b"SSF1":
        raise ValueError("unknown fraud-state log format")
    return np.frombuffer(zlib.decompress(blob[4:]), dtype=ENTRY_DTYPE).copy()


class FraudStateStore:
    """Entity logs in a ``streamsense.storage.Table`` (DynamoDB or its in-memory twin): one
    BatchGetItem round for every (entity, slot) of a batch, one BatchWriteItem round for the
    items that changed."""

    def __init__(self, table: Table, slot: str | None = "local", registry_ttl_s: float = 60.0) -> None:
        self.table = table
        self.slot = slot  # None: a read-only reader (the investigation function)
        self.registry_ttl_s = registry_ttl_s
        self._slots: list[str] | None = None
        self._read_at = -float("inf")

    def slots(self) -> list[str]:
        """Every writer slot in use, registering this one the first time (conditional write).
        The list is re-read at most once a minute, so a shard that appears later (resharding,
        a second stream) is seen by every reader within a minute."""
        fresh = time.monotonic() - self._read_at < self.registry_ttl_s
        if fresh and self._slots is not None and (self.slot is None or self.slot in self._slots):
            return self._slots
        self._read_at = time.monotonic()
        for _ in range(5):
            reg = self.table.get_many([SLOT_REGISTRY]).get(SLOT_REGISTRY)
            slots = sorted(reg.get("slots", [])) if reg else []
            if self.slot is None or self.slot in slots:
                self._slots = slots
                return slots
            version = reg.get("version") if reg else None
            item = {"pk": SLOT_REGISTRY[0], "sk": SLOT_REGISTRY[1], "slots": sorted({*slots, self.slot}), "version": (version or 0) + 1}
            try:
                self.table.put_if_version(item, version)
            except VersionConflict:
                continue
            self._slots = sorted({*slots, self.slot})
            return self._slots
        raise VersionConflict("could not register the writer slot")

    def load(self, keys: Iterable[str]) -> dict[str, EntityLog]:
        keys = list(dict.fromkeys(keys))
        slots = self.slots()
        found = self.table.get_many([(k, f"log#{s}") for k in keys for s in slots])
        logs: dict[str, EntityLog] = {}
        for k in keys:
            log = EntityLog(k)
            parts = []
            for s in slots:
                item = found.get((k, f"log#{s}"))
                if item is None:
                    continue
                rows = unpack_rows(item["log"])
                parts.append(rows)
                log.plan = max(log.plan, int(item.get("plan", 0)))
                log.saturated = log.saturated or bool(item.get("saturated", False))
                log.accounts = list(dict.fromkeys([*log.accounts, *item.get("accounts", [])]))[-MAX_LINKED:]
                if s == self.slot:
                    log.own = rows
            log.rows = merge_rows(*parts) if parts else empty_rows()
            logs[k] = log
        return logs

    def save(self, logs: Mapping[str, EntityLog]) -> int:
        """Write the logs that changed; returns how many items were written."""
        if self.slot is None:
            raise RuntimeError("a read-only state store cannot save")
        items: list[Item] = []
        for log in logs.values():
            if not log.changed:
                continue
            kind = log.key.split("#", 1)[0]
            newest = int(log.own["ts"].max()) if len(log.own) else 0
            items.append(
                {
                    "pk": log.key,
                    "sk": f"log#{self.slot}",
                    "log": pack_rows(log.own),
                    "n": len(log.own),
                    "plan": log.plan,
                    "saturated": log.saturated,
                    "accounts": log.accounts,
                    "expires_at": (newest + HORIZON_MS.get(kind, 31 * MS_PER_DAY)) // 1000,
                }
            )
        if items:
            self.table.put_many(items)
        for log in logs.values():
            log.changed = False
        return len(items)


def keys_of(logs: Sequence[EntityLog]) -> list[str]:
    return [log.key for log in logs]
