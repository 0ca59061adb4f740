"""The platform's own figures: what each function received, applied, quarantined and retried
(from the EMF metrics the functions printed, as CloudWatch would count them), why records were
quarantined (from the quarantine queue), and throughput per function."""

from __future__ import annotations

import json
from collections import Counter

from streamsense_local.job.sections import JobContext, Section, Table


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
        "per_function": {
            r["function"]: {k: r[k] for k in ("records_in", "applied", "skipped", "quarantined", "retried", "to_on_failure", "errors")}
            for r in rows
        },
    }
    return section
