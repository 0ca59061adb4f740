"""Benchmark 4 (benchmarks.md): adaptive streaming hints.

1. Calibration: robustMPC on every evaluation trace (dead ones included) without the startup
   term, against the figures measured when the protocol was written.
2. Telemetry: the fleet's current player (robustMPC) plays the hint-training half (even
   positions of the sorted file names) of each family; each session's events go, as Kinesis
   batches, through the qoe_hints handler's path (streamsense.pipeline.kinesis_batch ->
   streamsense.qoe.service.QoeHints) into an in-memory qoe table, which then holds the hints.
3. Evaluation half (odd positions): every anchor, and the product player (HintedMPC) starting
   from the hint its segment fetches; the same player without a hint shows what the hint adds.
4. Personalized delivery (abr_delivery): how often the audio/subtitle default is what members
   of the simulator's traffic then pick.

A family is one segment of the service's traffic: Norway HSDPA = NO / cellular_3g / mobile,
FCC SD = US / wifi / web, FCC HD = US / ethernet / tv.
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from streamsense.observability import metrics
from streamsense.pipeline import kinesis_batch
from streamsense.qoe.aggregate import QOE_TYPES
from streamsense.qoe.hints import publish_hints, read_hint
from streamsense.qoe.segments import Segment
from streamsense.qoe.service import QoeHints
from streamsense.quarantine import QuarantineSink
from streamsense.storage import MemoryQueue, MemoryTable

from streamsense_bench import abr_delivery
from streamsense_bench.abr_anchors import Bola, BufferBased, RateBased, RobustMPC
from streamsense_bench.abr_player import HintedMPC, PlayerHints
from streamsense_bench.abr_sim import (
    FAMILIES,
    Controller,
    SessionLog,
    Split,
    Trace,
    Video,
    load_envivio,
    load_split,
    session_qoe,
    simulate,
    summarize,
    trace_files,
)
from streamsense_bench.abr_telemetry import Population, kinesis_batches, session_events
from streamsense_bench.common import data_dir, print_table

POPULATIONS: dict[str, Population] = {
    "norway-3g": Population("NO", "cellular_3g", "mobile", 2119, 59.91, 10.75, "no"),
    "fcc-sd": Population("US", "wifi", "web", 7922, 39.74, -104.99, "en"),
    "fcc-hd": Population("US", "ethernet", "tv", 701, 40.71, -74.01, "en"),
}
#: Measured when the protocol was written: robustMPC, no startup term, evaluation halves.
CALIBRATION = {"norway-3g": (-89.0, 34.0), "fcc-sd": (124.0, None), "fcc-hd": (140.0, None)}
TRAINING_DAY = datetime(2024, 5, 6, tzinfo=UTC)
GOAL_RATIO = 1.05
DELIVERY_RUN = {"accounts": 2_000, "days": 14, "seed": 11, "warmup_days": 7}


def segment_for(family: str) -> Segment:
    p = POPULATIONS[family]
    return Segment.of(p.country, p.network_type, p.device_type)


def anchors() -> list[Controller]:
    return [BufferBased(), RateBased(), Bola(), RobustMPC()]


def play(traces: list[Trace], video: Video, controller: Controller) -> list[SessionLog]:
    return [simulate(t, video, controller) for t in traces]


def ratio(product: float, anchor: float) -> float:
    """product / anchor, defined for a negative anchor as 1 + (product - anchor) / |anchor| so
    that 1.05 means '5% of the anchor's magnitude better' whatever its sign."""
    return 1.0 + (product - anchor) / abs(anchor) if anchor else float("nan")


def calibration(video: Video) -> dict[str, Any]:
    out: dict[str, Any] = {}
    data = data_dir()
    for family in FAMILIES:
        traces = [Trace.load(p) for i, p in enumerate(trace_files(data, family)) if i % 2 == 1]
        q = [session_qoe(simulate(t, video, RobustMPC()), with_startup=False) for t in traces]
        alive = [x for x, t in zip(q, traces, strict=True) if t.dead_s <= 60.0]
        out[family] = {
            "all_traces": {
                "n": len(q),
                "mean": statistics.fmean(q),
                "median": statistics.median(q),
            },
            "alive_traces": {
                "n": len(alive),
                "mean": statistics.fmean(alive),
                "median": statistics.median(alive),
            },
            "reference_mean": CALIBRATION[family][0],
            "reference_median": CALIBRATION[family][1],
        }
    return out


def training_events(splits: dict[str, Split], video: Video) -> list[Any]:
    """Telemetry of the fleet's current player (robustMPC) on the training halves."""
    events = []
    for f_no, family in enumerate(FAMILIES):
        for i, trace in enumerate(splits[family].train):
            log = simulate(trace, video, RobustMPC())
            started = TRAINING_DAY + timedelta(hours=f_no, seconds=7 * i)
            events.extend(session_events(log, POPULATIONS[family], i, started, family))
    return events


def through_handler(events: list[Any], batch_size: int) -> tuple[MemoryTable, dict[str, Any]]:
    """The events as Kinesis batches (2 shards) through the qoe_hints handler's path."""
    now = max(e.occurred_at for e in events) + timedelta(minutes=1)
    table = MemoryTable("qoe")
    queue = MemoryQueue()
    service = QoeHints(table, clock=lambda: now)
    sink = QuarantineSink("qoe_hints", queue)
    started_at = time.perf_counter()
    failures = 0
    batches = 0
    for batch in kinesis_batches(events, shards=2, batch_size=batch_size):
        response = kinesis_batch(batch, service.apply, accepts=QOE_TYPES, quarantine=sink)
        failures += len(response["batchItemFailures"])
        batches += 1
        metrics.clear_metrics()  # no Lambda runtime here to flush the EMF blob
    elapsed = time.perf_counter() - started_at
    stats = {
        "batch_size": batch_size,
        "events": len(events),
        "batches": batches,
        "batch_failures": failures,
        "quarantined": len(queue.messages),
        "events_per_s": len(events) / elapsed,
        "aws_requests_per_1000_events": 1000.0 * table.requests / len(events),
    }
    publish_hints(table, [segment_for(f) for f in FAMILIES], now, service.config, force=True)
    return table, stats


