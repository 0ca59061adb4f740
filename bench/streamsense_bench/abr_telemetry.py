"""Telemetry from simulated sessions, in the product's event contract and Kinesis's shapes.

A session played in the simulator becomes what a real player would have sent: a
``playback_start`` when playback began (with its startup delay) and a ``playback_heartbeat``
after every chunk (the chunk's measured throughput, bitrate, stall and buffer). The events are
serialized with ``streamsense.events.dump_event`` and wrapped as Kinesis records exactly as
Lambda delivers them (base64 data, shard id and sequence number in ``eventID``), partitioned by
account id over the playback stream's shards as Kinesis does (MD5 of the partition key over
equal hash-key ranges)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from streamsense.events import (
    DeviceContext,
    DeviceType,
    NetworkContext,
    NetworkType,
    PlaybackHeartbeat,
    PlaybackHeartbeatPayload,
    PlaybackStart,
    PlaybackStartPayload,
    QoE,
    dump_event,
)

from streamsense_bench.abr_sim import SessionLog

STREAM_ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/streamsense-playback"


@dataclass(frozen=True)
class Population:
    """Who plays a trace family: one segment of the service's traffic."""

    country: str
    network_type: NetworkType
    device_type: DeviceType
    asn: int
    lat: float
    lon: float
    audio_language: str


def session_events(
    log: SessionLog, population: Population, session_no: int, started_at: datetime, family: str
) -> list[PlaybackStart | PlaybackHeartbeat]:
    account = f"acct-{family}-{session_no:05d}"
    session = f"sess-{family}-{session_no:05d}"
    device = DeviceContext(
        device_id=f"dev-{family}-{session_no:05d}", device_type=population.device_type
    )
    network = NetworkContext(
        ip=f"198.51.{session_no % 200}.{session_no % 250 + 1}",
        asn=population.asn,
        country=population.country,
        lat=population.lat,
        lon=population.lon,
    )
    events: list[PlaybackStart | PlaybackHeartbeat] = [
        PlaybackStart(
            type="playback_start",
            version=1,
            event_id=f"{session}-start",
            occurred_at=started_at + timedelta(seconds=log.startup_s),
            account_id=account,
            payload=PlaybackStartPayload(
                session_id=session,
                profile_id="p1",
                title_id="envivio",
                device=device,
                network=network,
                network_type=population.network_type,
                startup_ms=round(log.startup_s * 1000),
                audio_language=population.audio_language,
                subtitle_language="off",
            ),
        )
    ]
    for k in range(len(log.levels)):
        arrived = log.request_at_s[k] + log.download_s[k]
        events.append(
            PlaybackHeartbeat(
                type="playback_heartbeat",
                version=1,
                event_id=f"{session}-hb{k:03d}",
                occurred_at=started_at + timedelta(seconds=arrived),
                account_id=account,
                payload=PlaybackHeartbeatPayload(
                    session_id=session,
                    profile_id="p1",
                    title_id="envivio",
                    device=device,
                    network=network,
                    network_type=population.network_type,
                    position_s=round(log.position_s[k], 3),
                    qoe=QoE(
                        throughput_kbps=round(log.throughput_kbps[k], 1),
                        bitrate_kbps=log.bitrates_kbps[k],
                        rebuffer_ms=round(log.rebuffer_s[k] * 1000),
                        buffer_s=round(log.buffer_after_s[k], 3),
                    ),
                ),
            )
        )
    return events


def shard_of(partition_key: str, shards: int) -> int:
    """Kinesis maps MD5(partition key) as a 128-bit integer onto equal hash-key ranges."""
    h = int.from_bytes(hashlib.md5(partition_key.encode()).digest(), "big")
    return min(h * shards >> 128, shards - 1)


def kinesis_record(
    data: str, partition_key: str, shard: int, sequence: int, at_s: float
) -> dict[str, Any]:
    """One record as Lambda's Kinesis event source delivers it."""
    shard_id = f"shardId-{shard:012d}"
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": partition_key,
            "sequenceNumber": str(sequence),
            "data": base64.b64encode(data.encode()).decode(),
            "approximateArrivalTimestamp": at_s,
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{shard_id}:{sequence}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": "arn:aws:iam::123456789012:role/streamsense-function",
        "awsRegion": "us-east-1",
        "eventSourceARN": STREAM_ARN,
    }


FIRST_SEQUENCE = 49_650_000_000_000_000_000_000_000_000_000_000_000_000_000


def kinesis_batches(
    events: Sequence[PlaybackStart | PlaybackHeartbeat], *, shards: int = 2, batch_size: int = 1000
) -> Iterator[dict[str, Any]]:
    """Lambda Kinesis events, per shard in arrival (occurred_at) order, ``batch_size`` records
    each; sequence numbers increase per shard as Kinesis assigns them."""
    per_shard: list[list[dict[str, Any]]] = [[] for _ in range(shards)]
    for e in sorted(events, key=lambda e: (e.occurred_at, e.event_id)):
        s = shard_of(e.account_id, shards)
        seq = FIRST_SEQUENCE + len(per_shard[s]) * 10
        per_shard[s].append(
            kinesis_record(dump_event(e), e.account_id, s, seq, e.occurred_at.timestamp())
        )
    for records in per_shard:
        for i in range(0, len(records), batch_size):
            yield {"Records": records[i : i + batch_size]}
