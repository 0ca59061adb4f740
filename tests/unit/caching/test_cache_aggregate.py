"""Plays per region, title and window: exact counts, and idempotence under Kinesis replays
(whole batch, a retry from the middle) and producer re-sends."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from streamsense.caching.aggregate import PlayRecord, aggregate, window_plays
from streamsense.caching.store import plays_key, session_key, title_bucket
from streamsense.events import PlaybackStart, validate_event
from streamsense.storage import MemoryTable

T0 = datetime(2024, 5, 6, 12, 0, tzinfo=UTC)  # a 6 h window starts at 12:00
NOW = T0 + timedelta(hours=1)


def start(session: str, title: str, country: str, minutes: float, event_id: str | None = None) -> PlaybackStart:
    obj: dict[str, Any] = {
        "type": "playback_start",
        "version": 1,
        "event_id": event_id or f"{session}-start",
        "occurred_at": (T0 + timedelta(minutes=minutes)).isoformat(),
        "account_id": f"acct-{session}",
        "payload": {
            "session_id": session,
            "profile_id": "p1",
            "title_id": title,
            "device": {"device_id": f"d-{session}", "device_type": "tv"},
            "network": {"ip": "198.51.100.7", "asn": 3320, "country": country, "lat": 52.5, "lon": 13.4},
            "network_type": "wifi",
            "startup_ms": 900,
            "audio_language": "de",
            "subtitle_language": "off",
        },
    }
    event = validate_event(obj)
    assert isinstance(event, PlaybackStart)
    return event


def batch() -> list[PlayRecord]:
    events = [
        start("s1", "t1", "DE", 1),
        start("s2", "t1", "DE", 2),
        start("s3", "t2", "DE", 3),
        start("s4", "t1", "AT", 4),
        start("s5", "t1", "DE", 400),  # 18:40: the next window
        start("s2", "t1", "DE", 2, event_id="s2-start-resent"),  # producer re-send of s2
    ]
    return [PlayRecord(e, "shardId-000000000000", 49_000_000_000_000_000_000_000 + i) for i, e in enumerate(events)]


def counts(table: MemoryTable) -> dict[tuple[str, str], dict[str, int]]:
    return {
        (r, w): window_plays(table, r, w)
        for r in ("DE", "AT")
        for w in ("2024-05-06T12:00Z", "2024-05-06T18:00Z")
        if window_plays(table, r, w)
    }


def test_exact_counts_per_region_title_and_window() -> None:
    table = MemoryTable()
    report = aggregate(table, batch())
    assert (report.applied, report.replayed, report.duplicates) == (5, 0, 1)
    assert counts(table) == {
        ("DE", "2024-05-06T12:00Z"): {"t1": 2, "t2": 1},
        ("AT", "2024-05-06T12:00Z"): {"t1": 1},
        ("DE", "2024-05-06T18:00Z"): {"t1": 1},
    }
    item = table.items[plays_key("DE", "2024-05-06T12:00Z", "shardId-000000000000", title_bucket("t1"))]
    assert item["seq"] == str(49_000_000_000_000_000_000_005)  # the re-send advanced the watermark
    assert (session_key("s2")) in table.items
    assert report.touched == {("DE", "2024-05-06T12:00Z"), ("AT", "2024-05-06T12:00Z"), ("DE", "2024-05-06T18:00Z")}


def test_replaying_a_batch_changes_nothing() -> None:
    table = MemoryTable()
    aggregate(table, batch())
    once = copy.deepcopy(table.items)
    report = aggregate(table, batch())
    assert (report.applied, report.replayed) == (0, 6)
    assert table.items == once


def test_a_retry_from_the_middle_counts_only_what_is_new() -> None:
    table = MemoryTable()
    records = batch()
    aggregate(table, records[:3])  # the first attempt checkpointed three records
    aggregate(table, records[2:])  # Kinesis retries from the third
    expected = MemoryTable()
    aggregate(expected, records)
    assert counts(table) == counts(expected)
    assert {k: v for k, v in table.items.items()} == expected.items


def test_a_crash_between_counts_and_markers_still_catches_a_later_resend() -> None:
    table = MemoryTable()
    records = batch()[:2]
    aggregate(table, records)
    del table.items[session_key("s2")]  # as if the marker write had been lost
    aggregate(table, records)  # the replay skips the counts and rewrites the marker
    assert session_key("s2") in table.items
    resend = PlayRecord(start("s2", "t1", "DE", 2, event_id="late-resend"), "shardId-000000000000", 49_000_000_000_000_000_000_100)
    report = aggregate(table, [resend])
    assert report.duplicates == 1
    assert counts(table) == {("DE", "2024-05-06T12:00Z"): {"t1": 2}}


def test_batched_io() -> None:
    table = MemoryTable()
    records = [PlayRecord(start(f"s{i}", f"t{i % 40}", "DE", i % 300), "shardId-000000000001", 10 + i) for i in range(500)]
    aggregate(table, records)
    # One BatchGetItem round (16 bucket items + 500 session markers = 516 keys: 6 calls of
    # up to 100) and one BatchWriteItem round (16 items: 1 call; 500 markers: 20 calls of 25).
    assert len({k for k in table.items if k[0].startswith("plays#")}) == 16
    assert table.requests == 6 + 1 + 20