def run() -> dict[str, Any]:
    data = data_dir()
    video = load_envivio(data)
    splits = {f: load_split(data, f) for f in FAMILIES}
    results: dict[str, Any] = {"calibration": calibration(video)}
    events = training_events(splits, video)
    table, telemetry = through_handler(events, 1000)  # the qoe_hints trigger's batch size
    telemetry["sessions"] = sum(len(splits[f].train) for f in FAMILIES)
    # how the handler's cost grows with the batch size (same events, fresh tables)
    telemetry["by_batch_size"] = [through_handler(events, b)[1] for b in (100, 300)] + [
        {k: telemetry[k] for k in ("batch_size", "events_per_s", "aws_requests_per_1000_events")}
    ]
    results["telemetry"] = telemetry

    summary_rows = []
    for family in FAMILIES:
        split = splits[family]
        hint = read_hint(table, segment_for(family))
        family_out: dict[str, Any] = {
            "traces": {
                "train": len(split.train),
                "evaluation": len(split.evaluation),
                "dead_train": split.dead_train,
                "dead_evaluation": split.dead_evaluation,
            },
            "hint": hint,
            "anchors": {},
        }
        rows = []
        for controller in anchors():
            s = summarize(play(split.evaluation, video, controller))
            family_out["anchors"][controller.name] = s.as_dict()
            rows.append((controller.name, s))
        product = summarize(play(split.evaluation, video, HintedMPC(PlayerHints.from_hint(hint))))
        no_hint = summarize(play(split.evaluation, video, HintedMPC(PlayerHints())))
        family_out["product"] = product.as_dict()
        family_out["product_without_hint"] = no_hint.as_dict()
        rows += [("streamsense (hinted)", product), ("same player, no hint", no_hint)]
        mpc = family_out["anchors"]["robust_mpc"]
        goal = {
            "qoe_mean_ratio": ratio(product.qoe_mean, mpc["qoe_mean"]),
            "qoe_median_ratio": ratio(product.qoe_median, mpc["qoe_median"]),
            "early_stalls": product.early_stalls,
            "robust_mpc_early_stalls": mpc["early_stalls"],
        }
        goal["met"] = (
            goal["qoe_mean_ratio"] >= GOAL_RATIO
            and goal["qoe_median_ratio"] >= GOAL_RATIO
            and product.early_stalls <= mpc["early_stalls"] / 2
        )
        family_out["goal"] = goal
        results[family] = family_out
        print_table(
            f"ABR {family}: {len(split.evaluation)} evaluation traces "
            f"({len(split.dead_evaluation)} dead left out); segment {segment_for(family).key('rnd')}",
            [
                "player",
                "QoE mean",
                "QoE median",
                "rebuffer s",
                "startup s",
                "stalls<10s",
                "kbps",
                "switches",
            ],
            [
                (
                    name,
                    s.qoe_mean,
                    s.qoe_median,
                    s.rebuffer_s,
                    s.startup_s,
                    s.early_stalls,
                    round(s.bitrate_kbps),
                    s.switches,
                )
                for name, s in rows
            ],
        )
        summary_rows.append(
            (
                family,
                f"{goal['qoe_mean_ratio']:.3f}",
                f"{goal['qoe_median_ratio']:.3f}",
                f"{product.early_stalls} / {mpc['early_stalls']}",
                "met" if goal["met"] else "missed",
            )
        )

    print_table(
        "Calibration: robustMPC, no startup term, evaluation half (reference in brackets)",
        ["family", "mean, all traces", "median, all", "mean, dead left out", "median"],
        [
            (
                f,
                f"{c['all_traces']['mean']:.1f} [{c['reference_mean']:.0f}]",
                f"{c['all_traces']['median']:.1f}"
                + (f" [{c['reference_median']:.0f}]" if c["reference_median"] is not None else ""),
                f"{c['alive_traces']['mean']:.1f}",
                f"{c['alive_traces']['median']:.1f}",
            )
            for f, c in results["calibration"].items()
        ],
    )
    print_table(
        "Goal: >= 1.05x robustMPC's mean and median QoE, <= half its stalls in the first 10 s",
        ["family", "mean ratio", "median ratio", "early stalls (product / robustMPC)", "goal"],
        summary_rows,
    )
    print_table(
        "qoe_hints handler path on the training telemetry, by Kinesis batch size",
        ["batch size", "events/s", "DynamoDB requests per 1,000 events"],
        [
            (b["batch_size"], round(b["events_per_s"]), round(b["aws_requests_per_1000_events"], 1))
            for b in telemetry["by_batch_size"]
        ],
    )
    delivery = abr_delivery.measure(**DELIVERY_RUN)
    results["delivery"] = delivery
    abr_delivery.print_report(delivery)
    print(
        f"telemetry: {telemetry['events']} events from {telemetry['sessions']} training sessions, "
        f"{telemetry['events_per_s']:.0f} events/s through the handler path, "
        f"{telemetry['aws_requests_per_1000_events']:.1f} DynamoDB requests per 1,000 events"
    )
    return results
