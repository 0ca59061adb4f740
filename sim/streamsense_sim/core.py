"""Orchestration: build the world once, then generate step by step, in time order.

A step is one *local* day (-1 .. days, so that every time zone's day covering the period is
generated) for every block of accounts, plus that UTC day's attacks. Each step's events are
merged with those still pending from earlier steps and flushed up to a watermark no later
step can undercut (the step's end minus 15 hours: local midnight anywhere is at most UTC+14),
so the output is globally time-ordered while memory stays bounded by about a day of events.
Every random draw comes from a generator keyed by (seed, purpose, step, block), so the output
depends only on the config (same seed -> byte-identical files). Account takeovers are planned
for the whole period before the first step, so that victims' own traffic reacts to them.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from streamsense_sim.attacks import AttackInjector, AttackRecord, plan_takeovers
from streamsense_sim.catalogue import DAY_MS, Catalogue, build_catalogue
from streamsense_sim.config import ATTACK_TYPES, SimConfig
from streamsense_sim.geo import load_asns, load_geography
from streamsense_sim.impressions import affinity
from streamsense_sim.impressions import ground_truth as impression_truth
from streamsense_sim.qoe import ThroughputModel
from streamsense_sim.render import Batch, Fragments, iso1
from streamsense_sim.traffic import Anchors, DemandCache, legit_day
from streamsense_sim.traps import TRAP_KINDS, masks_of
from streamsense_sim.world import BIG_MS, World, build_world

WATERMARK_SLACK_MS = 15 * 3_600_000
WRITE_SLICE = 50_000


@dataclass
class Chunk:
    """Time-ordered events of one generation step, as columns: times (ms), JSON lines, types,
    and the ground-truth and legit-trap lines (object arrays, None where an event has none)."""

    t: np.ndarray
    lines: list[str]
    kinds: list[str]
    truth: np.ndarray
    traps: np.ndarray
    kind_array: np.ndarray  # the types again, as an object array (vectorized selections)

    def truth_lines(self) -> list[str]:
        return self.truth[self.truth.astype(bool)].tolist()  # type: ignore[no-any-return]

    def trap_lines(self) -> list[str]:
        return self.traps[self.traps.astype(bool)].tolist()  # type: ignore[no-any-return]


def _objects(values: list[Any]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


@dataclass(frozen=True)
class SimRecord:
    """One generated event: its time, its JSON line, its type, its ground-truth line (attack
    events only; None for legitimate traffic and for label events) and its legit-trap line
    (legitimate events that look like fraud, see ``traps``; None otherwise)."""

    t_ms: int
    line: str
    kind: str
    truth: str | None
    trap: str | None = None

    @property
    def account_id(self) -> str:
        """The Kinesis partition key."""
        return self.line.split('"account_id":"', 1)[1].split('"', 1)[0]

    @property
    def stream(self) -> str:
        """The Kinesis stream producers write this event to (``infra.system.SYSTEM``)."""
        return stream_of(self.kind)


@lru_cache(maxsize=32)
def stream_of(kind: str) -> str:
    from infra.system import SYSTEM

    return SYSTEM.stream_for(kind).name


@dataclass
class Summary:
    events_by_type: Counter[str] = field(default_factory=Counter)
    attack_events_by_type: Counter[str] = field(default_factory=Counter)
    attacks_by_type: Counter[str] = field(default_factory=Counter)
    members_by_country: Counter[str] = field(default_factory=Counter)
    plays_by_country: Counter[str] = field(default_factory=Counter)
    plays_by_device: Counter[str] = field(default_factory=Counter)
    plays_by_network: Counter[str] = field(default_factory=Counter)
    trap_events_by_kind: Counter[str] = field(default_factory=Counter)
    events: int = 0
    late_labels: int = 0
    open_sessions: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "events_by_type": dict(sorted(self.events_by_type.items())),
            "attacks_by_type": {k: self.attacks_by_type.get(k, 0) for k in ATTACK_TYPES},
            "attack_events_by_type": {k: self.attack_events_by_type.get(k, 0) for k in ATTACK_TYPES},
            "late_labels": self.late_labels,
            "legit_trap_events_by_kind": {k: self.trap_events_by_kind.get(k, 0) for k in TRAP_KINDS},
            "open_sessions_at_end": self.open_sessions,
            "members_by_country": dict(self.members_by_country.most_common()),
            "plays_by_country": dict(self.plays_by_country.most_common()),
            "plays_by_device": dict(self.plays_by_device.most_common()),
            "plays_by_network": dict(self.plays_by_network.most_common()),
        }


class Simulator:
    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.geo = load_geography()
        self.asns = load_asns()
        self.world: World = build_world(config, self.geo, self.asns)
        self.catalogue: Catalogue = build_catalogue(config, self.geo, self.world.cities.country_weight)
        self.throughput = ThroughputModel(config.data_dir, config.trace_split)
        self.frags = Fragments(self.geo, self.asns)
        self.attacks: list[AttackRecord] = []
        self.views: list[tuple[int, str, str, float]] = []
        self.open_sessions: list[dict[str, Any]] = []
        self.summary = Summary()
        self._running: dict[int, list[tuple[int, int, int]]] = {}
        self.takeovers = plan_takeovers(self.world)
        self.log_affinity = affinity(config.seed, len(self.geo.countries))
        for c in self.world.country.tolist():
            self.summary.members_by_country[self.geo.countries[c]] += 1

    @property
    def blocks(self) -> list[tuple[int, int]]:
        n, b = self.config.accounts, self.config.block_size
        return [(lo, min(lo + b, n)) for lo in range(0, n, b)]

    @property
    def total_steps(self) -> int:
        return (self.config.days + 2) * len(self.blocks)

    def records(self, progress: Any = None) -> Iterator[SimRecord]:
        """Every event of the period in time order (call once per Simulator)."""
        for chunk in self.chunks(progress):
            yield from map(SimRecord, chunk.t.tolist(), chunk.lines, chunk.kinds, chunk.truth.tolist(), chunk.traps.tolist())

    def chunks(self, progress: Any = None) -> Iterator[Chunk]:
        """The same events, as one time-ordered block of columns per generation step (faster
        to write than one record at a time)."""
        cfg = self.config
        start_ms, end_ms = cfg.start_ms, cfg.end_ms
        pend_t = np.zeros(0, dtype=np.int64)
        pend = [_objects([]) for _ in range(4)]  # lines, kinds, truth, traps
        for k in range(-1, cfg.days + 1):
            batch = Batch()
            anchors = Anchors()
            demand = DemandCache(self.catalogue, self.world, start_ms + k * DAY_MS + DAY_MS // 2)
            for b, block in enumerate(self.blocks):
                rng = np.random.default_rng([cfg.seed, 7, k + 1, b])
                legit_day(self.world, self.catalogue, self.throughput, self.frags, demand, k, block, rng, batch, anchors,
                          self._running, self.log_affinity)  # fmt: skip
                if progress is not None:
                    progress.update(1)
            if 0 <= k < cfg.days:
                injector = AttackInjector(self.world, self.catalogue, self.throughput, self.frags, demand, k, np.random.default_rng([cfg.seed, 8, k]))
                injector.run(anchors, self.takeovers[k])
                injector.render(batch)
                self.attacks.extend(injector.records)
            # Sessions that would start after the period (an attacker's late binge) are cut.
            self.views.extend(v for v in batch.views if start_ms <= v[0] < end_ms)
            self.open_sessions.extend(batch.open_sessions)
            t = np.concatenate([pend_t, batch.times()])
            fresh: list[list[Any]] = [batch.lines, batch.kinds, batch.truth, batch.traps]
            cols = [np.concatenate([p, _objects(c)]) for p, c in zip(pend, fresh, strict=True)]
            del batch
            order = np.argsort(t, kind="stable")
            ts = t[order]
            last = k == cfg.days
            watermark = np.iinfo(np.int64).max if last else start_ms + (k + 1) * DAY_MS - WATERMARK_SLACK_MS
            cut = int(np.searchsorted(ts, watermark, side="left"))
            lo = int(np.searchsorted(ts[:cut], start_ms, side="left"))
            hi = int(np.searchsorted(ts[:cut], end_ms, side="left"))
            sel = order[lo:hi]
            if cfg.include_late_labels:
                after = order[hi:cut]
                late = after[cols[1][after] == "label"]
                self.summary.late_labels += len(late)
                sel = np.concatenate([sel, late])
            kinds = cols[1][sel]
            chunk = Chunk(t[sel], cols[0][sel].tolist(), kinds.tolist(), cols[2][sel], cols[3][sel], kinds)
            self._count(chunk)
            if len(chunk.lines):
                yield chunk
            rest = order[cut:]
            pend_t = t[rest]
            pend = [c[rest] for c in cols]
        for attack in self.attacks:
            self.summary.attacks_by_type[attack.attack_type] += 1
        self.open_sessions.sort(key=lambda r: (r["started_at"], r["session_id"]))
        self.summary.open_sessions = len(self.open_sessions)

    def _count(self, chunk: Chunk) -> None:
        s = self.summary
        s.events += len(chunk.lines)
        s.events_by_type.update(chunk.kinds)
        s.attack_events_by_type.update(
            truth.split('"attack_type":"', 1)[1].split('"', 1)[0] for truth in chunk.truth_lines()
        )
        for line in chunk.trap_lines():
            s.trap_events_by_kind.update(masks_of(line))

    def trap_accounts(self) -> dict[str, int]:
        """Accounts that carry each legitimate trap (by construction, whether or not they
        were active in the period; the events are counted in the summary)."""
        w = self.world
        victims = w.revoked_ms < BIG_MS
        return {
            "vpn_member": int((w.vpn_asn >= 0).sum()),
            "geoip_noise": int((w.gateway >= 0).sum()),
            "second_home": int((w.home2 >= 0).sum()),
            "traveller": int(((w.trip_dest >= 0) & (w.trip_in < self.config.end_ms) & (w.trip_home > self.config.start_ms)).sum()),
            "takeover_victim": int(victims.sum()),
            "takeover_victims_reset": int((victims & (w.reset_ms < BIG_MS)).sum()),
        }


def generate(config: SimConfig) -> Iterator[dict[str, Any]]:
    """The events of the period as JSON objects, in time order (see ``records`` for lines)."""
    for rec in Simulator(config).records():
        yield json.loads(rec.line)


def write(config: SimConfig, out_dir: Path, progress: bool = False) -> tuple[Summary, dict[str, Path]]:
    """Write the Kinesis-ready events file, the ground truth (attack events), the legitimate
    traps, the attack list, the viewing-history export, the catalogue, the ASN registry and a
    manifest into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "exports").mkdir(exist_ok=True)
    sim = Simulator(config)
    paths = {
        "events": out_dir / "events.jsonl",
        "ground_truth": out_dir / "ground_truth.jsonl",
        "legit_traps": out_dir / "legit_traps.jsonl",
        "attacks": out_dir / "attacks.jsonl",
        "viewing_history": out_dir / "exports" / "viewing_history.csv",
        "catalogue": out_dir / "catalogue.csv",
        "asns": out_dir / "asns.json",
        "manifest": out_dir / "manifest.json",
    }
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=sim.total_steps, unit="block-day", desc="simulating")
    plays_country: Counter[str] = Counter()
    plays_device: Counter[str] = Counter()
    plays_network: Counter[str] = Counter()
    with (
        paths["events"].open("w", encoding="utf-8") as ev,
        paths["ground_truth"].open("w", encoding="utf-8") as gt,
        paths["legit_traps"].open("w", encoding="utf-8") as lt,
    ):
        for chunk in sim.chunks(bar):
            # In slices: one join of a whole day would double the peak memory.
            for i in range(0, len(chunk.lines), WRITE_SLICE):
                ev.write("\n".join(chunk.lines[i : i + WRITE_SLICE]))
                ev.write("\n")
            truths = chunk.truth_lines()
            if truths:
                gt.write("\n".join(truths) + "\n")
            trap_rows = chunk.trap_lines()
            if trap_rows:
                lt.write("\n".join(trap_rows) + "\n")
            for i in np.flatnonzero(chunk.kind_array == "playback_start").tolist():
                _tally_play(chunk.lines[i], plays_country, plays_device, plays_network)
    if bar is not None:
        bar.close()
    summary = sim.summary
    summary.plays_by_country = plays_country
    summary.plays_by_device = plays_device
    summary.plays_by_network = plays_network

    with paths["attacks"].open("w", encoding="utf-8") as fh:
        for attack in sim.attacks:
            fh.write(json.dumps(attack.to_json(), separators=(",", ":"), ensure_ascii=False) + "\n")
    views = sorted(sim.views, key=lambda r: r[0])
    with paths["viewing_history"].open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["member", "title", "timestamp", "weight"])
        for t, member, title, weight in views:
            writer.writerow([member, title, t // 1000, f"{weight:.3f}"])
    with paths["catalogue"].open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(sim.catalogue.to_rows())
    paths["asns"].write_text(json.dumps(sim.asns.to_json(), indent=1) + "\n")
    manifest = {
        "config": config.to_json(),
        "catalogue": {"source": sim.catalogue.source, "titles": sim.catalogue.size,
                      "new_releases_in_period": len(sim.catalogue.new_releases(config.start_ms, config.end_ms))},
        "throughput_source": sim.throughput.source,
        "vpn_asns": sorted(sim.asns.asns[i].number for i in sim.asns.vpn),
        "files": {k: str(v.relative_to(out_dir)) for k, v in paths.items()},
        "summary": summary.to_json(),
        "viewing_history_rows": len(views),
        "legit_traps": {
            "note": "legitimate by construction (never in ground_truth.jsonl); one row per event in legit_traps.jsonl",
            "accounts": sim.trap_accounts(),
            "events": {k: summary.trap_events_by_kind.get(k, 0) for k in TRAP_KINDS},
        },
        "period_end": {
            "at": iso1(config.end_ms),
            "note": ("sessions still playing at the cut keep their start and the heartbeats sent before it and have "
                     "no playback_stop in events.jsonl; would_stop_at is when they would have stopped (ground truth)"),
            "open_sessions": sim.open_sessions,
        },
        "impressions": impression_truth(config.seed, sim.geo.countries, sorted(summary.members_by_country)),
    }  # fmt: skip
    paths["manifest"].write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    return summary, paths


def _tally_play(line: str, country: Counter[str], device: Counter[str], network: Counter[str]) -> None:
    country[line.split('"country":"', 1)[1][:2]] += 1
    device[line.split('"device_type":"', 1)[1].split('"', 1)[0]] += 1
    network[line.split('"network_type":"', 1)[1].split('"', 1)[0]] += 1

