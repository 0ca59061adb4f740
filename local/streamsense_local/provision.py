"""Create every resource a System declares on moto, and read the provisioned stack back.

Each function gets an IAM role whose inline policy is ``infra.access.policy_statements`` (the
CDK stack attaches the same statements) and temporary credentials from AssumeRole; S3 triggers
become bucket notifications to an internal queue that the runtime polls, which is where Lambda's
own asynchronous-invoke queue would be.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from infra.access import policy_statements
from infra.system import Function, Queue, S3Trigger, System
from streamsense_local.naming import Naming

S3_EVENTS_QUEUE = "s3-events"


@dataclass
class Provisioned:
    queue_urls: dict[str, str] = field(default_factory=dict)  # logical name -> URL
    internal_queue_urls: dict[str, str] = field(default_factory=dict)
    credentials: dict[str, dict[str, str]] = field(default_factory=dict)  # function -> keys
    policies: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    s3_configurations: dict[str, tuple[str, int]] = field(default_factory=dict)  # config id -> (function, trigger index)


def s3_configuration_id(fn: Function, index: int) -> str:
    return f"{fn.name}-trigger-{index}"


def _dlq_first(system: System) -> list[Queue]:
    # A redrive policy names an existing queue's ARN.
    return sorted(system.queues, key=lambda q: q.dead_letter_queue is not None)


def _create_queue(sqs: Any, naming: Naming, queue: Queue) -> str:
    attributes = {
        "VisibilityTimeout": str(queue.visibility_timeout_s),
        "MessageRetentionPeriod": str(queue.retention_s),
    }
    if queue.dead_letter_queue:
        attributes["RedrivePolicy"] = json.dumps(
            {
                "deadLetterTargetArn": naming.arn("queue", queue.dead_letter_queue),
                "maxReceiveCount": queue.max_receive_count,
            }
        )
    return str(sqs.create_queue(QueueName=naming.physical("queue", queue.name), Attributes=attributes)["QueueUrl"])


def provision(system: System, naming: Naming, clients: dict[str, Any]) -> Provisioned:
    out = Provisioned()
    kinesis, dynamodb, s3, sqs, iam, sts = (
        clients[k] for k in ("kinesis", "dynamodb", "s3", "sqs", "iam", "sts")
    )
    for stream in system.streams:
        name = naming.physical("stream", stream.name)
        kinesis.create_stream(StreamName=name, ShardCount=stream.shards, StreamModeDetails={"StreamMode": "PROVISIONED"})
        if stream.retention_hours > 24:
            kinesis.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=stream.retention_hours)
    for table in system.tables:
        name = naming.physical("table", table.name)
        dynamodb.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        if table.ttl_attribute:
            dynamodb.update_time_to_live(
                TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": table.ttl_attribute}
            )
    for bucket in system.buckets:
        name = naming.physical("bucket", bucket.name)
        s3.create_bucket(Bucket=name)
        if bucket.versioned:
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        rule: dict[str, Any] = {"ID": "retention", "Status": "Enabled", "Filter": {"Prefix": ""}}
        if bucket.expire_after_days:
            rule["Expiration"] = {"Days": bucket.expire_after_days}
        if bucket.versioned:
            rule["NoncurrentVersionExpiration"] = {"NoncurrentDays": bucket.noncurrent_expire_days}
        if len(rule) > 3:
            s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": [rule]})
    for queue in _dlq_first(system):
        out.queue_urls[queue.name] = _create_queue(sqs, naming, queue)
    internal = naming.internal_queue(S3_EVENTS_QUEUE)
    out.internal_queue_urls[S3_EVENTS_QUEUE] = sqs.create_queue(QueueName=internal)["QueueUrl"]

    notifications: dict[str, list[dict[str, Any]]] = {}
    for fn in system.functions:
        for index, trigger in enumerate(fn.triggers):
            if not isinstance(trigger, S3Trigger):
                continue
            rules = [{"Name": "prefix", "Value": trigger.prefix}] if trigger.prefix else []
            if trigger.suffix:
                rules.append({"Name": "suffix", "Value": trigger.suffix})
            config_id = s3_configuration_id(fn, index)
            out.s3_configurations[config_id] = (fn.name, index)
            notifications.setdefault(trigger.bucket, []).append(
                {
                    "Id": config_id,
                    "QueueArn": naming.arn_of_physical("queue", internal),
                    "Events": ["s3:ObjectCreated:*"],
                    **({"Filter": {"Key": {"FilterRules": rules}}} if rules else {}),
                }
            )
    for bucket_name, configs in notifications.items():
        s3.put_bucket_notification_configuration(
            Bucket=naming.physical("bucket", bucket_name),
            NotificationConfiguration={"QueueConfigurations": configs},
        )

    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
    }
    for fn in system.functions:
        statements = policy_statements(system, fn, naming.arn)
        out.policies[fn.name] = statements
        role = naming.role_name(fn.name)
        iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust), MaxSessionDuration=43200)
        iam.put_role_policy(
            RoleName=role,
            PolicyName="declared-access",
            PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements}),
        )
        creds = sts.assume_role(RoleArn=naming.role_arn(fn.name), RoleSessionName=naming.function_name(fn.name), DurationSeconds=43200)["Credentials"]
        out.credentials[fn.name] = {
            "AWS_ACCESS_KEY_ID": creds["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
            "AWS_SESSION_TOKEN": creds["SessionToken"],
        }
    return out


def clear_data(system: System, naming: Naming, clients: dict[str, Any], provisioned: Provisioned) -> None:
    """Empty every stream, table, bucket and queue; roles, credentials and notification
    configurations stay as they are."""
    kinesis, dynamodb, s3, sqs = (clients[k] for k in ("kinesis", "dynamodb", "s3", "sqs"))
    for stream in system.streams:
        name = naming.physical("stream", stream.name)
        kinesis.delete_stream(StreamName=name, EnforceConsumerDeletion=True)
        kinesis.create_stream(StreamName=name, ShardCount=stream.shards, StreamModeDetails={"StreamMode": "PROVISIONED"})
        if stream.retention_hours > 24:
            kinesis.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=stream.retention_hours)
    for table in system.tables:
        name = naming.physical("table", table.name)
        keys: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"TableName": name, "ProjectionExpression": "pk, sk"}
        while True:
            resp = dynamodb.scan(**kwargs)
            keys.extend({"pk": i["pk"], "sk": i["sk"]} for i in resp.get("Items", []))
            if not resp.get("LastEvaluatedKey"):
                break
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
        for i in range(0, len(keys), 25):
            dynamodb.batch_write_item(RequestItems={name: [{"DeleteRequest": {"Key": k}} for k in keys[i : i + 25]]})
    for bucket in system.buckets:
        name = naming.physical("bucket", bucket.name)
        paginator = s3.get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=name):
            doomed = [
                {"Key": v["Key"], "VersionId": v["VersionId"]}
                for v in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
            ]
            for i in range(0, len(doomed), 1000):
                s3.delete_objects(Bucket=name, Delete={"Objects": doomed[i : i + 1000], "Quiet": True})
    # PurgeQueue is allowed once a minute and skips nothing in flight: recreate instead (same URL).
    for queue in reversed(_dlq_first(system)):
        sqs.delete_queue(QueueUrl=provisioned.queue_urls[queue.name])
    for queue in _dlq_first(system):
        provisioned.queue_urls[queue.name] = _create_queue(sqs, naming, queue)
    for purpose, url in provisioned.internal_queue_urls.items():
        sqs.delete_queue(QueueUrl=url)
        provisioned.internal_queue_urls[purpose] = str(sqs.create_queue(QueueName=naming.internal_queue(purpose))["QueueUrl"])


def _sorted_dicts(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(items, key=lambda d: json.dumps(d, sort_keys=True))


def read_back(system: System, naming: Naming, clients: dict[str, Any], queue_urls: dict[str, str]) -> dict[str, Any]:
    """streams/tables/buckets/queues as moto reports them, by logical name."""
    kinesis, dynamodb, s3, sqs = (clients[k] for k in ("kinesis", "dynamodb", "s3", "sqs"))
    streams = {}
    for stream in system.streams:
        summary = kinesis.describe_stream_summary(StreamName=naming.physical("stream", stream.name))
        streams[stream.name] = {"shards": int(summary["StreamDescriptionSummary"]["OpenShardCount"])}
    tables = {}
    for table in system.tables:
        ttl = dynamodb.describe_time_to_live(TableName=naming.physical("table", table.name))["TimeToLiveDescription"]
        enabled = ttl.get("TimeToLiveStatus") in ("ENABLED", "ENABLING")
        tables[table.name] = {"ttl_attribute": ttl.get("AttributeName") if enabled else None}
    buckets = {}
    for bucket in system.buckets:
        status = s3.get_bucket_versioning(Bucket=naming.physical("bucket", bucket.name)).get("Status")
        buckets[bucket.name] = {"versioned": status == "Enabled"}
    by_arn = {naming.arn("queue", q.name): q.name for q in system.queues}
    queues = {}
    for queue in system.queues:
        attrs = sqs.get_queue_attributes(QueueUrl=queue_urls[queue.name], AttributeNames=["All"])["Attributes"]
        redrive = json.loads(attrs["RedrivePolicy"]) if attrs.get("RedrivePolicy") else None
        queues[queue.name] = {
            "visibility_timeout_s": int(attrs["VisibilityTimeout"]),
            "retention_s": int(attrs["MessageRetentionPeriod"]),
            "dead_letter_queue": by_arn.get(redrive["deadLetterTargetArn"]) if redrive else None,
            "max_receive_count": int(redrive["maxReceiveCount"]) if redrive else None,
        }
    return {"streams": streams, "tables": tables, "buckets": buckets, "queues": queues}


def bucket_notification_filters(s3: Any, bucket_physical: str) -> dict[str, dict[str, str]]:
    """config id -> {"prefix", "suffix"} as the bucket's notification configuration says."""
    config = s3.get_bucket_notification_configuration(Bucket=bucket_physical)
    out: dict[str, dict[str, str]] = {}
    for qc in config.get("QueueConfigurations", []):
        rules = {r["Name"].lower(): r["Value"] for r in qc.get("Filter", {}).get("Key", {}).get("FilterRules", [])}
        out[qc["Id"]] = {"prefix": rules.get("prefix", ""), "suffix": rules.get("suffix", "")}
    return out


__all__ = ["Provisioned", "_sorted_dicts", "bucket_notification_filters", "clear_data", "provision", "read_back", "s3_configuration_id"]
