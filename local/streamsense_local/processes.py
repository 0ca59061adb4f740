"""The runtime's side of a function container: spawn the worker with exactly the function's
environment, send it invocations, enforce the timeout (a timed-out container is killed and the
next invocation cold-starts a new one, as in Lambda), and read each invocation's logs and EMF
metrics."""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamsense_local.clock import iso_millis
from streamsense_local.naming import Naming
from streamsense_local.worker import _HEADER

#: Room for the pipe round trip on top of the function's own timeout.
_TIMEOUT_SLACK_S = 1.0


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    code_dir: Path
    env: Mapping[str, str]  # everything the process sees
    configured_env: Mapping[str, str]  # what the deployment configures (describe() reports these)
    policy: list[dict[str, Any]]
    timeout_s: int
    memory_mb: int


@dataclass
class Invocation:
    function: str
    request_id: str
    ok: bool
    response: Any
    error: dict[str, Any] | None
    duration_ms: float
    cold: bool
    init_ms: float | None
    logs: str
    metrics: dict[str, float] = field(default_factory=dict)
    max_memory_mb: float = 0.0

    @property
    def error_type(self) -> str | None:
        return None if self.error is None else str(self.error.get("errorType"))


def emf_metrics(logs: str) -> dict[str, float]:
    """Sum the CloudWatch EMF metrics printed during an invocation (Powertools Metrics)."""
    totals: dict[str, float] = {}
    for line in logs.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        try:
            blob = json.loads(line)
        except json.JSONDecodeError:
            continue
        for directive in blob.get("_aws", {}).get("CloudWatchMetrics", []):
            for metric in directive.get("Metrics", []):
                name = metric.get("Name")
                value = blob.get(name)
                if isinstance(value, list):
                    total = float(sum(v for v in value if isinstance(v, int | float)))
                elif isinstance(value, int | float):
                    total = float(value)
                else:
                    continue
                totals[name] = totals.get(name, 0.0) + total
    return totals


