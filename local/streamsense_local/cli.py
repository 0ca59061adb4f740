"""``python -m streamsense_local`` (also the ``streamsense`` console script):

    invoke FUNCTION --event events/FUNCTION/FILE.json   one invoke on a fresh stack, with effects
    up                                                 the stack on a port until Ctrl-C
    replay FILE.jsonl | --s3 BUCKET/KEY FILE           push data through the mappings, with a summary
    tick FUNCTION                                      fire a function's schedule
    run [--quick]                                      the main job: real data through the stack, report (make run)
    query KIND ID                                      read the last run's state (member, account, site, segment...)
    samples                                            replay every sample event, with a summary
    describe                                           the provisioned stack, normalized
    perf                                               delivery throughput and init times
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from streamsense_local.stack import LocalStack


def _json_default(value: Any) -> Any:
    # binary attributes as the AWS CLI prints them (base64), not as Python reprs
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    return str(value)


def _dump(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=_json_default)


def print_table(rows: Sequence[dict[str, Any]], out: Any = None) -> None:
    out = out or sys.stdout
    if not rows:
        return
    cols = list(rows[0])
    cells = [[("-" if r[c] is None else str(r[c])) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)), file=out)
    for row in cells:
        print("  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(row, widths, strict=True))), file=out)


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (0 < value < float("inf")):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _start(args: argparse.Namespace, **kwargs: Any) -> LocalStack:
    return LocalStack.start(
        functions_dir=getattr(args, "functions_dir", None),
        server_mode=getattr(args, "server_mode", "process"),
        log_level=getattr(args, "log_level", "INFO"),
        workdir=getattr(args, "workdir", None),
        **kwargs,
    )


def _report(stack: LocalStack) -> None:
    print()
    print_table([r for r in stack.summary_rows() if r["invocations"] or r["to_on_failure"]])
    reasons = Counter(json.loads(b).get("reason", "?") for b in stack.receive_all("quarantine", delete=False)) if any(
        q.name == "quarantine" for q in stack.system.queues
    ) else Counter()
    failures = stack.receive_all("failures", delete=False) if any(q.name == "failures" for q in stack.system.queues) else []
    print(f"\nquarantined by reason: {dict(sorted(reasons.items())) or 'none'}")
    print(f"on-failure destination (failures queue): {len(failures)} message(s)")
    missing = [fn.name for fn in stack.system.functions if not (stack.functions_dir / fn.name / "handler.py").is_file()]
    if missing:
        print(f"functions without a handler yet (every invoke fails with Runtime.ImportModuleError): {', '.join(missing)}")
    if not stack.owns_workdir:
        print(f"function logs: {stack.workdir / 'logs'}")
    else:
        print("function logs: removed with the stack's temporary folder (pass --workdir DIR to keep them)")


# what the functions use as ids (ml-414, acc-0000190-p2, c297, edge-us, 122912): one token
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")


def _usage(message: str) -> int:
    """A command-line mistake: the message on stderr, exit 2 (as argparse does)."""
    print(f"streamsense: error: {message}", file=sys.stderr)
    return 2


# ---- commands -----------------------------------------------------------------------------


def cmd_invoke(args: argparse.Namespace) -> int:
    from infra.system import SYSTEM
    from streamsense_local.samples import Sample, run_sample, shape_error

    path = Path(args.event)
    SYSTEM.function(args.function)  # KeyError (exit 2) before a stack starts
    if path.is_dir():
        return _usage(f"{path} is a folder, not an event file")
    try:
        payload = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return _usage(f"{path} is not a JSON event ({exc})")
    problem = shape_error(args.function, payload)
    if problem:
        return _usage(problem)
    with _start(args) as stack:
        result = run_sample(stack, Sample(args.function, path))
        inv = result.invocation
        print(f"# {args.function} <- {path}  ({'cold' if inv.cold else 'warm'}, init {inv.init_ms or 0:.0f} ms, duration {inv.duration_ms:.1f} ms)")
        if inv.ok:
            print("## response")
            print(_dump(inv.response))
        else:
            print("## error")
            print(_dump(inv.error))
        if inv.metrics:
            print("## metrics")
            print(_dump(inv.metrics))
        print("## changes")
        print(_dump(result.changes.as_dict()))
        if args.logs:
            print("## logs")
            print(inv.logs, end="")
        return 0 if inv.ok else 1


def _stdin_commands(stack: LocalStack, stop: threading.Event) -> None:
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        try:
            if words[0] == "tick" and len(words) == 2:
                print(f"tick {words[1]}: request {stack.tick(words[1])}", flush=True)
            elif words[0] == "stats":
                print_table(stack.summary_rows())
            elif words[0] in ("quit", "exit"):
                stop.set()
                return
            else:
                print("commands: tick FUNCTION | stats | quit", flush=True)
        except (KeyError, ValueError) as exc:
            print(f"error: {exc}", flush=True)


def cmd_up(args: argparse.Namespace) -> int:
    with _start(args, duplicate_s3_notifications=args.duplicate_s3) as stack:
        # before anything is printed: whoever reads the endpoint may press Ctrl-C at once
        stop = threading.Event()
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        print(f"streamsense local stack on {stack.endpoint}")
        print("# for boto3 and the aws CLI:")
        for k, v in stack.env_exports().items():
            print(f"export {k}={v}")
        print("# resources:")
        for s in stack.system.streams:
            print(f"  stream  {s.name:<20} {stack.physical('stream', s.name)} ({s.shards} shard(s))")
        for t in stack.system.tables:
            print(f"  table   {t.name:<20} {stack.physical('table', t.name)}")
        for b in stack.system.buckets:
            print(f"  bucket  {b.name:<20} {stack.physical('bucket', b.name)}")
        for q in stack.system.queues:
            print(f"  queue   {q.name:<20} {stack.queue_url(q.name)}")
        for fn, _, trigger in stack.schedules:
            print(f"  schedule {fn.name}: {trigger.expression} (type 'tick {fn.name}' to fire now)")
        print(f"function logs: {stack.workdir / 'logs'}", flush=True)
        threading.Thread(target=_stdin_commands, args=(stack, stop), daemon=True).start()
        printed = 0

        def show() -> None:
            nonlocal printed
            with stack._lock:
                new = stack.history[printed:]
                printed = len(stack.history)
            for h in new:
                status = "ok" if h.ok else f"ERROR {h.error_type}"
                failures = len((h.response or {}).get("batchItemFailures", [])) if isinstance(h.response, dict) else 0
                extra = f", {failures} item failure(s)" if failures else ""
                print(f"{time.strftime('%H:%M:%S')} {h.function} <- {h.source}: {len(h.ids)} record(s) {status}{extra} ({h.duration_ms:.0f} ms)", flush=True)

        stack.run_forever(stop, on_progress=show)
        show()
        _report(stack)
    return 0


def _consumers(stack: LocalStack, stream: str) -> int:
    return sum(1 for m in stack.kinesis_mappings if m.trigger.stream == stream)


def _finished(stack: LocalStack) -> int:
    return sum(m.counters.records_delivered + m.counters.records_to_destination for m in stack.kinesis_mappings) + sum(
        q.counters.records_delivered + q.counters.records_to_destination for q in stack.async_queues.values()
    )


def _drain_with_progress(stack: LocalStack, total: int | None, timeout_s: float) -> float:
    from tqdm import tqdm

    started = time.perf_counter()
    # disable=None: no bar when stdout is not a terminal (CI logs), the summary follows anyway.
    with tqdm(total=total, unit="rec", desc="delivered", dynamic_ncols=True, mininterval=0.5, disable=None) as bar:

        def update() -> None:
            bar.n = _finished(stack)
            bar.refresh()

        stack.drain(timeout_s=timeout_s, on_progress=update)
        update()
    return time.perf_counter() - started


def cmd_replay(args: argparse.Namespace) -> int:
    from infra.system import SYSTEM, S3Trigger

    streams = sorted(s.name for s in SYSTEM.streams)
    buckets = sorted(b.name for b in SYSTEM.buckets)
    if args.stream and args.stream not in streams:
        return _usage(f"unknown stream {args.stream!r}: choose from {', '.join(streams)}")
    if args.s3 is not None:
        bucket, _, key = args.s3.partition("/")
        if bucket not in buckets:
            return _usage(f"unknown bucket {bucket!r} (logical name): choose from {', '.join(buckets)}")
        if not key or key.endswith("/"):
            return _usage(f"--s3 takes BUCKET/KEY with a key that names an object (e.g. exports/viewing-history/day.csv), not {args.s3!r}")
        if not any(isinstance(t, S3Trigger) and t.matches(bucket, key) for fn in SYSTEM.functions for t in fn.triggers):
            print(f"streamsense: note: no function is triggered by s3://{bucket}/{key}: the object is stored, "
                  "nothing is invoked (see the S3 triggers in infra/system.py)", file=sys.stderr)
    if Path(args.file).is_dir():
        return _usage(f"{args.file} is a folder, not a file")
    if not Path(args.file).is_file():
        return _usage(f"{args.file}: no such file")
    lines: list[bytes] = []
    if args.s3 is None:
        with open(args.file, "rb") as f:
            lines = [line.rstrip(b"\r\n") for line in f if line.strip()]
        if not lines:
            return _usage(f"{args.file} holds no events (every line is blank)")
    with _start(args, duplicate_s3_notifications=args.duplicate_s3, record_history=False) as stack:
        t0 = time.perf_counter()
        if args.s3 is not None:
            bucket, _, key = args.s3.partition("/")
            stack.put_object(bucket, key, Path(args.file).read_bytes())
            print(f"put s3://{stack.physical('bucket', bucket)}/{key}")
            total = None
        else:
            try:
                json.loads(lines[0])
            except ValueError:
                print(f"streamsense: note: {args.file} is not JSON lines; each line will be quarantined "
                      "(to drop a file into a bucket, use --s3 BUCKET/KEY)", file=sys.stderr)
            counts = stack.put_events(lines, stream=args.stream)
            print(f"put {len(lines)} records in {time.perf_counter() - t0:.1f} s: {counts}")
            total = sum(n * _consumers(stack, s) for s, n in counts.items())
        elapsed = _drain_with_progress(stack, total, args.timeout)
        print(f"delivered in {elapsed:.1f} s (runtime clock advanced {stack.clock.offset:.0f} s past waits)")
        _report(stack)
        return 0 if all(r["errors"] == 0 for r in stack.summary_rows()) else 2


def cmd_tick(args: argparse.Namespace) -> int:
    from infra.system import SYSTEM, ScheduleTrigger
    from streamsense_local.samples import diff, snapshot

    if not any(isinstance(t, ScheduleTrigger) for t in SYSTEM.function(args.function).triggers):
        scheduled = [f.name for f in SYSTEM.functions if any(isinstance(t, ScheduleTrigger) for t in f.triggers)]
        return _usage(f"{args.function} has no schedule trigger: tick one of {', '.join(scheduled)}")
    with _start(args) as stack:
        stack.record_events = True
        before = snapshot(stack)
        request = stack.tick(args.function)
        stack.drain()
        calls = [h for h in stack.history if h.function == args.function]
        print(f"# {args.function} <- schedule (request {request}): {len(calls)} invocation(s)")
        for h in calls:
            print(_dump({"ok": h.ok, "error": h.error_type, "response": h.response, "event": h.event}))
        print("## changes")
        print(_dump(diff(stack, before, snapshot(stack)).as_dict()))
        return 0 if calls and calls[-1].ok else 1


def cmd_job(args: argparse.Namespace) -> int:
    """The main job (make run): see streamsense_local.job.run."""
    from streamsense_local.job import snapshot
    from streamsense_local.job.run import DEFAULT_OUT, STATE_DIR, data_dir_from_env, run

    out = Path(args.out) if args.out else DEFAULT_OUT
    state = Path(args.state) if args.state else STATE_DIR
    # checked before a run of minutes, not when its results are written
    try:
        data_dir = data_dir_from_env()
    except ValueError as exc:
        return _usage(str(exc))
    if out.exists() and not out.is_dir():
        return _usage(f"--out {out} is a file, not a folder")
    try:
        snapshot.check_destination(state)
    except snapshot.SnapshotError as exc:
        return _usage(str(exc))
    for flag, folder in (("--out", out), ("--state", state)):
        problem = _unwritable(folder)
        if problem:
            return _usage(f"{flag} {folder}: {problem}")
    run(quick=args.quick, data_dir=data_dir, out=out, state_dir=state)
    return 0


def _unwritable(folder: Path) -> str | None:
    """Why files cannot be written into ``folder`` (created if missing), or None."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        return f"cannot write there ({exc.strerror or exc})"
    return None


