"""Cost of the content bandit's code paths, as the work grows: the handler's update path
(impressions applied per second, DynamoDB requests per 1,000 impressions, item sizes) by batch
size, the serving path (choice probabilities for 1,000 contexts) by number of variants, and
the handler's cold start in a fresh process.

The update path runs on the in-memory twin of the table, which counts requests exactly as the
DynamoDB adapter batches them (BatchGetItem 100 keys, BatchWriteItem 25 items a call)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from streamsense.content.features import Context, features
from streamsense.content.model import TitleStats, choice_probabilities
from streamsense.content.store import Delivered, apply_impressions
from streamsense.events import Impression, ImpressionPayload
from streamsense.storage import MemoryTable

REPO = Path(__file__).resolve().parents[2]


def synthetic_impressions(n: int, *, members: int = 2000, titles: int = 200, variants: int = 4, page: int = 10, seed: int = 0) -> list[Impression]:
    """Page views: a member is shown ``page`` titles at positions 0..page-1 at once (so a batch
    holds about batch/page members), each with one of the title's variants; 3% are played."""
    rng = np.random.default_rng(seed)
    start = datetime(2024, 12, 3, tzinfo=UTC)
    out: list[Impression] = []
    while len(out) < n:
        member = int(rng.integers(members))
        shown = rng.choice(titles, size=page, replace=False)
        when = start + timedelta(seconds=len(out))
        for pos, title in enumerate(shown):
            out.append(
                Impression(
                    type="impression",
                    version=1,
                    event_id=f"bench-{len(out)}",
                    occurred_at=when,
                    account_id=f"acc-{member}",
                    payload=ImpressionPayload(
                        profile_id=f"prof-{member}",
                        title_id=f"title-{title}",
                        variant_id=f"v{int(rng.integers(variants))}",
                        position=pos,
                        propensity=1.0 / variants,
                        played=bool(rng.random() < 0.03),
                    ),
                )
            )
    return out[:n]


def update_cost(n: int = 10_000, batch_sizes: tuple[int, ...] = (100, 1000)) -> dict[str, dict[str, float]]:
    events = synthetic_impressions(n)
    out: dict[str, dict[str, float]] = {}
    for size in batch_sizes:
        table = MemoryTable()
        delivered = [Delivered(e, "shardId-000000000000", i) for i, e in enumerate(events)]
        started = time.perf_counter()
        for i in range(0, n, size):
            apply_impressions(delivered[i : i + size], table)
        elapsed = time.perf_counter() - started
        members = [v for k, v in table.items.items() if k[0].startswith("member#")]
        titles = [v for k, v in table.items.items() if k[0].startswith("title#")]
        out[f"batch_{size}"] = {
            "events_per_s": round(n / elapsed, 1),
            "aws_requests_per_1000_events": round(table.requests * 1000 / n, 1),
            "member_item_bytes_mean": round(float(np.mean([len(json.dumps(m, default=str)) for m in members])), 1),
            "title_item_bytes_mean": round(float(np.mean([len(json.dumps(t, default=str)) for t in titles])), 1),
        }
    return out


def choice_cost(variant_counts: tuple[int, ...] = (4, 16, 64), contexts: int = 1000, seed: int = 0) -> dict[str, float]:
    """Milliseconds to compute choice probabilities for ``contexts`` contexts (5% with a member
    affinity), by number of variants."""
    rng = np.random.default_rng(seed)
    out: dict[str, float] = {}
    for v in variant_counts:
        names = [f"v{i}" for i in range(v)]
        stats = TitleStats()
        for _ in range(5000):
            stats.add(names[int(rng.integers(v))], features(int(rng.integers(4)), bool(rng.random() < 0.05), int(rng.random() < 0.02)), bool(rng.random() < 0.01))
        ctxs = [
            Context(int(rng.integers(4)), True, {names[int(rng.integers(v))]: 1}) if rng.random() < 0.05 else Context(int(rng.integers(4)))
            for _ in range(contexts)
        ]
        started = time.perf_counter()
        choice_probabilities(stats, names, ctxs)
        out[f"variants_{v}"] = round((time.perf_counter() - started) * 1000, 1)
    return out


_COLD = """
import importlib.util, time
t0 = time.perf_counter()
spec = importlib.util.spec_from_file_location("handler", {path!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(time.perf_counter() - t0)
"""


def cold_start_s(repeats: int = 3) -> float:
    """Median seconds to import functions/content_bandit/handler.py in a fresh interpreter (the
    init phase's share that the code controls); no AWS call happens at import."""
    env = {
        **os.environ,
        "TABLE_CONTENT": "streamsense-content",
        "QUEUE_QUARANTINE": "https://sqs.us-east-1.amazonaws.com/123456789012/streamsense-quarantine",
        "POWERTOOLS_SERVICE_NAME": "content_bandit",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
    }
    path = str(REPO / "functions" / "content_bandit" / "handler.py")
    times = []
    for _ in range(repeats):
        done = subprocess.run([sys.executable, "-c", _COLD.format(path=path)], env=env, capture_output=True, text=True, check=True)
        times.append(float(done.stdout.strip().splitlines()[-1]))
    return round(float(np.median(times)), 3)
