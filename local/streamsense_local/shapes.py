"""Exactly the JSON documents AWS hands to a function or to an on-failure destination:
Kinesis and SQS event-source batches, EventBridge scheduled events, and the invocation
records Lambda sends when it gives up on a stream batch or an asynchronous invoke.
(S3 notification records are built by moto, patched to AWS's full shape in server.py.)"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from streamsense_local.clock import iso_millis, iso_seconds


@dataclass(frozen=True)
class StreamRecord:
    """A Kinesis record as read from the shard (data kept base64-encoded, as it travels)."""

    shard_id: str
    sequence_number: str
    partition_key: str
    data_b64: str
    arrival: float  # epoch seconds (ApproximateArrivalTimestamp)

    @property
    def data(self) -> bytes:
        return base64.b64decode(self.data_b64)

    def event_bytes(self) -> int:
        """Its share of an invocation payload (Lambda caps a payload at 6 MB)."""
        return len(self.data_b64) + len(self.partition_key) + 400


def kinesis_event(
    records: Sequence[StreamRecord], stream_arn: str, region: str, role_arn: str
) -> dict[str, Any]:
    return {
        "Records": [
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": r.partition_key,
                    "sequenceNumber": r.sequence_number,
                    "data": r.data_b64,
                    "approximateArrivalTimestamp": round(r.arrival, 3),
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"{r.shard_id}:{r.sequence_number}",
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": role_arn,
                "awsRegion": region,
                "eventSourceARN": stream_arn,
            }
            for r in records
        ]
    }


def _lambda_message_attributes(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """SQS's MessageAttributes as Lambda spells them (lower camel case, list fields present)."""
    out: dict[str, Any] = {}
    for name, value in attrs.items():
        item: dict[str, Any] = {"stringListValues": [], "binaryListValues": [], "dataType": value["DataType"]}
        if "StringValue" in value:
            item["stringValue"] = value["StringValue"]
        if "BinaryValue" in value:
            item["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode("ascii")
        out[name] = item
    return out


def sqs_event(messages: Sequence[Mapping[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    """``messages`` as ReceiveMessage returned them (AttributeNames=All, MessageAttributeNames=All)."""
    records = []
    for m in messages:
        attrs = m.get("Attributes", {})
        keep = ("ApproximateReceiveCount", "SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp")
        records.append(
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": {k: str(attrs[k]) for k in keep if k in attrs},
                "messageAttributes": _lambda_message_attributes(m.get("MessageAttributes", {})),
                "md5OfBody": m.get("MD5OfBody") or hashlib.md5(m["Body"].encode()).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
        )
    return {"Records": records}


def scheduled_event(rule_arn: str, region: str, account: str, when: float) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account,
        "time": iso_seconds(when),
        "region": region,
        "resources": [rule_arn],
        "detail": {},
    }


def kinesis_failure_record(
    *,
    function_arn: str,
    condition: str,
    invoke_count: int,
    function_error: str | None,
    records: Sequence[StreamRecord],
    stream_arn: str,
    now: float,
) -> dict[str, Any]:
    """What Lambda sends to a stream mapping's on-failure destination: a pointer to the
    discarded range of the shard, never the records themselves."""
    response: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
    if function_error:
        response["functionError"] = function_error
    return {
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "functionArn": function_arn,
            "condition": condition,
            "approximateInvokeCount": invoke_count,
        },
        "responseContext": response,
        "version": "1.0",
        "timestamp": iso_millis(now),
        "KinesisBatchInfo": {
            "shardId": records[0].shard_id,
            "startSequenceNumber": records[0].sequence_number,
            "endSequenceNumber": records[-1].sequence_number,
            "approximateArrivalOfFirstRecord": iso_millis(records[0].arrival),
            "approximateArrivalOfLastRecord": iso_millis(records[-1].arrival),
            "batchSize": len(records),
            "streamArn": stream_arn,
        },
    }


def async_failure_record(
    *,
    function_arn: str,
    request_id: str,
    condition: str,
    invoke_count: int,
    request_payload: Any,
    last_error: Mapping[str, Any] | None,
    now: float,
) -> dict[str, Any]:
    """What Lambda sends to an asynchronous invocation's on-failure destination."""
    record: dict[str, Any] = {
        "version": "1.0",
        "timestamp": iso_millis(now),
        "requestContext": {
            "requestId": request_id,
            "functionArn": f"{function_arn}:$LATEST",
            "condition": condition,
            "approximateInvokeCount": invoke_count,
        },
        "requestPayload": request_payload,
    }
    if last_error is not None:  # absent when the event expired before any attempt
        record["responseContext"] = {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"}
        record["responsePayload"] = dict(last_error)
    return record
