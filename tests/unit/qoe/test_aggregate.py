"""QoE telemetry aggregation: exact contributions, idempotence under replays and producer
re-sends, segment fallback when data is thin, and the hint arithmetic."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from streamsense.events import PlaybackHeartbeat, PlaybackStart, validate_event
from streamsense.qoe.aggregate import (
    QoeRecord,
    SegmentStats,
    aggregate,
    load_stats,
    session_key,
    stats_key,
)
from streamsense.qoe.hints import (
    HintConfig,
    compute_hint,
    publish_hints,
    read_hint,
    startup_bitrate,
)
from streamsense.qoe.segments import Segment
from streamsense.qoe.sketches import QuantileSketch
from streamsense.storage import MemoryTable

T0 = datetime(2024, 5, 6, 12, 0, tzinfo=UTC)
NOW = T0 + timedelta(hours=1)


def heartbeat(
    session: str,
    k: int,
    kbps: float,
    *,
    country: str = "NO",
    network: str = "cellular_3g",
    device: str = "mobile",
    position: float = 20.0,
    rebuffer_ms: int = 0,
) -> PlaybackHeartbeat:
    obj: dict[str, Any] = {
        "type": "playback_heartbeat",
        "version": 1,
        "event_id": f"{session}-hb{k}",
        "occurred_at": (T0 + timedelta(seconds=4 * k)).isoformat(),
        "account_id": f"acct-{session}",
        "payload": {
            "session_id": session,
            "profile_id": "p1",
            "title_id": "t1",
            "position_s": position,
            "device": {"device_id": f"d-{session}", "device_type": device},
            "network": {
                "ip": "198.51.100.7",
                "asn": 2119,
                "country": country,
                "lat": 59.9,
                "lon": 10.7,
            },
            "network_type": network,
            "qoe": {"throughput_kbps": kbps, "bitrate_kbps": 750, "rebuffer_ms": rebuffer_ms},
        },
    }
    event = validate_event(obj)
    assert isinstance(event, PlaybackHeartbeat)
    return event


def start(session: str, startup_ms: int) -> PlaybackStart:
    hb = heartbeat(session, 0, 1.0)
    event = validate_event(
        {
            "type": "playback_start",
            "version": 1,
            "event_id": f"{session}-start",
            "occurred_at": T0.isoformat(),
            "account_id": hb.account_id,
            "payload": {
                **{
                    k: v
                    for k, v in hb.payload.model_dump().items()
                    if k not in ("position_s", "qoe")
                },
                "startup_ms": startup_ms,
                "audio_language": "no",
                "subtitle_language": "off",
            },
        }
    )
    assert isinstance(event, PlaybackStart)
    return event


def records(
    events: list[Any], shard: str = "shardId-000000000000", first_seq: int = 100
) -> list[QoeRecord]:
    return [QoeRecord(e, shard, first_seq + 10 * i) for i, e in enumerate(events)]


NO_MOBILE = Segment("NO", "cellular_3g", "mobile")


def test_contributions_and_prediction_ratio_by_hand() -> None:
    table = MemoryTable()
    events = [start("s1", 2500), heartbeat("s1", 1, 1000.0, position=0.0)]
    events += [
        heartbeat("s1", 2, 3000.0, position=4.0),
        heartbeat("s1", 3, 1500.0, rebuffer_ms=700),
    ]
    report = aggregate(table, records(events), NOW)
    assert report.applied == 4 and report.duplicates == 0 and report.replayed == 0
    # one item per level of the segment's chain, plus the session state
    day = "2024-05-06"
    keys = {stats_key(level, key, day, "shardId-000000000000") for level, key in NO_MOBILE.chain()}
    assert keys == {
        ("seg#rnd#NO|cellular_3g|mobile", "day#2024-05-06#shardId-000000000000"),
        ("seg#rn#NO|cellular_3g", "day#2024-05-06#shardId-000000000000"),
        ("seg#n#cellular_3g", "day#2024-05-06#shardId-000000000000"),
        ("seg#all#*", "day#2024-05-06#shardId-000000000000"),
    }
    assert set(table.items) == keys | {session_key("s1")}
    stats = load_stats(table, "rnd", NO_MOBILE.key("rnd"), 7)
    assert (stats.sessions, stats.heartbeats, stats.stalled, stats.rebuffer_ms) == (1, 3, 1, 700)
    assert stats.tput.count == 3 and stats.early.count == 2  # positions 0 and 4 are < 10 s
    # ratios: 3000 / hm(1000) = 3.0; 1500 / hm(1000, 3000) = 1500 / 1500 = 1.0
    assert stats.ratio.count == 2
    assert (stats.ratio.min, stats.ratio.max) == (1.0, 3.0)
    assert stats.startup.count == 1 and stats.startup.sum == 2500.0
    assert table.items[session_key("s1")]["samples"] == [
        [int((T0 + timedelta(seconds=4 * k)).timestamp() * 1000), v]
        for k, v in ((1, 1000.0), (2, 3000.0), (3, 1500.0))
    ]
    assert stats.first_at == T0 and stats.last_at == T0 + timedelta(seconds=12)


def test_replaying_a_batch_changes_nothing() -> None:
    table = MemoryTable()
    events = [heartbeat(f"s{i % 3}", i, 500.0 + 37 * i) for i in range(30)]
    batch = records(events)
    aggregate(table, batch, NOW)
    after_once = copy.deepcopy(table.items)
    report = aggregate(table, batch, NOW)  # Kinesis redelivers the whole batch
    assert table.items == after_once
    assert report.applied == 0 and report.duplicates == 30


def test_a_retry_after_a_crash_mid_write_counts_each_record_once() -> None:
    events = [heartbeat(f"s{i % 4}", i, 400.0 + 11 * i) for i in range(40)]
    batch = records(events)
    once = MemoryTable()
    aggregate(once, batch, NOW)

    crashed = MemoryTable()
    original = crashed.put_many

    def dies_mid_write(items: list[dict[str, Any]]) -> None:
        original(items[:2])  # 2 of the 4 segment items land, then the function times out
        raise RuntimeError("Lambda timed out")

    crashed.put_many = dies_mid_write  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        aggregate(crashed, batch[:25], NOW)
    crashed.put_many = original  # type: ignore[method-assign]
    # Kinesis retries from the failed batch's first record; the new poll returns more records
    report = aggregate(crashed, batch, NOW)
    assert report.replayed == 25 * 2  # 25 records x the 2 items already written
    assert crashed.items == once.items


def test_the_window_ends_at_the_newest_day_with_data() -> None:
    table = MemoryTable()
    old = heartbeat("s-old", 1, 100.0)
    old = old.model_copy(update={"occurred_at": T0 - timedelta(days=7), "event_id": "old"})
    aggregate(table, records([old, heartbeat("s1", 1, 800.0), heartbeat("s1", 2, 900.0)]), NOW)
    # 2024-04-29 is 7 days before 2024-05-06: outside a 7-day window, inside an 8-day one
    assert load_stats(table, "all", "*", 7).tput.count == 2
    assert load_stats(table, "all", "*", 8).tput.count == 3


def test_producer_resend_is_recognized_by_event_id() -> None:
    table = MemoryTable()
    hb = heartbeat("s1", 1, 800.0)
    aggregate(table, records([hb]), NOW)
    report = aggregate(table, records([hb], first_seq=900), NOW)  # same event, new sequence
    assert report.duplicates == 1 and report.applied == 0
    assert load_stats(table, "all", "*", 7).heartbeats == 1


def test_segment_fallback_when_thin() -> None:
    table = MemoryTable()
    tv = [heartbeat(f"tv{i}", i, 2000.0, device="tv") for i in range(240)]
    phone = [heartbeat(f"m{i}", i, 700.0) for i in range(20)]
    aggregate(table, records(tv + phone), NOW)
    config = HintConfig(min_throughput=200)
    publish_hints(table, [NO_MOBILE, Segment("NO", "cellular_3g", "tv")], NOW, config)
    mobile = read_hint(table, NO_MOBILE)
    assert mobile is not None and mobile["level"] == "rnd"
    # 20 phone samples are too few: the prior comes from region x network (260 samples)
    assert mobile["throughput"]["level"] == "rn"
    assert mobile["throughput"]["samples"] == 260
    tv_hint = read_hint(table, Segment("NO", "cellular_3g", "tv"))
    assert tv_hint is not None
    assert tv_hint["throughput"]["level"] == "rnd" and tv_hint["throughput"]["samples"] == 240
    assert tv_hint["throughput"]["quantiles_kbps"]["p50"] == pytest.approx(2000.0, rel=0.01)
    # a segment never seen (Sweden) gets the network's hint, computed over all cellular_3g
    unseen = read_hint(table, Segment("SE", "cellular_3g", "web"))
    assert unseen is not None
    assert unseen["segment"] == {"network": "cellular_3g"} and unseen["level"] == "n"
    assert unseen["throughput"]["samples"] == 260
    assert read_hint(table, Segment("SE", "wifi", "web")) is not None  # the "all" hint
    assert read_hint(MemoryTable(), NO_MOBILE) is None


def test_hints_are_not_republished_within_the_refresh_period() -> None:
    table = MemoryTable()
    aggregate(table, records([heartbeat("s1", 1, 800.0)]), NOW)
    assert len(publish_hints(table, [NO_MOBILE], NOW)) == 4  # the segment and 3 coarser ones
    assert publish_hints(table, [NO_MOBILE], NOW + timedelta(seconds=299)) == []
    assert len(publish_hints(table, [NO_MOBILE], NOW + timedelta(seconds=300))) == 4


def test_startup_bitrate_by_hand() -> None:
    config = HintConfig()
    # 1 Mbps early throughput: 300 kbps scores 0.3 - 4.3*4*0.3/1 - |0.75 - 0.3| = -5.31,
    # 750 kbps scores 0.75 - 12.9 - 0 = -12.15: start low
    bitrate, value = startup_bitrate(QuantileSketch.of([1000.0] * 50), 1.0, config)
    assert bitrate == 300 and value == pytest.approx(-5.31, rel=0.01)
    # 40 Mbps: 4300 kbps scores 4.3 - 4.3*4*4.3/40 = 2.451, 300 kbps 0.3 - 0.129 - 4.0
    bitrate, value = startup_bitrate(QuantileSketch.of([40_000.0] * 50), 1.0, config)
    assert bitrate == 4300 and value == pytest.approx(2.451, rel=0.01)


def test_buffer_target_and_discount_from_the_ratio_distribution() -> None:
    stats = SegmentStats()
    for v in [0.5] * 10 + [0.9] * 60 + [1.0] * 230:
        stats.ratio.add(v)
    stats.last_at = NOW - timedelta(seconds=90)
    hint = compute_hint(NO_MOBILE, [("rnd", stats)], NOW, HintConfig())
    # p02 is rank 0.02 * 299 = 5 -> 0.5: a 4 s chunk needs 4 / 0.5 = 8 s of buffer
    assert hint["buffer"]["drop_ratio"] == pytest.approx(0.5, rel=0.01)
    assert hint["buffer"]["target_s"] == pytest.approx(8.0, rel=0.01)
    # p20 is rank 59 -> 0.9
    assert hint["prediction"]["discount"] == pytest.approx(0.9, rel=0.01)
    assert hint["prediction"]["samples"] == 300 and hint["prediction"]["age_s"] == 90.0
    assert "throughput" not in hint and "startup" not in hint  # no data: no made-up prior
