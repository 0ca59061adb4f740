"""A function's container: ``python -m streamsense_local.worker`` runs in its own process with only
that function's environment, imports ``handler`` once from the function's folder (module-scope
init, like a Lambda cold start), then serves invocations from the runtime over a pipe until the
runtime closes it.

Protocol (length-prefixed JSON on two inherited pipe fds): the worker first sends
``{"op": "ready", "init_ms", "stdout", "error"}``; each request ``{"event", "request_id",
"deadline_ms", ...}`` gets ``{"ok", "result" | "error", "duration_ms", "stdout", "max_rss_kb"}``.
Everything the function writes to stdout/stderr (Powertools JSON logs, EMF metrics) goes to the
function's log file and is also returned with the invocation it belongs to.
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import os
import resource
import struct
import sys
import time
import traceback
from typing import Any

_HEADER = struct.Struct(">I")


def send(fd: int, message: dict[str, Any]) -> None:
    body = json.dumps(message, separators=(",", ":")).encode()
    data = _HEADER.pack(len(body)) + body
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _read_exact(fd: int, n: int) -> bytes | None:
    chunks = []
    while n:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def receive(fd: int) -> dict[str, Any] | None:
    header = _read_exact(fd, _HEADER.size)
    if header is None:
        return None
    body = _read_exact(fd, _HEADER.unpack(header)[0])
    return None if body is None else json.loads(body)  # type: ignore[no-any-return]


class _Tee(io.TextIOBase):
    """Writes through to the real stream (the log file) and keeps a copy for the invocation."""

    def __init__(self, real: Any, sink: list[str]) -> None:
        self._real = real
        self._sink = sink

    def write(self, s: str) -> int:
        self._real.write(s)
        self._sink.append(s)
        return len(s)

    def flush(self) -> None:
        self._real.flush()

    def fileno(self) -> int:
        return int(self._real.fileno())

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return str(getattr(self._real, "encoding", "utf-8"))


class LambdaContext:
    """The context object Lambda's Python runtime passes to the handler."""

    def __init__(self, request: dict[str, Any]) -> None:
        self.function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.invoked_function_arn = request["invoked_function_arn"]
        self.memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        self.aws_request_id = request["request_id"]
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = None
        self.tenant_id = None
        self._deadline_ms = int(request["deadline_ms"])

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


def _error(exc: BaseException, error_type: str | None = None) -> dict[str, Any]:
    return {
        "errorMessage": str(exc),
        "errorType": error_type or type(exc).__name__,
        "stackTrace": traceback.format_tb(exc.__traceback__),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--code", required=True, help="the function's folder (Lambda's task root)")
    parser.add_argument("--policy", required=True, help="JSON file with the IAM statements to enforce")
    parser.add_argument("--in-fd", type=int, required=True)
    parser.add_argument("--out-fd", type=int, required=True)
    parser.add_argument("--parent", type=int, required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--region", required=True)
    parser.add_argument("--account", required=True)
    parser.add_argument("--profile", default=None, help="write cProfile stats of the handler calls here on exit")
    args = parser.parse_args(argv)

    from streamsense_local.server import die_with_parent

    die_with_parent(args.parent)
    started = time.perf_counter()
    captured: list[str] = []
    sys.stdout = _Tee(sys.stdout, captured)
    sys.stderr = _Tee(sys.stderr, captured)

    from streamsense_local import iam
    from streamsense_local.naming import Naming

    with open(args.policy) as f:
        policy = iam.Policy(json.load(f))
    naming = Naming(args.prefix, args.region, args.account)
    function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
    role = f"{function_name}-role"
    principal = f"arn:aws:sts::{args.account}:assumed-role/{role}/{function_name}"
    iam.install(policy, naming, principal)
    runtime_ms = (time.perf_counter() - started) * 1000

    sys.path.insert(0, args.code)
    os.chdir(args.code)
    init_started = time.perf_counter()
    handler: Any = None
    init_error: dict[str, Any] | None = None
    try:
        module = importlib.import_module("handler")
        handler = getattr(module, "lambda_handler", None)
        if handler is None:
            init_error = {
                "errorMessage": "Handler 'lambda_handler' missing on module 'handler'",
                "errorType": "Runtime.HandlerNotFound",
                "stackTrace": [],
            }
    except (ImportError, SyntaxError) as exc:
        init_error = _error(exc, "Runtime.ImportModuleError")
        init_error["errorMessage"] = f"Unable to import module 'handler': {exc}"
    except Exception as exc:
        init_error = _error(exc)
    if init_error:
        print(f"[ERROR] {init_error['errorType']}: {init_error['errorMessage']}", file=sys.stderr)
    init_ms = (time.perf_counter() - init_started) * 1000
    sys.stdout.flush()
    sys.stderr.flush()
    send(args.out_fd, {"op": "ready", "init_ms": init_ms, "runtime_ms": runtime_ms, "stdout": "".join(captured), "error": init_error})
    if init_error:
        return
    captured.clear()

    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
    while True:
        request = receive(args.in_fd)
        if request is None:
            if profiler is not None:
                profiler.dump_stats(args.profile)
            return  # the runtime closed the pipe: the container is retired
        context = LambdaContext(request)
        t0 = time.perf_counter()
        message: dict[str, Any]
        try:
            if profiler is not None:
                profiler.enable()
            try:
                result = handler(request["event"], context)
            finally:
                if profiler is not None:
                    profiler.disable()
            try:
                json.dumps(result)
                message = {"ok": True, "result": result}
            except (TypeError, ValueError) as exc:
                message = {"ok": False, "error": _error(exc, "Runtime.MarshalError")}
        except Exception as exc:
            err = _error(exc)
            # Lambda logs an unhandled error as [ERROR] line plus the traceback.
            print(f"[ERROR] {err['errorType']}: {err['errorMessage']}\n{''.join(err['stackTrace'])}", file=sys.stderr)
            message = {"ok": False, "error": err}
        sys.stdout.flush()
        sys.stderr.flush()
        message["duration_ms"] = (time.perf_counter() - t0) * 1000
        message["stdout"] = "".join(captured)
        message["max_rss_kb"] = _peak_rss_kb()
        captured.clear()
        send(args.out_fd, message)


def _peak_rss_kb() -> int:
    """This container's peak resident memory ("Max Memory Used"). VmHWM is the high-water mark of
    this process's own address space; ru_maxrss would also carry the spawning runtime's peak
    across exec, which is not the function's."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


if __name__ == "__main__":
    main()
