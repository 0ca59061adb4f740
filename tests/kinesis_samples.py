"""What each record of a Kinesis sample event (events/<function>/*.json) comes to when parsed:
"ok", "undecodable", or the BadEvent reason. Shared by the sample tests of every playback
consumer; checks the AWS record shape on the way (event id, stream ARN, partition key)."""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path

from streamsense.events import BadEvent, parse_event


def outcomes(path: Path, stream: str = "playback") -> list[str]:
    out = []
    for r in json.loads(path.read_text())["Records"]:
        k = r["kinesis"]
        assert r["eventID"] == f"shardId-000000000000:{k['sequenceNumber']}"
        assert r["eventSourceARN"].endswith(f":stream/streamsense-local-{stream}")
        try:
            data = base64.b64decode(k["data"], validate=True)
        except (binascii.Error, ValueError):
            out.append("undecodable")
            continue
        try:
            event = parse_event(data)
        except BadEvent as exc:
            out.append(exc.reason)
            continue
        assert event.account_id == k["partitionKey"]
        out.append("ok")
    return out
