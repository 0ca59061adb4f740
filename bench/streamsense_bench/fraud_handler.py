"""fraud_scorer's costs on the handbook's payments replayed as events: events/s on one core
(batch of 1,000, in-memory state; also batches of 100 and 500), AWS requests per 1,000 events
with the state and decisions in DynamoDB on moto, and the handler's cold-start init time in a
fresh process (plus the model load of its first batch).

The state is warmed with the 45/68 days before the replay window, built from the history the
way the scorer would have written it (same row layout, same keys), then the next events are
replayed through the domain call the handler makes (``score_batch``) after base64-decoding and
parsing each record as the pipeline does."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from streamsense.events import dump_event, parse_event
from streamsense.fraud import history as H
from streamsense.fraud.decisions import Decider
from streamsense.fraud.features import EntityKeys, StreamingFeatures
from streamsense.fraud.model import FraudModel
from streamsense.fraud.registry import write_dir
from streamsense.fraud.scoring import score_batch
from streamsense.fraud.state import (
    HORIZON_MS,
    LABEL,
    PAYMENT,
    EntityLog,
    FraudStateStore,
    empty_rows,
    id_hash,
    merge_rows,
)
from streamsense.fraud.training import train
from streamsense.fraud.windows import MS_PER_DAY, NO_LABEL
from streamsense.privacy import Pseudonymizer
from streamsense.storage import DynamoTable, MemoryQueue, MemoryTable, SqsQueue, Table

REPO = Path(__file__).resolve().parents[2]
REPLAY_START = "2018-08-08"
PSEUDO = Pseudonymizer(b"bench-fraud-pseudonym-key-32bytes")


def _start_ms(day: str) -> int:
    return int(np.datetime64(day, "ms").astype(np.int64))


def warm_logs(h: H.History, until_ms: int, keys: EntityKeys) -> dict[str, EntityLog]:
    """Entity logs as the scorer would hold them at ``until_ms`` (payments within each kind's
    horizon, and the labels that had arrived)."""
    lo = until_ms - max(HORIZON_MS["merch"], HORIZON_MS["acct"])
    rows_idx = np.flatnonzero((h.ts_ms >= lo) & (h.ts_ms < until_ms))
    rows = empty_rows(len(rows_idx))
    rows["ts"] = h.ts_ms[rows_idx]
    ids = np.fromiter((id_hash(f"tx-{int(t):09d}") for t in h.transaction_id[rows_idx]), dtype=np.uint64, count=len(rows_idx))
    rows["src"] = rows["eid"] = ids
    rows["seq"] = np.arange(len(rows_idx), dtype=np.uint64)
    rows["amount"] = h.amount[rows_idx]
    rows["kind"] = PAYMENT
    rows["account"] = np.fromiter((id_hash(f"c{int(c)}") for c in h.customer[rows_idx]), dtype=np.uint64, count=len(rows_idx))
    lab = rows_idx[h.label_ts_ms[rows_idx] < until_ms]
    labels = empty_rows(len(lab))
    labels["ts"] = h.ts_ms[lab]
    labels["eid"] = np.fromiter((id_hash(f"tx-{int(t):09d}") for t in h.transaction_id[lab]), dtype=np.uint64, count=len(lab))
    labels["src"] = np.fromiter((id_hash(f"lb-{int(t):09d}") for t in h.transaction_id[lab]), dtype=np.uint64, count=len(lab))
    labels["label_ts"] = h.label_ts_ms[lab]
    labels["fraud"] = 1
    labels["kind"] = LABEL
    logs: dict[str, EntityLog] = {}
    groups = (
        ("acct", h.customer, lambda v: keys.account(f"c{v}")),
        ("card", h.customer, lambda v: keys.card(H.card_number(v))),
        ("merch", h.terminal, lambda v: keys.merchant(f"t{v}")),
    )
    for kind, col, key_of in groups:
        keep = rows["ts"] > until_ms - HORIZON_MS[kind]
        r_ent, l_ent = col[rows_idx], col[lab]
        for v in np.unique(r_ent[keep]):
            k = key_of(int(v))
            part = merge_rows(rows[keep & (r_ent == v)], labels[l_ent == v])
            log = EntityLog(k, rows=part, own=part.copy(), changed=True)
            if kind != "acct":
                log.accounts = [f"c{int(c)}" for c in np.unique(h.customer[rows_idx][keep & (r_ent == v)])][-50:]
            logs[k] = log
    return logs


def replay_records(h: H.History, start_ms: int, n: int) -> list[bytes]:
    """The Kinesis data (event JSON) of the first ``n`` payments and labels from ``start_ms``."""
    pay = np.flatnonzero(h.ts_ms >= start_ms)[: n + 1]
    end = int(h.ts_ms[pay[-1]])
    lab = np.flatnonzero((h.label_ts_ms >= start_ms) & (h.label_ts_ms <= end) & (h.label_ts_ms != NO_LABEL))
    items = [(int(h.ts_ms[i]), 1, int(i), "p") for i in pay] + [(int(h.label_ts_ms[i]), 0, int(i), "l") for i in lab]
    items.sort()
    out = []
    for _, _, i, kind in items[:n]:
        e = H.payment_event(h, i) if kind == "p" else H.label_event(h, i)
        out.append(base64.b64encode(dump_event(e).encode()))
    return out


def _run(records: list[bytes], batch: int, features: StreamingFeatures, decider: Decider, decisions: Table, queue: Any) -> float:
    started = time.perf_counter()
    for s in range(0, len(records), batch):
        events = [parse_event(base64.b64decode(r)) for r in records[s : s + batch]]
        score_batch(events, features, decider, decisions, queue)
    return time.perf_counter() - started


def _model(h: H.History, start_ms: int) -> FraudModel:
    past = np.flatnonzero(h.ts_ms < start_ms + 7 * MS_PER_DAY)
    sub = H.from_columns(h.transaction_id[past], h.ts_ms[past], h.customer[past], h.terminal[past], h.amount[past], h.fraud[past], h.label_ts_ms[past])
    return train(sub, "bench")


def handler_costs(h: H.History, n_memory: int = 4_000, n_moto: int = 2_000) -> dict[str, Any]:
    start = _start_ms(REPLAY_START)
    keys = EntityKeys(PSEUDO)
    model = _model(h, start)
    decider = Decider(model)
    records = replay_records(h, start, n_memory)
    logs = warm_logs(h, start, keys)

    out: dict[str, Any] = {"throughput": {"replay_start": REPLAY_START, "events": len(records), "by_batch": {}}}
    for batch in (100, 500, 1000):
        table = MemoryTable("fraud_state")
        store = FraudStateStore(table, slot="activity/shardId-000000000000")
        store.save({k: EntityLog(k, rows=v.rows, own=v.own, accounts=v.accounts, changed=True) for k, v in logs.items()})
        secs = _run(records, batch, StreamingFeatures(store, PSEUDO), decider, MemoryTable("decisions"), MemoryQueue())
        out["throughput"]["by_batch"][str(batch)] = round(len(records) / secs, 1)
    out["throughput"]["events_per_s"] = out["throughput"]["by_batch"]["1000"]

    moto = _moto_requests(h, logs, records[:n_moto], decider)
    out["throughput"]["aws_requests_per_1000_events"] = moto["requests_per_1000_events"]
    out["throughput"]["aws_requests"] = moto
    cold = cold_start(model)
    out["cold_start_s"] = cold["init_s"]
    out["cold_start"] = cold
    return out


def _moto_requests(h: H.History, logs: dict[str, EntityLog], records: list[bytes], decider: Decider) -> dict[str, Any]:
    import boto3
    from streamsense_local.server import MotoServer

    server = MotoServer("thread")
    try:
        kw = {"endpoint_url": server.url, "region_name": "us-east-1", "aws_access_key_id": "bench", "aws_secret_access_key": "bench"}
        make: Any = boto3.client  # typed overloads want literal arguments
        ddb = make("dynamodb", **kw)
        sqs = make("sqs", **kw)
        for name in ("fraud_state", "decisions"):
            ddb.create_table(
                TableName=name,
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
        url = sqs.create_queue(QueueName="investigations")["QueueUrl"]
        state_table, decisions = DynamoTable("fraud_state", ddb), DynamoTable("decisions", ddb)
        queue = SqsQueue(url, sqs)
        store = FraudStateStore(state_table, slot="activity/shardId-000000000000")
        # warm only the entities the replayed events touch (what a live table would hold)
        events = [parse_event(base64.b64decode(r)) for r in records]
        keys = EntityKeys(PSEUDO)
        touched = {keys.account(e.account_id) for e in events} | {
            keys.merchant(e.payload.merchant_id) for e in events if e.type == "payment"  # type: ignore[union-attr]
        } | {keys.card(e.payload.card_number) for e in events if e.type == "payment"}  # type: ignore[union-attr]
        store.save({k: EntityLog(k, rows=v.rows, own=v.own, accounts=v.accounts, changed=True) for k, v in logs.items() if k in touched})
        state_table.requests = decisions.requests = queue.requests = 0
        secs = _run(records, 1000, StreamingFeatures(store, PSEUDO), decider, decisions, queue)
        total = state_table.requests + decisions.requests + queue.requests
        return {
            "events": len(records),
            "batch": 1000,
            "fraud_state": state_table.requests,
            "decisions": decisions.requests,
            "investigations_queue": queue.requests,
            "requests_per_1000_events": round(1000 * total / len(records), 1),
            "events_per_s_on_moto": round(len(records) / secs, 1),
        }
    finally:
        server.stop()


_COLD = """
import importlib.util, time
t0 = time.perf_counter()
spec = importlib.util.spec_from_file_location("handler", {path!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
t1 = time.perf_counter()
module.MODELS.store = None  # no S3 here: the first batch's model load comes from the layer
module.MODELS.refresh()
t2 = time.perf_counter()
print(t1 - t0, t2 - t1, module.MODELS.live is not None)
"""


def cold_start(model: FraudModel, repeats: int = 3) -> dict[str, Any]:
    """Median seconds to import functions/fraud_scorer/handler.py in a fresh interpreter (the
    init phase; no AWS call happens at import), and the first batch's model load (from a model
    layer folder, sha256 verified)."""
    with tempfile.TemporaryDirectory() as tmp:
        write_dir(model, Path(tmp) / "fraud")
        env = {
            **os.environ,
            "TABLE_FRAUD_STATE": "streamsense-fraud-state",
            "TABLE_DECISIONS": "streamsense-decisions",
            "QUEUE_INVESTIGATIONS": "https://sqs.us-east-1.amazonaws.com/123456789012/streamsense-investigations",
            "QUEUE_QUARANTINE": "https://sqs.us-east-1.amazonaws.com/123456789012/streamsense-quarantine",
            "BUCKET_MODELS": "streamsense-models",
            "POWERTOOLS_SERVICE_NAME": "fraud_scorer",
            "STREAMSENSE_MODEL_DIR": tmp,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
        }
        path = str(REPO / "functions" / "fraud_scorer" / "handler.py")
        init, load = [], []
        for _ in range(repeats):
            done = subprocess.run([sys.executable, "-c", _COLD.format(path=path)], env=env, capture_output=True, text=True, check=True)
            a, b, ok = done.stdout.strip().splitlines()[-1].split()
            if ok != "True":
                raise RuntimeError("the layer model did not load in the cold-start probe")
            init.append(float(a))
            load.append(float(b))
    return {"init_s": round(float(np.median(init)), 3), "first_model_load_s": round(float(np.median(load)), 3), "repeats": repeats}


if __name__ == "__main__":
    from streamsense_bench.common import data_dir

    hist = H.load_handbook(str(data_dir() / "fraud-handbook" / "transactions.csv.gz"))
    print(json.dumps(handler_costs(hist), indent=2))
