"""The main job (`make run`): replay real data through the whole local stack, as the cloud would
deliver it, then report what the functions wrote.

Steps: start the local stack; drop the labeled exports into S3 (-> fraud_trainer, recs_trainer)
and deliver them; write the operators' edge-site and title tables cache_hints reads; then replay
the events in time order, one fill window (cache_hints' 6 h) at a time: put the window's events
on Kinesis, deliver everything, move the clock to the window's end and fire cache_hints'
fill-window schedule (the recs lists are read at each day boundary); finally save the stack's state (for `query`) and write the
report (text, JSON and HTML with plots).
"""

from __future__ import annotations

import heapq
import json
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from streamsense.caching.store import DEFAULT_WINDOW_S
from tqdm import tqdm

from streamsense_local.job import report, snapshot
from streamsense_local.job.examples import query_examples
from streamsense_local.job.inputs import (
    HandbookPlan,
    MovieLensPlan,
    Replay,
    handbook_replay,
    movielens_replay,
    next_monday,
)
from streamsense_local.job.sections import JobContext
from streamsense_local.job.sections import cache as cache_section
from streamsense_local.job.sections import recs as recs_section
from streamsense_local.stack import LocalStack

DEFAULT_OUT = Path("reports/latest")
_SCORED = frozenset({"login", "signup", "account_change", "payment", "playback_start"})
STATE_DIR = Path(".streamsense/last-run")
#: cache_hints' fill window (its FILL_WINDOW_S default): the replay's step and schedule tick.
FILL_WINDOW_S = DEFAULT_WINDOW_S


@dataclass(frozen=True)
class Plan:
    days: int
    sim_accounts: int
    sim_heartbeat_s: int
    movielens: MovieLensPlan
    handbook: HandbookPlan


FULL = Plan(
    days=7,
    sim_accounts=500,  # 1,500: ~11 min of replay alone on 2 cores; 600: 9 min 51 s in all (budget: 10)
    sim_heartbeat_s=600,
    movielens=MovieLensPlan(new_plays=3_000, days=7),
    handbook=HandbookPlan(date(2018, 5, 4), 88, date(2018, 8, 1), 35, 7, customer_share=0.10, neighbourhood=True),
)
QUICK = Plan(
    # The end-to-end test: every function exercised in under 2 minutes. The handbook warm-up is
    # two weeks (the 30-day customer windows are not yet full: a smoke check, not a benchmark).
    days=1,
    sim_accounts=200,
    sim_heartbeat_s=900,
    movielens=MovieLensPlan(new_plays=300, days=1, export_since=date(2016, 1, 1)),
    handbook=HandbookPlan(date(2018, 7, 25), 28, date(2018, 8, 22), 14, 1, customer_share=0.02, export_share=0.10),
)

def _sim_replay(plan: Plan, t0: datetime, data_dir: Path | None) -> tuple[Replay, list[tuple[float, bytes, str]]]:
    from streamsense_sim import SimConfig, Simulator
    from streamsense_sim.impressions import ground_truth as impression_truth

    from streamsense_local.job.sections.delivery import catalogue_export

    config = SimConfig(
        accounts=plan.sim_accounts,
        days=plan.days,
        seed=0,
        start=t0.date(),
        data_dir=data_dir,
        heartbeat_s=plan.sim_heartbeat_s,
        trace_split="eval" if data_dir else "all",
    )
    sim = Simulator(config)
    records: list[tuple[float, bytes, str]] = []
    truth: dict[str, dict[str, Any]] = {}
    traps: dict[str, dict[str, Any]] = {}
    impressions: list[str] = []
    context: dict[str, dict[str, str]] = {}
    for rec in sim.records():
        records.append((rec.t_ms / 1000.0, rec.line.encode(), rec.account_id))
        if rec.kind == "impression":
            impressions.append(rec.line)
        elif rec.kind in _SCORED:
            # where and on what each scored event happened: the fraud section splits its
            # false-positive rates by country and device type
            payload = json.loads(rec.line)["payload"]
            context[rec.line.split('"event_id":"', 1)[1].split('"', 1)[0]] = {
                "country": (payload.get("network") or {}).get("country", ""),
                "device_type": (payload.get("device") or {}).get("device_type", ""),
            }
        if rec.truth:
            line = json.loads(rec.truth)
            truth[line["event_id"]] = line
        if rec.trap:
            line = json.loads(rec.trap)
            traps[line["event_id"]] = line
    replay = Replay("simulator")
    # delivery_prefs needs the titles' languages and dubs: the catalogue export, dropped first.
    key, body = catalogue_export(sim)
    replay.exports.append(("exports", key, body))
    # The hidden per-(country, variant) affinities behind the simulated plays: what the content
    # section compares the bandit's learned choices with.
    imp = impression_truth(config.seed, sim.geo.countries, sorted(sim.summary.members_by_country))
    imp["home_country"] = {
        a: sim.geo.countries[c] for a, c in zip(sim.world.account_id, sim.world.country.tolist(), strict=True)
    }
    imp["title_variants"] = {sim.catalogue.title_ids[t]: list(sim.catalogue.variants(t)) for t in range(sim.catalogue.size)}
    imp["events"] = impressions
    replay.truth = {
        "attacks": truth,
        "legit_traps": traps,
        "summary": sim.summary.to_json(),
        "impressions": imp,
        "event_context": context,
        "catalogue": sim.catalogue,  # title sizes and launch calendar for cache_hints' title table
        # which ABR-trace half the throughput came from: the qoe section evaluates on the other
        "config": {"trace_split": config.trace_split, "heartbeat_s": config.heartbeat_s},
    }
    source = "real ABR traces (evaluation half)" if data_dir else "the parametric throughput model"
    replay.notes.append(
        f"Simulator: {plan.sim_accounts:,} accounts x {plan.days} day(s), seed 0, heartbeat every "
        f"{plan.sim_heartbeat_s} s, throughput from {source}; {len(records):,} events"
    )
    return replay, records


