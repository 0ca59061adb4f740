"""The content bandit on the simulator's impressions, outside the local stack.

`python -m streamsense_bench.bandit_replay [--accounts N] [--days D]` generates the simulator's
traffic (seed 0; by default the main job's full plan: 1,500 accounts x 7 days), applies its
``impression`` events with the content_bandit's own domain call (``store.apply_impressions``,
batches of 1,000 as the function's trigger delivers them) to an in-memory table, and runs the
report's content section on it (``streamsense_local.job.sections.content.collect``) joined with
the simulator's hidden affinities. The figures are those `make run` reports once the job passes
the impression truth, without the replay through Kinesis and DynamoDB around them (the statistics
are exact sums, so the batching and sharding of the stack do not change them). Writes
bench-results/bandit_replay.json and the section's plot.
"""

from __future__ import annotations

import argparse
import time
from datetime import date
from pathlib import Path
from typing import Any

from streamsense.content.store import Delivered, apply_impressions
from streamsense.events import Impression, parse_event
from streamsense.storage import MemoryTable

from streamsense_bench.common import print_table, write_results

START = date(2025, 1, 6)  # a Monday, fixed so the run is reproducible
BATCH = 1000  # content_bandit's Kinesis batch size (infra/system.py)


class _TableStack:
    """The one LocalStack method the section reads with."""

    def __init__(self, table: MemoryTable) -> None:
        self.table = table

    def scan(self, name: str) -> list[dict[str, Any]]:
        assert name == "content"
        return list(self.table.items.values())


def impression_truth(sim: Any, lines: list[str]) -> dict[str, Any]:
    """What the job's truth for the simulator's impressions holds (see the content section)."""
    from streamsense_sim.impressions import ground_truth

    truth = ground_truth(sim.config.seed, sim.geo.countries, sorted(sim.summary.members_by_country))
    truth["home_country"] = {a: sim.geo.countries[c] for a, c in zip(sim.world.account_id, sim.world.country.tolist(), strict=True)}
    cat = sim.catalogue
    truth["title_variants"] = {cat.title_ids[t]: list(cat.variants(t)) for t in range(cat.size)}
    truth["events"] = lines
    return truth


def run(accounts: int = 1500, days: int = 7) -> dict[str, Any]:
    from streamsense_local.job.sections import JobContext, content
    from streamsense_sim import SimConfig, Simulator

    timings: dict[str, float] = {}
    tic = time.perf_counter()
    sim = Simulator(SimConfig(accounts=accounts, days=days, seed=0, start=START, heartbeat_s=900))
    lines = [r.line for r in sim.records() if r.kind == "impression"]
    timings["simulate_s"] = time.perf_counter() - tic

    tic = time.perf_counter()
    events = [e for e in (parse_event(line) for line in lines) if isinstance(e, Impression)]
    table = MemoryTable()
    for i in range(0, len(events), BATCH):
        apply_impressions([Delivered(e, "shardId-000000000000", i + k) for k, e in enumerate(events[i : i + BATCH])], table)
    timings["apply_s"] = time.perf_counter() - tic

    out = Path("bench-results") / "bandit_replay"
    ctx = JobContext(stack=_TableStack(table), out=out, truth={"simulator": {"impressions": impression_truth(sim, lines)}}, data_dir=None, quick=False)  # type: ignore[arg-type]
    tic = time.perf_counter()
    section = content.collect(ctx)
    timings["section_s"] = time.perf_counter() - tic
    assert section is not None

    print(f"content bandit on the simulator's impressions: {accounts:,} accounts x {days} days, seed 0, from {START}")
    print_table("headline", ["figure", "value"], [[k, v] for k, v in section.headline.items()])
    for t in section.tables:
        print_table(t.title, t.header, t.rows)
    for note in section.notes:
        print(f"note: {note}")
    return {
        "accounts": accounts,
        "days": days,
        "start": START.isoformat(),
        "headline": section.headline,
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
        "plot": str(section.plots[0]) if section.plots else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--accounts", type=int, default=1500)
    parser.add_argument("--days", type=int, default=7)
    args = parser.parse_args()
    started = time.perf_counter()
    results = run(args.accounts, args.days)
    results["wall_s"] = round(time.perf_counter() - started, 2)
    print(f"[bandit_replay] {results['wall_s']} s -> {write_results('bandit_replay', results)}")


if __name__ == "__main__":
    main()
