"""Personalized delivery, measured on the simulator's traffic: how often the audio/subtitle
default a player would start with is what the member then picks.

The simulator's playback starts are replayed in time order, in Kinesis batches of 500 per shard
(the delivery_prefs trigger's batch size) through the handler's path (streamsense.pipeline ->
streamsense.delivery.service.DeliveryPrefs) into an in-memory recs table. Before each batch is
applied, every start in it is predicted from what the table holds at that moment (the player
fetched the defaults when the session started; the batch lands seconds later) and compared
with the member's actual pick. The first ``warmup_days`` days only train; the rest is scored.

Baselines on the same stream, each with the same region fallback for a profile never seen:
the region's most frequent (audio, subtitles) pair; the profile's last pick; the profile's most
frequent pair. The catalogue (each title's language and dub status) is the simulator's own,
as the service's catalogue would be.

``python -m streamsense_bench.abr_delivery [accounts days]`` runs it alone.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from streamsense.delivery.catalogue import TitleCatalogue
from streamsense.delivery.model import TitleInfo, resolve
from streamsense.delivery.service import (
    DELIVERY_TYPES,
    DeliveryPrefs,
    defaults_for,
    member_key,
    region_key,
)
from streamsense.observability import metrics
from streamsense.pipeline import kinesis_batch
from streamsense.quarantine import QuarantineSink
from streamsense.storage import MemoryQueue, MemoryTable
from streamsense_sim import SimConfig, Simulator

from streamsense_bench.abr_telemetry import FIRST_SEQUENCE, kinesis_record, shard_of
from streamsense_bench.common import data_dir, print_table

BATCH = 500
SHARDS = 2
DAY_MS = 86_400_000


@dataclass
class Score:
    n: int = 0
    audio: int = 0
    subtitles: int = 0
    both: int = 0

    def add(self, predicted: tuple[str, str], actual: tuple[str, str]) -> None:
        self.n += 1
        self.audio += predicted[0] == actual[0]
        self.subtitles += predicted[1] == actual[1]
        self.both += predicted == actual

    def as_dict(self) -> dict[str, float | int]:
        n = max(self.n, 1)
        return {
            "n": self.n,
            "both": self.both / n,
            "audio": self.audio / n,
            "subtitles": self.subtitles / n,
        }


@dataclass
class Scores:
    all: Score = field(default_factory=Score)
    warm: Score = field(default_factory=Score)  # the profile had picked before
    cold: Score = field(default_factory=Score)

    def add(self, warm: bool, predicted: tuple[str, str], actual: tuple[str, str]) -> None:
        self.all.add(predicted, actual)
        (self.warm if warm else self.cold).add(predicted, actual)

    def as_dict(self) -> dict[str, Any]:
        return {"all": self.all.as_dict(), "warm": self.warm.as_dict(), "cold": self.cold.as_dict()}


@dataclass
class Baselines:
    region_pairs: dict[str, Counter[tuple[str, str]]] = field(
        default_factory=lambda: defaultdict(Counter)
    )
    last: dict[str, tuple[str, str]] = field(default_factory=dict)
    profile_pairs: dict[str, Counter[tuple[str, str]]] = field(
        default_factory=lambda: defaultdict(Counter)
    )

    def region(self, region: str) -> tuple[str, str]:
        c = self.region_pairs.get(region)
        return c.most_common(1)[0][0] if c else ("en", "off")

    def predict(self, profile: str, region: str) -> dict[str, tuple[str, str]]:
        fallback = self.region(region)
        prof = self.profile_pairs.get(profile)
        return {
            "region_majority": fallback,
            "profile_last_pick": self.last.get(profile, fallback),
            "profile_majority": prof.most_common(1)[0][0] if prof else fallback,
        }

    def learn(self, profile: str, region: str, pick: tuple[str, str]) -> None:
        self.region_pairs[region][pick] += 1
        self.last[profile] = pick
        self.profile_pairs[profile][pick] += 1


def measure(
    accounts: int = 5_000, days: int = 14, seed: int = 11, warmup_days: int = 7
) -> dict[str, Any]:
    started = time.perf_counter()
    sim = Simulator(SimConfig(accounts=accounts, days=days, seed=seed, data_dir=data_dir()))
    cat = sim.catalogue
    catalogue = TitleCatalogue(
        {
            tid: TitleInfo(str(lang), bool(dub))
            for tid, lang, dub in zip(cat.title_ids, cat.language, cat.dubbed, strict=True)
        }
    )
    starts = [(rec.t_ms, rec.line) for rec in sim.records() if rec.kind == "playback_start"]
    generated_s = time.perf_counter() - started
    score_from = sim.config.start_ms + warmup_days * DAY_MS

    table = MemoryTable("recs")
    clock = {"now": datetime.fromtimestamp(sim.config.start_ms / 1000, UTC)}
    service = DeliveryPrefs(table, catalogue, clock=lambda: clock["now"])
    sink = QuarantineSink("delivery_prefs", MemoryQueue())
    baselines = Baselines()
    product = Scores()
    region_only = Scores()  # every scored play as if the member were new: the region's defaults
    base_scores: dict[str, Scores] = defaultdict(Scores)
    seen_profiles: set[str] = set()
    seq = [FIRST_SEQUENCE] * SHARDS
    applied = 0
    service_requests = 0
    failures = 0
    apply_s = 0.0
    for lo in range(0, len(starts), BATCH * SHARDS):
        chunk = starts[lo : lo + BATCH * SHARDS]
        parsed = [json.loads(line) for _, line in chunk]
        members = table.get_many(
            [member_key(e["account_id"]) for e in parsed]
            + [region_key(e["payload"]["network"]["country"]) for e in parsed]
        )
        for (t_ms, _), e in zip(chunk, parsed, strict=True):
            p = e["payload"]
            region = p["network"]["country"]
            actual = (p["audio_language"], p["subtitle_language"])
            prof = p["profile_id"]
            if t_ms >= score_from:
                warm = prof in seen_profiles
                title = catalogue.get(p["title_id"])
                region_doc = members.get(region_key(region))
                d = defaults_for(members.get(member_key(e["account_id"])), prof, region_doc)
                product.add(warm, resolve(d, title), actual)
                region_only.add(warm, resolve(defaults_for(None, prof, region_doc), title), actual)
                for name, guess in baselines.predict(prof, region).items():
                    base_scores[name].add(warm, guess, actual)
            baselines.learn(prof, region, actual)
            seen_profiles.add(prof)
        # the batch lands: one Kinesis event per shard
        per_shard: list[list[dict[str, Any]]] = [[] for _ in range(SHARDS)]
        for (t_ms, line), e in zip(chunk, parsed, strict=True):
            s = shard_of(e["account_id"], SHARDS)
            seq[s] += 10
            per_shard[s].append(kinesis_record(line, e["account_id"], s, seq[s], t_ms / 1000))
        clock["now"] = datetime.fromtimestamp(chunk[-1][0] / 1000, UTC)
        t0 = time.perf_counter()
        requests_before = table.requests
        for records in per_shard:
            if records:
                response = kinesis_batch(
                    {"Records": records}, service.apply, accepts=DELIVERY_TYPES, quarantine=sink
                )
                failures += len(response["batchItemFailures"])
                applied += len(records)
        apply_s += time.perf_counter() - t0
        service_requests += table.requests - requests_before
        metrics.clear_metrics()  # no Lambda runtime here to flush the EMF blob

    return {
        "config": {"accounts": accounts, "days": days, "seed": seed, "warmup_days": warmup_days},
        "plays": len(starts),
        "scored": product.all.n,
        "profiles": len(seen_profiles),
        "product": product.as_dict(),
        "product_region_defaults_only": region_only.as_dict(),
        "baselines": {k: v.as_dict() for k, v in base_scores.items()},
        "batch_failures": failures,
        "quarantined": len(sink.queue.messages),  # type: ignore[attr-defined]
        "events_per_s": applied / apply_s if apply_s else None,
        "aws_requests_per_1000_events": 1000.0 * service_requests / max(applied, 1),
        "simulate_s": generated_s,
    }


def print_report(r: dict[str, Any]) -> None:
    rows = []
    named = [
        ("streamsense (situation defaults)", r["product"]),
        ("streamsense region defaults only", r["product_region_defaults_only"]),
        *r["baselines"].items(),
    ]
    for name, s in named:
        rows.append(
            (
                name,
                f"{s['all']['both']:.3f}",
                f"{s['all']['audio']:.3f}",
                f"{s['all']['subtitles']:.3f}",
                f"{s['warm']['both']:.3f}",
                f"{s['cold']['both']:.3f}",
            )
        )
    c = r["config"]
    print_table(
        f"Delivery defaults on simulated traffic ({c['accounts']} accounts, {c['days']} days, seed "
        f"{c['seed']}; scored after day {c['warmup_days']}: {r['scored']} plays, "
        f"{r['product']['warm']['n']} by profiles seen before, {r['product']['cold']['n']} cold)",
        ["defaults", "both right", "audio", "subtitles", "both (warm)", "both (cold)"],
        rows,
    )


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    result = measure(*args)
    print_report(result)
    print(
        json.dumps(
            {
                k: v
                for k, v in result.items()
                if k in ("events_per_s", "aws_requests_per_1000_events")
            }
        )
    )