class WorkerDied(RuntimeError):
    pass


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a live process has used so far (Linux /proc; 0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class FunctionProcess:
    """One warm container of one function. Invocations are serialized (a container runs one at
    a time); the process is started on first use and replaced after a timeout or crash."""

    def __init__(self, spec: FunctionSpec, naming: Naming, workdir: Path) -> None:
        self.spec = spec
        self.naming = naming
        self.workdir = workdir
        self.log_path = workdir / "logs" / f"{spec.name}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.policy_path = workdir / "policies" / f"{spec.name}.json"
        self.policy_path.parent.mkdir(parents=True, exist_ok=True)
        self.policy_path.write_text(json.dumps(spec.policy, indent=2))
        self._lock = threading.RLock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._to_worker: int | None = None
        self._from_worker: int | None = None
        self._pending_init: tuple[float | None, str] | None = None
        self._init_error: dict[str, Any] | None = None
        self.cold_starts = 0
        self.init_ms: list[float] = []
        self.spawn_ms: list[float] = []
        self._retired_cpu_s = 0.0  # CPU of containers already replaced (timeouts, crashes)

    # ---- process lifecycle ------------------------------------------------------------------

    def _log(self, line: str) -> None:
        with open(self.log_path, "a") as f:
            f.write(line + "\n")

    def start(self) -> None:
        with self._lock:
            if self._proc is not None:
                return
            if not (self.spec.code_dir / "handler.py").is_file():
                # What Lambda answers when the deployment package has no handler module.
                self._pending_init = (None, "")
                self._init_error = {
                    "errorMessage": f"Unable to import module 'handler': No module named 'handler' (no {self.spec.code_dir}/handler.py)",
                    "errorType": "Runtime.ImportModuleError",
                    "stackTrace": [],
                }
                return
            t0 = time.perf_counter()
            req_r, req_w = os.pipe()
            resp_r, resp_w = os.pipe()
            log = open(self.log_path, "ab")  # noqa: SIM115
            # STREAMSENSE_PROFILE_DIR (the runtime's environment, not the function's): each
            # container writes cProfile stats of its handler calls to <dir>/<function>-<n>.prof.
            profile_dir = os.environ.get("STREAMSENSE_PROFILE_DIR")
            profile = [] if not profile_dir else [
                "--profile", str(Path(profile_dir).resolve() / f"{self.spec.name}-{self.cold_starts + 1}.prof")
            ]
            try:
                self._proc = subprocess.Popen(
                    [
                        sys.executable, "-m", "streamsense_local.worker",
                        "--code", str(self.spec.code_dir),
                        "--policy", str(self.policy_path),
                        "--in-fd", str(req_r), "--out-fd", str(resp_w),
                        "--parent", str(os.getpid()),
                        "--prefix", self.naming.prefix,
                        "--region", self.naming.region,
                        "--account", self.naming.account,
                        *profile,
                    ],
                    env=dict(self.spec.env),
                    cwd=str(self.spec.code_dir),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    pass_fds=(req_r, resp_w),
                )
            finally:
                log.close()
                os.close(req_r)
                os.close(resp_w)
            self._to_worker, self._from_worker = req_w, resp_r
            ready = self._receive(deadline=time.monotonic() + max(60.0, self.spec.timeout_s))
            self.cold_starts += 1
            self.init_ms.append(float(ready["init_ms"]))
            self.spawn_ms.append((time.perf_counter() - t0) * 1000)
            self._pending_init = (float(ready["init_ms"]), str(ready.get("stdout", "")))
            self._init_error = ready.get("error")

    def stop(self) -> None:
        with self._lock:
            self._close(kill=False)

    def cpu_s(self) -> float:
        """CPU seconds used by this function's containers so far (init included)."""
        proc = self._proc
        return self._retired_cpu_s + (process_cpu_s(proc.pid) if proc is not None else 0.0)

    def _close(self, kill: bool) -> None:
        for fd in (self._to_worker, self._from_worker):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._to_worker = self._from_worker = None
        proc, self._proc = self._proc, None
        if proc is None:
            return
        self._retired_cpu_s += process_cpu_s(proc.pid)
        if kill:
            proc.kill()
        try:
            # Closing the pipe ends the worker's loop; a handler's leftover non-daemon threads
            # could keep the interpreter alive, and Lambda does not wait for them either.
            proc.wait(timeout=30 if os.environ.get("STREAMSENSE_PROFILE_DIR") else 1)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    # ---- pipe I/O -----------------------------------------------------------------------------

    def _send(self, message: dict[str, Any]) -> None:
        assert self._to_worker is not None
        body = json.dumps(message, separators=(",", ":")).encode()
        view = memoryview(_HEADER.pack(len(body)) + body)
        try:
            while view:
                view = view[os.write(self._to_worker, view) :]
        except BrokenPipeError as exc:
            raise WorkerDied("the container exited") from exc

    def _read_exact(self, n: int, deadline: float) -> bytes:
        assert self._from_worker is not None
        chunks: list[bytes] = []
        while n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            readable, _, _ = select.select([self._from_worker], [], [], remaining)
            if not readable:
                raise TimeoutError
            chunk = os.read(self._from_worker, min(n, 1 << 20))
            if not chunk:
                raise WorkerDied("the container exited")
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def _receive(self, deadline: float) -> dict[str, Any]:
        header = self._read_exact(_HEADER.size, deadline)
        return json.loads(self._read_exact(_HEADER.unpack(header)[0], deadline))  # type: ignore[no-any-return]

    # ---- invoke -------------------------------------------------------------------------------

    def invoke(self, event: Any, request_id: str | None = None) -> Invocation:
        with self._lock:
            request_id = request_id or str(uuid.uuid4())
            if self._proc is None and self._pending_init is None:
                self.start()
            cold = self._pending_init is not None  # first invoke of this container
            init_ms, init_logs = self._pending_init if self._pending_init else (None, "")
            self._pending_init = None
            if self._init_error is not None:
                # Lambda retries init on the next invoke in a fresh sandbox.
                error = self._init_error
                self._init_error = None
                self._close(kill=True)
                self._log(f"INIT_REPORT Init Duration: {init_ms or 0:.2f} ms Phase: init Status: error Error Type: {error['errorType']}")
                return Invocation(self.spec.name, request_id, False, None, error, 0.0, cold, init_ms, init_logs)
            self._log(f"START RequestId: {request_id} Version: $LATEST")
            t0 = time.monotonic()
            deadline_ms = int((time.time() + self.spec.timeout_s) * 1000)
            try:
                self._send(
                    {
                        "event": event,
                        "request_id": request_id,
                        "deadline_ms": deadline_ms,
                        "invoked_function_arn": self.naming.function_arn(self.spec.name),
                    }
                )
                reply = self._receive(deadline=t0 + self.spec.timeout_s + _TIMEOUT_SLACK_S)
            except TimeoutError:
                self._close(kill=True)
                message = f"{iso_millis(time.time())} {request_id} Task timed out after {self.spec.timeout_s:.2f} seconds"
                self._log(message)
                error = {"errorMessage": message, "errorType": "Sandbox.Timedout", "stackTrace": []}
                duration = (time.monotonic() - t0) * 1000
                return Invocation(self.spec.name, request_id, False, None, error, duration, cold, init_ms, init_logs)
            except WorkerDied:
                code = self._proc.poll() if self._proc else None
                self._close(kill=True)
                error = {
                    "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: exit status {code}",
                    "errorType": "Runtime.ExitError",
                    "stackTrace": [],
                }
                duration = (time.monotonic() - t0) * 1000
                return Invocation(self.spec.name, request_id, False, None, error, duration, cold, init_ms, init_logs)
            duration = float(reply["duration_ms"])
            max_mb = float(reply.get("max_rss_kb", 0)) / 1024
            report = (
                f"REPORT RequestId: {request_id}\tDuration: {duration:.2f} ms\tBilled Duration: {int(duration) + 1} ms\t"
                f"Memory Size: {self.spec.memory_mb} MB\tMax Memory Used: {max_mb:.0f} MB"
            )
            if cold and init_ms is not None:
                report += f"\tInit Duration: {init_ms:.2f} ms"
            self._log(f"END RequestId: {request_id}\n{report}")
            logs = init_logs + str(reply.get("stdout", ""))
            return Invocation(
                function=self.spec.name,
                request_id=request_id,
                ok=bool(reply["ok"]),
                response=reply.get("result"),
                error=reply.get("error"),
                duration_ms=duration,
                cold=cold,
                init_ms=init_ms,
                logs=logs,
                metrics=emf_metrics(logs),
                max_memory_mb=max_mb,
            )
