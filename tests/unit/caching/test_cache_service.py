"""The publish path on in-memory storage: plays in, hints out to the table and the bucket,
within each site's fill budget, explained, idempotent per window, readable by the fill API."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from streamsense.caching.aggregate import PlayRecord, aggregate
from streamsense.caching.hints import Site
from streamsense.caching.service import PRODUCT_FORECAST, CacheHints, HintsConfig
from streamsense.caching.store import TitleInfo, hints_for, latest_hints, site_item, title_item
from streamsense.storage import MemoryObjectStore, MemoryTable
from test_cache_aggregate import start  # type: ignore[import-not-found]

T0 = datetime(2024, 5, 6, 0, 0, tzinfo=UTC)


def seeded() -> tuple[MemoryTable, MemoryObjectStore]:
    table = MemoryTable()
    table.put_many([site_item(Site("fra-1", "DE", 10_000)), site_item(Site("vie-1", "AT", 6_000))])
    sizes = {"hit": 3_000, "steady": 2_500, "tail": 2_000, "austrian": 4_000, "big": 9_500}
    table.put_many([title_item(TitleInfo(t, b)) for t, b in sizes.items()])
    # The launch calendar: one title launched 6 h before T0 (its plays teach the launch prior),
    # one launches at T0 + 12 h.
    table.put_many([title_item(TitleInfo("launch1", 1_000, T0 - timedelta(hours=6))), title_item(TitleInfo("launch2", 1_000, T0 + timedelta(hours=12)))])
    rng = np.random.default_rng(0)
    records = []
    seq = 1
    # Four windows of 6 h: DE watches hit > steady > tail; AT mostly its own title; "big" once.
    for w in range(4):
        for title, country, n in (("hit", "DE", 30), ("steady", "DE", 12), ("tail", "DE", 2), ("austrian", "AT", 10), ("hit", "AT", 3), ("big", "DE", 1 if w == 0 else 0), ("launch1", "DE", 8 if w >= 1 else 0)):
            for k in range(n):
                minute = w * 360 + int(rng.integers(0, 360)) - 720  # from T0 - 12 h
                records.append(PlayRecord(start(f"w{w}-{title}-{country}-{k}", title, country, minute - 720), "shardId-000000000000", seq))
                seq += 1
    table.put_many([{"pk": "region", "sk": "DE"}, {"pk": "region", "sk": "AT"}])
    aggregate(table, records)
    return table, MemoryObjectStore()


def service(table: MemoryTable, bucket: MemoryObjectStore) -> CacheHints:
    return CacheHints(table, bucket, HintsConfig(history_windows=6, rollup_windows=6, reactive_share=0.0))


def test_publish_fills_each_site_within_budget_and_says_why() -> None:
    table, bucket = seeded()
    # T0 - 12 h .. T0 + 12 h hold the plays; publish at the 12:00 boundary (window 12:00-18:00).
    report = service(table, bucket).publish(T0 + timedelta(hours=12, minutes=5))
    assert report.window == "2024-05-06T12:00Z" and report.sites == 2 and not report.skipped
    window, de = latest_hints(table, "fra-1")
    assert window == "2024-05-06T12:00Z"
    # Fill order is forecast requests per byte: launch2 (1,000 bytes, the launch prior) comes
    # before steady (2,500 bytes); "big" (9,500 bytes for one old play) is never worth it.
    assert [(e.title_id, e.reason) for e in de] == [("hit", "own"), ("launch2", "calendar"), ("launch1", "own"), ("steady", "own"), ("tail", "own")]
    assert sum(e.bytes for e in de) == 9_500
    # launch2: the prior learned from launch1's launch window in DE (8 of 52 plays) x the 45
    # plays DE had at the same time yesterday.
    assert de[1].predicted_demand == pytest.approx(8 / 52 * 45, rel=1e-5)
    _, at = latest_hints(table, "vie-1")
    # AT: its own title (4,000), then hit (3,000) would overflow 6,000; launch1 arrives from DE.
    assert [(e.title_id, e.reason, e.source) for e in at] == [("austrian", "own", None), ("launch1", "trend", "DE")]
    doc = json.loads(bucket.objects["hints/fra-1/2024-05-06T12:00Z.json"])
    assert doc["schema"] == "streamsense.cache-hints/1"
    assert doc["window_end"] == "2024-05-06T18:00Z"
    assert [e["title_id"] for e in doc["entries"]] == [e.title_id for e in de]
    assert doc["used_bytes"] == sum(e.bytes for e in de)


def test_publish_is_idempotent_per_window_and_keeps_what_it_holds() -> None:
    table, bucket = seeded()
    svc = service(table, bucket)
    svc.publish(T0 + timedelta(hours=12, minutes=5))
    before = dict(table.items)
    again = svc.publish(T0 + timedelta(hours=13))  # a later tick in the same window
    assert again.skipped and table.items == before
    nxt = svc.publish(T0 + timedelta(hours=18))
    assert not nxt.skipped and nxt.window == "2024-05-06T18:00Z"
    prev = hints_for(table, "fra-1", "2024-05-06T12:00Z")
    cur = hints_for(table, "fra-1", "2024-05-06T18:00Z")
    held = {e.title_id for e in prev}
    assert all(e.kept == (e.title_id in held) for e in cur)


def test_a_launch_on_the_calendar_is_hinted_before_its_first_play() -> None:
    table, bucket = seeded()
    service(table, bucket).publish(T0 + timedelta(hours=12))  # launch2's window
    de = {e.title_id: e for e in hints_for(table, "fra-1", "2024-05-06T12:00Z")}
    assert de["launch2"].reason == "calendar" and not de["launch2"].kept
    # Its forecast is the launch prior learned from launch1's first window in DE (8 of 59
    # plays), times the requests expected in the window.
    assert de["launch2"].predicted_demand > 0
    at = {e.title_id for e in hints_for(table, "vie-1", "2024-05-06T12:00Z")}
    assert "launch2" not in at  # no launch ever played in AT: no prior there


def test_a_warm_container_refits_the_forecaster_every_few_windows() -> None:
    # A model small enough for the seeded plays; refit every 2 windows (the product: 8).
    fc = replace(PRODUCT_FORECAST, min_train_windows=2, min_train_rows=1, min_samples_leaf=1, max_iter=5, retrain_every=2)
    cfg = HintsConfig(history_windows=6, rollup_windows=6, reactive_share=0.0, forecast=fc)
    table, bucket = seeded()
    svc = CacheHints(table, bucket, cfg)
    svc.publish(T0 + timedelta(hours=12, minutes=5))
    assert svc.fits == 1 and svc.model is not None and svc.model[0] == T0 + timedelta(hours=12)
    first = svc.model[1]
    svc.publish(T0 + timedelta(hours=18))  # one window later: scored with the same model
    assert svc.fits == 1 and svc.model[1] is first
    svc.publish(T0 + timedelta(hours=24))  # two windows later: refitted on the longer history
    assert svc.fits == 2 and svc.model[0] == T0 + timedelta(hours=24) and svc.model[1] is not first
    # A cold container fits before its first forecast; a clock moved back never reuses a model
    # fitted on windows after the forecast.
    cold_table, cold_bucket = seeded()
    cold = CacheHints(cold_table, cold_bucket, cfg)
    cold.publish(T0 + timedelta(hours=18))
    assert cold.fits == 1
    cold.publish(T0 + timedelta(hours=12), force=True)
    assert cold.fits == 2 and cold.model is not None and cold.model[0] == T0 + timedelta(hours=12)