def cmd_query(args: argparse.Namespace) -> int:
    """Restore the last run's saved state into a fresh stack and read it."""
    from streamsense_local.job import snapshot
    from streamsense_local.job.queries import READS, resolve
    from streamsense_local.job.run import STATE_DIR

    fn = resolve(args.kind)
    if fn is None:
        return _usage(f"query {args.kind!r} is not available in this build")
    if args.kind == "segment":
        from streamsense_local.job.queries.qoe import parse_segment

        if len(args.id.split("/")) != 3:
            return _usage(f"a segment is REGION/NETWORK/DEVICE (e.g. US/wifi/tv), not {args.id!r}")
        try:
            parse_segment(*args.id.split("/"))
        except ValueError as exc:
            return _usage(f"segment {args.id!r}: {exc}")
    if args.kind != "segment" and not _ID.fullmatch(args.id):
        return _usage(f"{args.kind} {args.id!r} is not an id (a letter or digit, then letters, digits and . _ : @ -, at most 128)")
    state = Path(args.state) if args.state else STATE_DIR
    if not (state / "counts.json").exists():
        return _usage(f"no saved run at {state}: run `make run` first")
    with _start(args, record_history=False) as stack:
        tables, buckets = READS[args.kind]
        try:
            snapshot.load(stack, state, tables=tables, buckets=buckets, queues=False)
        except snapshot.SnapshotError as exc:
            return _usage(str(exc))
        # a segment is REGION/NETWORK/DEVICE; every other id is one value
        parts = args.id.split("/") if args.kind == "segment" else [args.id]
        try:
            answer = fn(stack, *parts)
        except (KeyError, TypeError, AttributeError, IndexError) as exc:
            # items that restored but are not what the functions write: a hand-edited state
            return _usage(f"the saved run at {state} may be damaged ({type(exc).__name__}: {str(exc)[:200]}); run `make run` again")
        print(_dump(answer))
    # like grep: 1 when the id is well formed but the run has nothing for it (the answer still
    # says what a new member, title or segment would get), 2 for a malformed or unknown kind
    return 0 if answer.get("found", True) else 1


