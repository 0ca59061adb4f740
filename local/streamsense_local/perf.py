"""What the local runtime costs: records per second it delivers through Kinesis on moto to a
no-op handler (per batch size and moto server mode), container init time per function, and
(--iam-probe) how far moto's own IAM enforcement goes.

    python -m streamsense_local perf                      # 20,000 records, batch 100 and 1,000, 3 runs each
    python -m streamsense_local perf --records 50000 --server-mode both --init
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from infra.system import Access, Function, KinesisTrigger, Queue, Stream, System

NOOP_HANDLER = '''"""No-op: what delivery alone costs."""


def lambda_handler(event, context):
    return {"batchItemFailures": []}
'''


def _record(i: int) -> bytes:
    """A playback heartbeat of realistic size (~600 bytes)."""
    return json.dumps(
        {
            "type": "playback_heartbeat",
            "version": 1,
            "event_id": f"perf-{i:09d}",
            "occurred_at": "2024-12-03T12:00:00Z",
            "account_id": f"acc-{i % 5000}",
            "payload": {
                "session_id": f"s-{i // 20}",
                "profile_id": f"p-{i % 5000}",
                "title_id": f"t-{i % 700}",
                "position_s": float(i % 3600),
                "device": {"device_id": f"d-{i % 9000}", "device_type": "tv"},
                "network": {"ip": "203.0.113.7", "asn": 64500, "country": "US", "city": "Newark", "lat": 40.7, "lon": -74.2},
                "network_type": "wifi",
                "qoe": {"throughput_kbps": 8123.5, "bitrate_kbps": 4300.0, "rebuffer_ms": 0, "buffer_s": 21.5},
            },
        },
        separators=(",", ":"),
    ).encode()


def perf_system(batch_size: int, shards: int, consumers: int = 1) -> System:
    """One stream read by ``consumers`` no-op functions (noop, noop_2, ...), as the playback
    stream is read by six functions in SYSTEM."""
    return System(
        name="perf",
        streams=(Stream("perf", "perf input", frozenset({"playback_heartbeat"}), shards=shards),),
        tables=(),
        buckets=(),
        queues=(Queue("quarantine", "unused"), Queue("failures", "on-failure")),
        functions=tuple(
            Function(
                "noop" if i == 0 else f"noop_{i + 1}",
                "no-op consumer",
                triggers=(KinesisTrigger("perf", batch_size=batch_size, batching_window_s=0),),
                access=(Access("quarantine", "write"),),
                layers=("shared",),
            )
            for i in range(consumers)
        ),
    )


def measure_delivery(
    records: int, batch_size: int, shards: int, server_mode: str, functions_dir: Path, consumers: int = 1
) -> dict[str, Any]:
    """Put ``records`` records, then time drain(): records/s = records x consumers / seconds."""
    from streamsense_local.stack import LocalStack

    system = perf_system(batch_size, shards, consumers)
    for fn in system.functions:
        (functions_dir / fn.name).mkdir(exist_ok=True)
        (functions_dir / fn.name / "handler.py").write_text(NOOP_HANDLER)
    t0 = time.perf_counter()
    with LocalStack.start(system, functions_dir=functions_dir, server_mode=server_mode, record_history=False) as stack:
        start_s = time.perf_counter() - t0
        init_ms = stack.warm()["noop"]
        t1 = time.perf_counter()
        stack.put_records("perf", [(_record(i), f"acc-{i % 5000}") for i in range(records)])
        put_s = time.perf_counter() - t1
        t2 = time.perf_counter()
        stack.drain(timeout_s=3600)
        drain_s = time.perf_counter() - t2
        rows = stack.summary_rows()
        delivered = sum(m.counters.records_delivered for m in stack.kinesis_mappings)
        errors = sum(r["errors"] for r in rows)
        if delivered != records * consumers or errors:
            raise RuntimeError(f"perf run lost records: delivered {delivered} of {records * consumers}, errors {errors}")
        return {
            "server_mode": server_mode,
            "shards": shards,
            "consumers": consumers,
            "batch_size": batch_size,
            "records": records,
            "invocations": sum(r["invocations"] for r in rows),
            "stack_start_s": round(start_s, 2),
            "put_records_per_s": round(records / put_s),
            "delivered_records_per_s": round(records * consumers / drain_s),
            "drain_s": round(drain_s, 2),
            "noop_init_ms": round(init_ms, 1),
        }


def measure_init(functions: list[str] | None = None) -> list[dict[str, Any]]:
    """Init (module import) time of each SYSTEM function that has a handler, each in a fresh
    container, measured three times sequentially (no other container starting alongside)."""
    from infra.system import SYSTEM
    from streamsense_local.stack import DEFAULT_FUNCTIONS_DIR, LocalStack

    names = functions or [fn.name for fn in SYSTEM.functions if (DEFAULT_FUNCTIONS_DIR / fn.name / "handler.py").is_file()]
    rows = []
    with LocalStack.start(record_history=False) as stack:
        for name in names:
            samples, spawn = [], []
            for _ in range(3):
                proc = stack.processes[name]
                proc.stop()
                proc.start()
                samples.append(proc.init_ms[-1])
                spawn.append(proc.spawn_ms[-1])
                error = proc._init_error
                proc.stop()
                proc._pending_init = None
                proc._init_error = None
            rows.append(
                {
                    "function": name,
                    "init_ms_min": round(min(samples), 1),
                    "init_ms_median": round(sorted(samples)[1], 1),
                    "container_start_ms_median": round(sorted(spawn)[1], 1),
                    "init_error": error["errorType"] if error else None,
                }
            )
    return rows


def iam_probe() -> list[dict[str, str]]:
    """Does moto's own IAM enforcement (INITIAL_NO_AUTH_ACTION_COUNT) apply resource-scoped
    policies like the ones infra.access derives? One allowed and one denied call per service."""
    import urllib.request

    import boto3

    from streamsense_local.server import MotoServer

    server = MotoServer("process")
    try:
        def client(service: str, key: tuple[str, str] = ("admin", "admin")) -> Any:
            make: Any = boto3.client
            return make(service, endpoint_url=server.url, region_name="us-east-1", aws_access_key_id=key[0], aws_secret_access_key=key[1])

        ddb, sqs, s3, kin, iam = (client(s) for s in ("dynamodb", "sqs", "s3", "kinesis", "iam"))
        for t in ("t-own", "t-other"):
            ddb.create_table(TableName=t, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}], AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")
        q_own, q_other = (sqs.create_queue(QueueName=n)["QueueUrl"] for n in ("q-own", "q-other"))
        for b in ("b-own", "b-other"):
            s3.create_bucket(Bucket=b)
        for s in ("s-own", "s-other"):
            kin.create_stream(StreamName=s, ShardCount=1)
        arn = "arn:aws:{}:us-east-1:123456789012:{}"
        policy = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["dynamodb:PutItem"], "Resource": [arn.format("dynamodb", "table/t-own")]},
            {"Effect": "Allow", "Action": ["sqs:SendMessage"], "Resource": [arn.format("sqs", "q-own")]},
            {"Effect": "Allow", "Action": ["s3:PutObject"], "Resource": ["arn:aws:s3:::b-own/in/*"]},
            {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": ["arn:aws:s3:::b-own"], "Condition": {"StringLike": {"s3:prefix": ["in/*"]}}},
            {"Effect": "Allow", "Action": ["kinesis:PutRecord"], "Resource": [arn.format("kinesis", "stream/s-own")]},
        ]}
        iam.create_user(UserName="fn")
        iam.put_user_policy(UserName="fn", PolicyName="p", PolicyDocument=json.dumps(policy))
        k = iam.create_access_key(UserName="fn")["AccessKey"]
        key = (k["AccessKeyId"], k["SecretAccessKey"])
        # From now on moto authenticates and authorizes every request (the admin calls above ran before).
        request = urllib.request.Request(server.url + "/moto-api/reset-auth", data=b"0", method="POST", headers={"Content-Type": "text/plain"})
        urllib.request.urlopen(request).read()
        f = {s: client(s, key) for s in ("dynamodb", "sqs", "s3", "kinesis")}
        cases = [
            ("dynamodb PutItem, declared table", "allow", lambda: f["dynamodb"].put_item(TableName="t-own", Item={"pk": {"S": "a"}})),
            ("dynamodb PutItem, other table", "deny", lambda: f["dynamodb"].put_item(TableName="t-other", Item={"pk": {"S": "a"}})),
            ("sqs SendMessage, declared queue", "allow", lambda: f["sqs"].send_message(QueueUrl=q_own, MessageBody="x")),
            ("sqs SendMessage, other queue", "deny", lambda: f["sqs"].send_message(QueueUrl=q_other, MessageBody="x")),
            ("s3 PutObject, declared prefix", "allow", lambda: f["s3"].put_object(Bucket="b-own", Key="in/x", Body=b"x")),
            ("s3 PutObject, other prefix", "deny", lambda: f["s3"].put_object(Bucket="b-own", Key="out/x", Body=b"x")),
            ("s3 ListBucket, declared prefix", "allow", lambda: f["s3"].list_objects_v2(Bucket="b-own", Prefix="in/")),
            ("s3 ListBucket, other prefix", "deny", lambda: f["s3"].list_objects_v2(Bucket="b-own", Prefix="out/")),
            ("kinesis PutRecord, declared stream", "allow", lambda: f["kinesis"].put_record(StreamName="s-own", Data=b"x", PartitionKey="k")),
            ("kinesis PutRecord, other stream", "deny", lambda: f["kinesis"].put_record(StreamName="s-other", Data=b"x", PartitionKey="k")),
        ]
        rows = []
        for name, expected, call in cases:
            try:
                call()
                got = "allow"
            except Exception:
                got = "deny"
            rows.append({"call": name, "policy_says": expected, "moto_did": got, "correct": "yes" if got == expected else "NO"})
        return rows
    finally:
        server.stop()


def _batch_sizes(text: str) -> list[int]:
    """argparse type: "100,1000" -> [100, 1000], each within Kinesis' 1-10,000."""
    try:
        sizes = [int(b) for b in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of whole numbers") from None
    if not all(1 <= b <= 10_000 for b in sizes):
        raise argparse.ArgumentTypeError(f"{text!r}: a Kinesis batch size is 1-10000")
    return sizes


def add_arguments(p: argparse.ArgumentParser) -> None:
    from streamsense_local.cli import positive_int

    p.add_argument("--records", type=positive_int, default=20_000)
    p.add_argument("--batch-sizes", type=_batch_sizes, default="100,1000", help="comma-separated, each 1-10000 (Kinesis' limit)")
    p.add_argument("--shards", type=positive_int, default=1)
    p.add_argument("--consumers", type=positive_int, default=1, help="no-op functions reading the stream")
    p.add_argument("--repeat", type=positive_int, default=3, help="runs per setting; the median is reported")
    p.add_argument("--server-mode", choices=("process", "thread", "both"), default="process")
    p.add_argument("--init", action="store_true", help="also measure init time of every function in functions/")
    p.add_argument("--iam-probe", action="store_true", help="only probe moto's IAM enforcement")
    p.add_argument("--json", help="also write the results to this file")


def main(args: argparse.Namespace) -> int:
    from streamsense_local.cli import print_table

    results: dict[str, Any] = {}
    if args.iam_probe:
        results["iam_probe"] = iam_probe()
        print_table(results["iam_probe"])
    else:
        modes = ("process", "thread") if args.server_mode == "both" else (args.server_mode,)
        rows = []
        with tempfile.TemporaryDirectory() as tmp:
            functions_dir = Path(tmp)
            for mode in modes:
                for batch in args.batch_sizes:
                    runs = [
                        measure_delivery(args.records, batch, args.shards, mode, functions_dir, args.consumers)
                        for _ in range(args.repeat)
                    ]
                    rates = sorted(r["delivered_records_per_s"] for r in runs)
                    row = runs[0] | {
                        "runs": len(runs),
                        "delivered_records_per_s": rates[len(rates) // 2],  # median
                        "min_records_per_s": rates[0],
                        "max_records_per_s": rates[-1],
                    }
                    del row["drain_s"]
                    rows.append(row)
                    print_table(rows[-1:])
        results["delivery"] = rows
        print("\nKinesis -> no-op handler:")
        print_table(rows)
        if args.init:
            results["init"] = measure_init()
            print("\ncontainer init (handler import) per function:")
            print_table(results["init"])
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0