def _timed(replay: Replay) -> list[tuple[float, bytes, str]]:
    out = []
    for e in replay.events:
        t = datetime.fromisoformat(e["occurred_at"].replace("Z", "+00:00")).timestamp()
        out.append((t, json.dumps(e, separators=(",", ":")).encode(), e["account_id"]))
    return out


def _windows(
    streams: list[list[tuple[float, bytes, str]]], t0: float, step: float
) -> Iterator[tuple[float, list[tuple[float, bytes, str]]]]:
    """Merge time-ordered sources and cut them into fill windows: everything before t0 (the
    fraud features' warm-up: no fill window is due there) as one, then [t, t + step) from t0."""
    merged = heapq.merge(*streams, key=lambda r: r[0])
    end = t0
    batch: list[tuple[float, bytes, str]] = []
    for rec in merged:
        while rec[0] >= end:
            yield end, batch
            batch, end = [], end + step
        batch.append(rec)
    yield end, batch


def data_dir_from_env() -> Path | None:
    """The team data's folder, or None to replay the simulator alone: only when the default
    (./data) is missing. A STREAMSENSE_DATA_DIR set elsewhere that is not a folder is a typo, not
    a wish for a simulator-only report (ValueError)."""
    env_dir = Path(os.environ.get("STREAMSENSE_DATA_DIR", "data"))
    if env_dir.is_dir():
        return env_dir
    if env_dir.resolve() != Path("data").resolve():
        raise ValueError(
            f"STREAMSENSE_DATA_DIR={env_dir} is not a folder; point it at the team data or unset it "
            "(with no ./data, the run replays the simulator alone)"
        )
    return None