def cmd_samples(args: argparse.Namespace) -> int:
    """Every sample event through the whole stack: Kinesis samples' records into their streams
    (every mapping on the stream sees them), SQS bodies into their queues, S3 samples' setup
    objects into their buckets (the notification does the rest), schedules ticked."""
    from infra.system import KinesisTrigger, ScheduleTrigger, SqsTrigger
    from streamsense_local.samples import discover, kinesis_payloads, source_kind

    samples = discover(Path(args.events))
    if not samples:
        print(f"streamsense: no sample events under {args.events}", file=sys.stderr)
        return 1
    with _start(args, record_history=False) as stack:
        put: Counter[str] = Counter()
        for sample in samples:
            try:
                fn = stack.system.function(sample.function)
            except KeyError:
                print(f"skip {sample.path}: no function {sample.function!r} in the system")
                continue
            event = sample.event()
            kind = source_kind(event)
            if kind == "kinesis":
                stream = next(t.stream for t in fn.triggers if isinstance(t, KinesisTrigger))
                stack.put_records(stream, kinesis_payloads(event))
                put[f"kinesis:{stream}"] += len(event["Records"])
            elif kind == "sqs":
                queue = next(t.queue for t in fn.triggers if isinstance(t, SqsTrigger))
                stack.send_messages(queue, [r["body"] for r in event["Records"]])
                put[f"sqs:{queue}"] += len(event["Records"])
            elif kind == "s3":
                root = sample.setup_dir / "buckets"
                for path in sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []:
                    rel = path.relative_to(root).parts
                    stack.put_object(rel[0], "/".join(rel[1:]), path.read_bytes())
                    put[f"s3:{rel[0]}"] += 1
            elif kind == "schedule" and any(isinstance(t, ScheduleTrigger) for t in fn.triggers):
                stack.tick(fn.name)
                put["schedule"] += 1
        print(f"replaying {len(samples)} sample files: {dict(put)}")
        total = sum(n * _consumers(stack, k.split(":", 1)[1]) for k, n in put.items() if k.startswith("kinesis:")) or None
        elapsed = _drain_with_progress(stack, total, args.timeout)
        print(f"delivered in {elapsed:.1f} s")
        _report(stack)
        return 0


