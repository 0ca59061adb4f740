"""moto's server on 127.0.0.1 and a free port, in its own process (default) or in a thread of
this one, with patches that keep AWS's behaviour and make it usable for the runtime:

- moto runs on the runtime's clock (clock.py): ``POST /_streamsense/clock`` sets an offset
  added to moto's ``utcnow``, so Kinesis arrival times, SQS visibility timeouts and S3 event
  times move with drain()'s skipped waits instead of disagreeing with them.

- S3 notifications carry AWS's full record (userIdentity, requestParameters, responseElements,
  bucket ownerIdentity, object versionId on versioned buckets and sequencer); moto's lacks them
  and URL-encodes the ``/`` of keys, which S3 does not.
- Kinesis GetRecords reads from the iterator's position instead of scanning the whole shard,
  and PutRecord finds the last sequence number without copying every key; moto's versions cost
  O(records in the shard) per call, which made a 100k-record replay quadratic. Sequence numbers
  are still moto's consecutive integers, so results are identical. GetRecords writes its JSON
  directly (moto stores the data base64-encoded already; its generic serializer decoded and
  re-encoded every record and was the slowest step of delivery).
- SQS message counts read the clock once per scan instead of twice per message: moto computes
  every queue attribute, counts included, on each SendMessage, so a quarantine queue holding
  thousands of messages made each send milliseconds slower (same comparisons, same results).

Run directly: ``python -m streamsense_local.server --port 0`` prints nothing but serves; the
runtime passes ``--ready-fd`` to learn the port.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

_PATCHED = False
_clock_offset_s = 0.0
CLOCK_PATH = "/_streamsense/clock"


def set_clock_offset(seconds: float) -> None:
    global _clock_offset_s
    _clock_offset_s = float(seconds)
_seq_lock = threading.Lock()
_last_sequencer = 0


def _sequencer() -> str:
    """S3's per-key ordering token: increasing hex (compared after left padding)."""
    global _last_sequencer
    with _seq_lock:
        _last_sequencer = max(_last_sequencer + 1, time.time_ns() // 1000)
        return f"{_last_sequencer:018X}"


def apply_patches() -> None:
    global _PATCHED
    if _PATCHED:
        return
    import datetime
    import hashlib

    import moto.core.utils as core_utils

    real_utcnow = core_utils.utcnow

    def utcnow() -> datetime.datetime:
        return real_utcnow() + datetime.timedelta(seconds=_clock_offset_s)

    core_utils.utcnow = utcnow  # unix_time() and the iso_8601 helpers call it by global name
    for name, module in list(sys.modules.items()):  # modules that imported it by name already
        if name.startswith("moto.") and getattr(module, "utcnow", None) is real_utcnow:
            module.utcnow = utcnow  # type: ignore[attr-defined]

    from moto.kinesis.models import Shard
    from moto.s3 import notifications

    original_event = notifications._get_s3_event

    def aws_s3_event(event_name: str, bucket: Any, key: Any, notification_id: str) -> dict[str, Any]:
        moto_record = original_event(event_name, bucket, key, notification_id)["Records"][0]
        obj: dict[str, Any] = {
            "key": quote_plus(key.name, safe="/"),
            "size": key.size,
            "eTag": key.etag.replace('"', ""),
        }
        if bucket.is_versioned and key.version_id and key.version_id != "null":
            obj["versionId"] = key.version_id
        obj["sequencer"] = _sequencer()
        request_id = hashlib.sha1(f"{bucket.name}/{key.name}/{obj['sequencer']}".encode()).hexdigest()[:16].upper()
        return {
            "Records": [
                {
                    "eventVersion": "2.1",
                    "eventSource": "aws:s3",
                    "awsRegion": moto_record["awsRegion"],
                    "eventTime": moto_record["eventTime"],
                    "eventName": moto_record["eventName"],
                    "userIdentity": {"principalId": "AWS:AIDASTREAMSENSELOCAL"},
                    "requestParameters": {"sourceIPAddress": "127.0.0.1"},
                    "responseElements": {
                        "x-amz-request-id": request_id,
                        "x-amz-id-2": hashlib.sha256(request_id.encode()).hexdigest(),
                    },
                    "s3": {
                        "s3SchemaVersion": "1.0",
                        "configurationId": notification_id,
                        "bucket": {
                            "name": bucket.name,
                            "ownerIdentity": {"principalId": "A3STREAMSENSELOCAL"},
                            "arn": bucket.arn,
                        },
                        "object": obj,
                    },
                }
            ]
        }

    notifications._get_s3_event = aws_s3_event

    def get_records(self: Any, last_sequence_id: str, limit: int | None) -> tuple[list[Any], int, int]:
        # moto numbers a shard's records 1, 2, 3, ... (put_record uses max + 1).
        records = self.records
        last = int(last_sequence_id)
        results: list[Any] = []
        if records:
            seq = max(last + 1, next(iter(records)))
            while limit is None or len(results) < limit:
                rec = records.get(seq)
                if rec is None:
                    break
                results.append(rec)
                seq += 1
        if not results:
            return results, last, 0
        newest = records[next(reversed(records))]
        behind = int((newest.created_at - results[-1].created_at) * 1000)
        return results, results[-1].sequence_number, behind

    def get_max_sequence_number(self: Any) -> int:
        return next(reversed(self.records)) if self.records else 0

    def get_min_sequence_number(self: Any) -> int:
        return next(iter(self.records)) if self.records else 0

    import json

    from moto.kinesis.responses import KinesisResponse

    def get_records_response(self: Any) -> str:
        next_iterator, records, behind = self.kinesis_backend.get_records(
            self._get_param("StreamARN"), self._get_param("ShardIterator"), self._get_param("Limit")
        )
        return json.dumps(
            {
                "NextShardIterator": next_iterator,
                "Records": [
                    {
                        "Data": r.data,
                        "PartitionKey": r.partition_key,
                        "SequenceNumber": str(r.sequence_number),
                        "ApproximateArrivalTimestamp": r.created_at,
                    }
                    for r in records
                ],
                "MillisBehindLatest": behind,
            },
            separators=(",", ":"),
        )

    from moto.sqs.models import Queue

    def drop_expired(queue: Any, now: float) -> None:
        # SQS deletes a message once it outlives the queue's retention period. moto instead
        # marks it received and stops the receive there, so one expired message (e.g. the
        # s3:TestEvent sent at provisioning, once the runtime clock has moved on by more than
        # the retention) would block its queue for good.
        keep_ms = int(queue.message_retention_period) * 1000
        expired = [m for m in queue._messages if m.sent_timestamp + keep_ms <= now]
        for m in expired:
            queue._messages.remove(m)
            queue.pending_messages.discard(m)

    def visible_messages(self: Any) -> list[Any]:
        now = core_utils.unix_time_millis()
        drop_expired(self, now)
        return [m for m in self._messages if now > m.visible_at and not now < m.delayed_until]

    def delayed_count(self: Any) -> int:
        now = core_utils.unix_time_millis()
        return sum(1 for m in self._messages if now < m.delayed_until)

    def not_visible_count(self: Any) -> int:
        now = core_utils.unix_time_millis()
        drop_expired(self, now)
        return sum(1 for m in self._messages if not now > m.visible_at)

    Queue.messages = property(visible_messages)  # type: ignore[assignment,method-assign]
    Queue.approximate_number_of_messages_delayed = property(delayed_count)  # type: ignore[assignment,method-assign]
    Queue.approximate_number_of_messages_not_visible = property(not_visible_count)  # type: ignore[assignment,method-assign]
    KinesisResponse.get_records = get_records_response  # type: ignore[method-assign,assignment]
    Shard.get_records = get_records  # type: ignore[method-assign]
    Shard.get_max_sequence_number = get_max_sequence_number  # type: ignore[method-assign]
    Shard.get_min_sequence_number = get_min_sequence_number  # type: ignore[method-assign]
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    _PATCHED = True


def _make_server(host: str, port: int) -> Any:
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    apply_patches()
    moto_app = DomainDispatcherApplication(create_backend_app)

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") == CLOCK_PATH and environ.get("REQUEST_METHOD") == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            set_clock_offset(float(environ["wsgi.input"].read(length).decode()))
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok"]
        return moto_app(environ, start_response)

    return make_server(host, port, app, threaded=True, request_handler=MotoRequestHandler)


def die_with_parent(parent_pid: int) -> None:
    """Exit when the runtime process is gone, so no orphan is left behind. (Not
    PR_SET_PDEATHSIG: that fires when the spawning *thread* ends, and the runtime spawns
    containers from worker threads.)"""

    def watch() -> None:
        while True:
            if os.getppid() != parent_pid:
                os._exit(0)
            time.sleep(1.0)

    if os.getppid() != parent_pid:
        os._exit(0)
    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


class MotoServer:
    """A running moto server; ``mode`` is "process" (a child process) or "thread"."""

    def __init__(self, mode: str = "process", host: str = "127.0.0.1", log_path: Path | None = None) -> None:
        if mode not in ("process", "thread"):
            raise ValueError("mode must be 'process' or 'thread'")
        self.mode = mode
        self.host = host
        self._proc: subprocess.Popen[bytes] | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None
        started = time.perf_counter()
        if mode == "thread":
            # moto's backends are process-global: a second stack in this process starts clean.
            from moto.moto_api._internal.models import moto_api_backend

            moto_api_backend.reset()
            set_clock_offset(0.0)
            self._server = _make_server(host, 0)
            self.port = int(self._server.server_address[1])
            self._thread = threading.Thread(target=self._server.serve_forever, name="moto", daemon=True)
            self._thread.start()
        else:
            read_fd, write_fd = os.pipe()
            log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
            try:
                self._proc = subprocess.Popen(
                    [sys.executable, "-m", "streamsense_local.server", "--host", host, "--port", "0",
                     "--ready-fd", str(write_fd), "--parent", str(os.getpid())],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    pass_fds=(write_fd,),
                    env={**os.environ, "PYTHONUNBUFFERED": "1"},
                )
            finally:
                os.close(write_fd)
                if log is not subprocess.DEVNULL:
                    log.close()  # type: ignore[union-attr]
            with os.fdopen(read_fd, "rb") as ready:
                line = ready.readline()
            if not line:
                code = self._proc.wait(timeout=10)
                raise RuntimeError(f"moto server exited with {code} before it was ready (log: {log_path})")
            self.port = int(line.decode().strip())
        self.start_s = time.perf_counter() - started

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def set_clock_offset(self, seconds: float) -> None:
        """Move moto's clock to the runtime's (wall clock + ``seconds``)."""
        if self.mode == "thread":
            set_clock_offset(seconds)
            return
        import urllib.request

        request = urllib.request.Request(self.url + CLOCK_PATH, data=repr(seconds).encode(), method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="moto server with streamsense's patches")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ready-fd", type=int, default=None, help="write the bound port to this fd")
    parser.add_argument("--parent", type=int, default=None, help="exit when this process exits")
    args = parser.parse_args(argv)
    if args.parent:
        die_with_parent(args.parent)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = _make_server(args.host, args.port)
    port = server.server_address[1]
    if args.ready_fd is not None:
        os.write(args.ready_fd, f"{port}\n".encode())
        os.close(args.ready_fd)
    else:
        print(f"moto listening on http://{args.host}:{port}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
