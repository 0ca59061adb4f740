"""Serialization: events as compact JSON lines, byte-for-byte what ``dump_event`` writes.

The bulk (playback events) is written with string templates over numpy columns, because
building pydantic models or dicts per event is what would make a day of 100,000 accounts
slow; rare events go through ``json.dumps``. A unit test round-trips every line through
``validate_event`` + ``dump_event`` to prove the two paths agree with the event contract."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from streamsense_sim.geo import AsnRegistry, Geography
from streamsense_sim.traps import trap_line


def iso(t_ms: np.ndarray) -> list[str]:
    """UTC ISO 8601 as pydantic writes it: no fraction on whole seconds, else microseconds."""
    text = np.datetime_as_string(np.asarray(t_ms, dtype=np.int64).astype("datetime64[ms]"), unit="ms")
    return [s[:-4] + "Z" if s.endswith(".000") else s + "000Z" for s in text.tolist()]


def iso1(t_ms: int) -> str:
    """``iso`` of one instant, without numpy's per-call overhead (rare events call it a lot)."""
    sec, ms = divmod(int(t_ms), 1000)
    tm = time.gmtime(sec)
    base = f"{tm.tm_year:04d}-{tm.tm_mon:02d}-{tm.tm_mday:02d}T{tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d}"
    return base + "Z" if ms == 0 else f"{base}.{ms:03d}000Z"


def new_ids(rng: np.random.Generator, n: int, prefix: str = "") -> list[str]:
    """n random 128-bit hex ids (deterministic given the generator)."""
    h = rng.bytes(16 * n).hex()
    return [prefix + h[i : i + 32] for i in range(0, 32 * n, 32)]


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


class Fragments:
    """Cached JSON fragments for places (network context tail) and ASNs."""

    def __init__(self, geo: Geography, asns: AsnRegistry) -> None:
        self.geo = geo
        self.asn_numbers = asns.numbers()
        self._city: dict[int, str] = {}

    def city(self, c: int) -> str:
        frag = self._city.get(c)
        if frag is None:
            g = self.geo
            frag = (
                f'"country":"{g.countries[int(g.country[c])]}","city":{dumps(g.name[c])},'
                f'"lat":{float(g.lat[c])!r},"lon":{float(g.lon[c])!r}}}'
            )
            self._city[c] = frag
        return frag

    def network(self, ip: str, asn_index: int, city: int) -> str:
        return f'{{"ip":"{ip}","asn":{int(self.asn_numbers[asn_index])},{self.city(city)}'

    def network_dict(self, ip: str, asn_index: int, city: int) -> dict[str, Any]:
        g = self.geo
        return {
            "ip": ip,
            "asn": int(self.asn_numbers[asn_index]),
            "country": g.countries[int(g.country[city])],
            "city": g.name[city],
            "lat": float(g.lat[city]),
            "lon": float(g.lon[city]),
        }


def device_json(device_id: str, device_type: str) -> str:
    return f'{{"device_id":"{device_id}","device_type":"{device_type}"}}'


@dataclass
class Batch:
    """Rendered events of one generation step (not yet time-ordered)."""

    t: list[np.ndarray] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    truth: list[str | None] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    traps: list[str | None] = field(default_factory=list)  # legit_traps lines (see traps.py)
    # (t_start_ms, member, title, weight) rows of the viewing-history export
    views: list[tuple[int, str, str, float]] = field(default_factory=list)
    # Sessions still playing at the period's end (their stop is never emitted).
    open_sessions: list[dict[str, Any]] = field(default_factory=list)
    impressions: int = 0

    def add(
        self, t: np.ndarray, lines: list[str], truth: list[str | None], kind: str, traps: list[str | None] | None = None
    ) -> None:
        assert len(t) == len(lines) == len(truth)
        self.t.append(np.asarray(t, dtype=np.int64))
        self.lines.extend(lines)
        self.truth.extend(truth)
        self.kinds.extend([kind] * len(lines))
        self.traps.extend(traps if traps is not None else [None] * len(lines))

    def times(self) -> np.ndarray:
        return np.concatenate(self.t) if self.t else np.zeros(0, dtype=np.int64)


class RareEvents:
    """Low-volume events built as dicts (logins, payments, signups, changes, labels)."""

    def __init__(self) -> None:
        self.t: list[int] = []
        self.lines: list[str] = []
        self.truth: list[str | None] = []
        self.kinds: list[str] = []
        self.traps: list[str | None] = []

    def add(
        self,
        event_id: str,
        t_ms: int,
        account_id: str,
        kind: str,
        payload: dict[str, Any],
        attack: tuple[str, str] | None = None,
        trap: int = 0,
    ) -> None:
        """``attack``: (type, id) for an attack event; ``trap``: the legit trap bit mask."""
        when = iso1(t_ms)
        line = (
            f'{{"version":1,"event_id":"{event_id}","occurred_at":"{when}",'
            f'"account_id":"{account_id}","type":"{kind}","payload":{dumps(payload)}}}'
        )
        self.t.append(t_ms)
        self.lines.append(line)
        self.kinds.append(kind)
        self.truth.append(truth_line(event_id, attack, kind, account_id, when) if attack else None)
        self.traps.append(trap_line(event_id, trap, kind, account_id, when) if trap and not attack else None)

    def into(self, batch: Batch) -> None:
        if not self.t:
            return
        batch.t.append(np.array(self.t, dtype=np.int64))
        batch.lines.extend(self.lines)
        batch.truth.extend(self.truth)
        batch.kinds.extend(self.kinds)
        batch.traps.extend(self.traps)


def truth_line(event_id: str, attack: tuple[str, str], kind: str, account_id: str, when: str) -> str:
    return (
        f'{{"event_id":"{event_id}","attack_type":"{attack[0]}","attack_id":"{attack[1]}",'
        f'"type":"{kind}","account_id":"{account_id}","occurred_at":"{when}"}}'
    )