def cmd_describe(args: argparse.Namespace) -> int:
    with _start(args) as stack:
        print(_dump(stack.describe()))
    return 0


def cmd_perf(args: argparse.Namespace) -> int:
    from streamsense_local import perf

    return perf.main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamsense", description="streamsense's local AWS runtime (moto + Lambda semantics)")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--functions-dir", default=None, help="folder of <function>/handler.py (default: functions/)")
    common.add_argument("--server-mode", choices=("process", "thread"), default="process", help="moto in its own process (default) or a thread")
    common.add_argument("--log-level", default="INFO", help="POWERTOOLS_LOG_LEVEL for the functions")
    common.add_argument("--workdir", default=None, help="keep logs and policies here (default: a temporary folder)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("invoke", parents=[common], help="invoke a function once with a sample event (fresh stack)")
    p.add_argument("function")
    p.add_argument("--event", "-e", required=True, help="events/<function>/<scenario>.json")
    p.add_argument("--logs", action="store_true", help="also print the function's log output")
    p.set_defaults(func=cmd_invoke)

    p = sub.add_parser("up", parents=[common], help="run the local stack until Ctrl-C")
    p.add_argument("--duplicate-s3", action="store_true", help="deliver every S3 notification twice")
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("replay", parents=[common], help="push a JSON-lines file through Kinesis (or a file through S3)")
    p.add_argument("file")
    p.add_argument("--s3", metavar="BUCKET/KEY", help="drop FILE into this bucket (logical name) and key instead")
    p.add_argument("--stream", help="put every line into this stream instead of routing by event type")
    p.add_argument("--duplicate-s3", action="store_true", help="deliver every S3 notification twice")
    p.add_argument("--timeout", type=positive_float, default=3600.0, help="give up after this many seconds")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("tick", parents=[common], help="fire a function's schedule now (fresh stack)")
    p.add_argument("function")
    p.set_defaults(func=cmd_tick)

    p = sub.add_parser("run", help="the main job: replay real data (or the simulator) through the stack and report")
    p.add_argument("--quick", action="store_true", help="a one-day, small-scale version of about 2 minutes (the end-to-end test)")
    p.add_argument("--out", default=None, help="report folder (default: reports/latest)")
    p.add_argument("--state", default=None, help="where to save the stack's state for `query --state` (default: .streamsense/last-run)")
    p.set_defaults(func=cmd_job)

    from streamsense_local.job.queries import QUERIES

    p = sub.add_parser("query", parents=[common], help="read what the last run wrote: " + ", ".join(QUERIES),
                       epilog="exit status: 0 found; 1 nothing for this id in the run (the JSON says what a "
                              "newcomer would get); 2 a malformed id or an unknown site, network or device")
    p.add_argument("kind", choices=sorted(QUERIES), help="; ".join(f"{k}: {v[2]}" for k, v in QUERIES.items()))
    p.add_argument("id")
    p.add_argument("--state", default=None, help="saved run state (default: .streamsense/last-run)")
    p.set_defaults(func=cmd_query)

    p = sub.add_parser("samples", parents=[common], help="replay every sample event through the stack, with a summary")
    p.add_argument("--events", default=str(Path(__file__).resolve().parents[2] / "events"))
    p.add_argument("--timeout", type=positive_float, default=900.0, help="give up after this many seconds")
    p.set_defaults(func=cmd_samples)

    p = sub.add_parser("describe", parents=[common], help="print the provisioned stack (normalized)")
    p.set_defaults(func=cmd_describe)

    from streamsense_local import perf

    p = sub.add_parser("perf", help="records/s through Kinesis to a no-op handler; container init times")
    perf.add_arguments(p)
    p.set_defaults(func=cmd_perf)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    from streamsense_local.stack import DrainTimeout

    args = build_parser().parse_args(argv)
    workdir = getattr(args, "workdir", None)
    if workdir and Path(workdir).exists() and not Path(workdir).is_dir():
        sys.exit(_usage(f"--workdir {workdir} is a file, not a folder"))
    try:
        code = args.func(args)
    except KeyboardInterrupt:
        # the stack has been stopped on the way out (its context managers); what was written stays
        print("streamsense: interrupted", file=sys.stderr)
        code = 130
    except DrainTimeout as exc:
        # the records are still in the stream (a stack that stops loses them): say so, not a traceback
        print(f"streamsense: error: not everything was delivered within --timeout: {exc}", file=sys.stderr)
        code = 1
    except (KeyError, FileNotFoundError, IsADirectoryError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        # bad input from the command line (unknown function, missing or non-JSON event file):
        # a clear message, not a traceback
        detail = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"streamsense: error: {detail}", file=sys.stderr)
        code = 2
    except (ValueError, TypeError) as exc:
        if args.command != "query":
            raise
        print(f"streamsense: error: {args.kind} {args.id!r}: {exc}", file=sys.stderr)
        code = 2
    sys.exit(code)


if __name__ == "__main__":
    main()