def run(
    *, quick: bool = False, data_dir: Path | None = None, out: Path = DEFAULT_OUT, state_dir: Path = STATE_DIR
) -> dict[str, Any]:
    started = time.perf_counter()
    # Function containers run in functions/<name>/: every path handed to the stack is absolute.
    out, state_dir = out.resolve(), state_dir.resolve()
    plan = QUICK if quick else FULL
    if data_dir is None:
        data_dir = data_dir_from_env()
    warmup_weeks = -(-plan.handbook.warmup_days // 7)
    t0 = next_monday(datetime.now(UTC)) + timedelta(weeks=warmup_weeks)
    print(f"streamsense main job ({'quick' if quick else 'full'}): replay period starts {t0:%Y-%m-%d} (UTC)")
    if data_dir is None:
        print("team data not found (STREAMSENSE_DATA_DIR): replaying the simulator alone")
    else:
        print(f"team data: {data_dir}")

    timings: dict[str, float] = {}
    replays: list[Replay] = []
    streams: list[list[tuple[float, bytes, str]]] = []
    tic = time.perf_counter()
    if data_dir is not None:
        ml = movielens_replay(data_dir, plan.movielens, t0)
        hb = handbook_replay(data_dir, plan.handbook, t0)
        replays += [ml, hb]
        streams += [_timed(ml), _timed(hb)]
    sim, sim_records = _sim_replay(plan, t0, data_dir)
    replays.append(sim)
    streams.append(sim_records)
    timings["inputs_s"] = time.perf_counter() - tic
    for r in replays:
        for note in r.notes:
            print(f"  {note}")

    out.mkdir(parents=True, exist_ok=True)
    total = sum(len(s) for s in streams)
    first = min(s[0][0] for s in streams if s)
    tic = time.perf_counter()
    with LocalStack.start(workdir=out / "stack", record_history=False) as stack:
        timings["stack_start_s"] = time.perf_counter() - tic
        stack.clock.advance_to(first - 3600)
        tic = time.perf_counter()
        exports = [e for r in replays for e in r.exports]
        for bucket, key, body in exports:
            print(f"  s3://{bucket}/{key} ({len(body) / 1e6:.1f} MB)")
            stack.put_object(bucket, key, body)
        stack.drain()
        _promote_fraud_candidate(stack)
        truth: dict[str, Any] = {r.name: r.truth for r in replays}
        # The operators' edge sites and the catalogue's title sizes (cache_hints reads both);
        # the plays the cache section scores the hints against.
        truth["cache"] = cache_section.setup(stack, sim.truth.get("catalogue"), streams)
        # What recs_trainer served before any replayed play: the recs section scores it
        # against the plays that follow.
        truth["recs_before"] = recs_section.after_trainers(stack, truth)
        truth["recs_windows"] = []
        timings["trainers_s"] = time.perf_counter() - tic

        tic = time.perf_counter()
        with tqdm(total=total, unit="ev", desc="replay", smoothing=0.05) as bar:
            for end, batch in _windows(streams, t0.timestamp(), float(FILL_WINDOW_S)):
                if batch:
                    stack.clock.advance_to(batch[0][0])
                    for i in range(0, len(batch), 20_000):
                        chunk = batch[i : i + 20_000]
                        _put(stack, chunk)
                        stack.drain()
                        bar.update(len(chunk))
                else:
                    stack.drain()  # a pending tick is delivered before the clock moves on
                stack.clock.advance_to(end)
                if end > t0.timestamp():
                    # Fill windows inside the replay period only: after it come labels, no plays.
                    # The schedule fires and the next window's records flow at once, as in the
                    # cloud (the tick is delivered by the next drain); it publishes from closed
                    # windows only, so the plays arriving meanwhile do not change what it writes.
                    if end < t0.timestamp() + plan.days * 86400:
                        stack.tick("cache_hints")
                    if (end - t0.timestamp()) % 86400 == 0:
                        truth["recs_windows"].append(recs_section.after_window(stack, truth, end))
            stack.drain()  # a tick fired at the last boundary
        timings["replay_s"] = time.perf_counter() - tic
        ctx = JobContext(stack=stack, out=out, truth=truth, data_dir=data_dir, quick=quick, timings=timings)
        # The state snapshot (for `query`) is saved while the sections are computed: both only
        # read the stack by now, and the save mostly waits on moto's server, the report on numpy.
        with ThreadPoolExecutor(max_workers=1) as pool:
            saving = pool.submit(_save, stack, state_dir, timings)
            tic = time.perf_counter()
            sections = report.collect(ctx)
            timings["report_s"] = time.perf_counter() - tic
            counts = saving.result()
    timings["wall_s"] = time.perf_counter() - started
    result = report.write(out, sections, timings, notes=[n for r in replays for n in r.notes], state=counts)
    print(f"\nreport: {out / 'report.html'} (and report.json); state for `query`: {state_dir}")
    state_flag = "" if state_dir == STATE_DIR.resolve() else f" --state {state_dir}"
    for command in query_examples(state_dir):
        print(f"  try: {command}{state_flag}")
    return result


def _save(stack: LocalStack, state_dir: Path, timings: dict[str, float]) -> dict[str, int]:
    tic = time.perf_counter()
    counts = snapshot.save(stack, state_dir)
    timings["save_state_s"] = time.perf_counter() - tic
    return counts


def _put(stack: LocalStack, chunk: list[tuple[float, bytes, str]]) -> None:
    by_stream: dict[str, list[tuple[bytes, str]]] = {}
    for _, raw, key in chunk:
        kind = json.loads(raw).get("type")
        by_stream.setdefault(stack.route({"type": kind}), []).append((raw, key))
    for stream, records in by_stream.items():
        stack.put_records(stream, records)


def _promote_fraud_candidate(stack: LocalStack) -> None:
    """The operator's step after a retrain: fraud_trainer publishes a candidate that is scored in
    shadow until someone promotes it. The rehearsal promotes it before the replay so the payments
    are scored by the model trained on the weeks before them."""
    from streamsense.fraud import registry
    from streamsense.storage import ObjectNotFound, S3ObjectStore

    models = S3ObjectStore(stack.physical("bucket", "models"), client=stack.client("s3"))
    try:
        version = registry.promote(models)
    except ObjectNotFound:
        print("  fraud_trainer published no candidate: fraud_scorer runs on its rules alone")
        return
    print(f"  fraud model {version} promoted from shadow to live (operator step)")
