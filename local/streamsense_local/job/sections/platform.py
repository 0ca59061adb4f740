"""The platform's own figures: what each function received, applied, quarantined and retried
(from the EMF metrics the functions printed, as CloudWatch would count them), why records were
quarantined (from the quarantine queue), and throughput per function."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from streamsense_local.job.sections import JobContext, Section, Table


def _sizing(ctx: JobContext, rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per invoked function: the memory and timeout the system declares next to what the run
    measured (peak RSS of its containers, longest invocation), and the share used of each."""
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        if not r["invocations"]:
            continue
        fn = ctx.stack.system.function(r["function"])
        max_s = round((r["max_ms"] or 0.0) / 1000, 2)
        out[fn.name] = {
            "memory_mb": fn.memory_mb, "peak_rss_mb": r["max_memory_mb"],
            "memory_used": round(r["max_memory_mb"] / fn.memory_mb, 3),
            "timeout_s": fn.timeout_s, "max_invocation_s": max_s, "timeout_used": round(max_s / fn.timeout_s, 3),
        }
    return out


def collect(ctx: JobContext) -> Section:
    rows = ctx.stack.summary_rows()
    section = Section("Functions: events applied, quarantined, retried")
    header = ["function", "invocations", "records in", "applied", "skipped", "quarantined", "retried",
              "to on-failure", "errors", "cold starts", "init ms", "p50 ms", "records/s"]
    table_rows = []
    for r in rows:
        busy_s = sum(ctx.stack.stats[r["function"]].duration_ms) / 1000
        rate = r["records_in"] / busy_s if busy_s > 0 else 0.0
        table_rows.append([r["function"], r["invocations"], r["records_in"], r["applied"], r["skipped"],
                           r["quarantined"], r["retried"], r["to_on_failure"], r["errors"], r["cold_starts"],
                           r["init_ms"], r["p50_ms"], round(rate, 1)])
    section.tables.append(Table("per function (records/s = records in / time inside the handler)", header, table_rows))
    # Wall time per phase up to this section (saving the state and the total come after it:
    # they are in report.json's timings_s and on the report's first line).
    section.tables.append(
        Table("wall time per phase so far (s)", ["phase", "seconds"],
              [[k.removesuffix("_s"), round(v, 1)] for k, v in ctx.timings.items()])
    )
    # CPU per process: what the run cost, whatever else the machine was doing meanwhile.
    cpu = ctx.stack.cpu_seconds()
    section.tables.append(
        Table("CPU seconds per process so far (containers include their cold starts)", ["process", "cpu s"],
              [[k, v] for k, v in sorted(cpu.items(), key=lambda kv: -kv[1])] + [["total", round(sum(cpu.values()), 1)]])
    )
    sizing = _sizing(ctx, rows)
    section.tables.append(
        Table("sizing: declared memory and timeout vs the run's peak RSS and longest invocation",
              ["function", "memory MB", "peak RSS MB", "memory used", "timeout s", "max invocation s", "timeout used"],
              [[f, v["memory_mb"], v["peak_rss_mb"], f"{v['memory_used']:.0%}", v["timeout_s"], f"{v['max_invocation_s']:.1f}",
                f"{v['timeout_used']:.1%}"]
               for f, v in sizing.items()])
    )
    section.notes.append(
        "peak RSS is the container process's high-water mark on this machine (Lambda bills the same "
        "process); memory also buys CPU on Lambda, so the CPU-bound scorers keep more than their RSS needs"
    )
    reasons: Counter[tuple[str, str]] = Counter()
    seen: set[str] = set()
    for body in ctx.messages("quarantine"):
        message = json.loads(body)
        if message["quarantine_id"] in seen:  # at-least-once: a retried batch may resend
            continue
        seen.add(message["quarantine_id"])
        reasons[(message["function"], message["reason"])] += 1
    section.tables.append(
        Table("quarantined records by reason (distinct)", ["function", "reason", "records"],
              [[f, r, n] for (f, r), n in sorted(reasons.items())])
    )
    failures = ctx.messages("failures")
    # A declared function whose code is not in functions/ yet fails every invocation; its records
    # end at the on-failure destination. Say which, so its errors are not mistaken for others'.
    missing = sorted(
        fn.name for fn in ctx.stack.system.functions if not (ctx.stack.functions_dir / fn.name / "handler.py").is_file()
    )
    if missing:
        section.notes.append(f"declared but not built (no functions/<name>/handler.py): {', '.join(missing)}")
    section.headline = {
        "records_in": sum(r["records_in"] for r in rows),
        "applied": sum(r["applied"] for r in rows),
        "quarantined_distinct": len(seen),
        "on_failure_messages": len(failures),
        "function_errors": sum(r["errors"] for r in rows),
        "function_errors_of_built_functions": sum(r["errors"] for r in rows if r["function"] not in missing),
        "functions_not_built": missing,
        "cpu_s": cpu,
        "sizing": sizing,
        "per_function": {
            r["function"]: {k: r[k] for k in ("records_in", "applied", "skipped", "quarantined", "retried", "to_on_failure", "errors")}
            for r in rows
        },
    }
    return section
