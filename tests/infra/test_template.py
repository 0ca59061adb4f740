"""The synthesized template, resource by resource: every SYSTEM entry is there with its
reliability and security settings, IAM is exactly the declared access, and the stages differ
where they should (removal policies, stream mode, names)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from infra.access import effective_access, policy_statements
from infra.stack import terminal_queues
from infra.system import SYSTEM, KinesisTrigger, S3Trigger, ScheduleTrigger, SqsTrigger

if TYPE_CHECKING:
    from tests.infra.conftest import Synth

SERVICE = {"stream": "kinesis", "table": "dynamodb", "bucket": "s3", "queue": "sqs"}


def ref(logical: str) -> dict[str, str]:
    return {"Ref": logical}


def arn(logical: str) -> dict[str, list[str]]:
    return {"Fn::GetAtt": [logical, "Arn"]}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def expand(statements: list[dict[str, Any]]) -> set[tuple[str, str, str, str]]:
    """Statements as (effect, action, resource, condition) grants, so CDK's statement merging
    (minimizePolicies) does not matter."""
    out = set()
    for st in statements:
        cond = json.dumps(st.get("Condition"), sort_keys=True)
        for action in as_list(st["Action"]):
            for resource in as_list(st["Resource"]):
                out.add((st["Effect"], action, json.dumps(resource, sort_keys=True), cond))
    return out


def key_logical(s: Synth) -> str:
    (logical,) = s.of_type("AWS::KMS::Key")
    return logical


# ---- resources ---------------------------------------------------------------------------------


def test_every_system_resource_is_in_the_template_once(dev: Synth) -> None:
    assert set(dev.named("stream")) == {x.name for x in SYSTEM.streams}
    assert set(dev.named("table")) == {x.name for x in SYSTEM.tables}
    assert set(dev.named("bucket")) == {x.name for x in SYSTEM.buckets}
    assert set(dev.named("queue")) == {x.name for x in SYSTEM.queues}
    assert set(dev.named("function")) == {x.name for x in SYSTEM.functions}
    # Beyond SYSTEM: the access-logs bucket and CDK's bucket-notification / auto-delete handlers.
    assert len(dev.of_type("AWS::Kinesis::Stream")) == len(SYSTEM.streams)
    assert len(dev.of_type("AWS::DynamoDB::Table")) == len(SYSTEM.tables)
    assert len(dev.of_type("AWS::S3::Bucket")) == len(SYSTEM.buckets) + 1
    assert len(dev.of_type("AWS::SQS::Queue")) == len(SYSTEM.queues)
    assert len(dev.of_type("AWS::Lambda::Function")) == len(SYSTEM.functions) + 2


def test_streams_kms_retention_and_dev_shards(dev: Synth) -> None:
    key = key_logical(dev)
    for spec in SYSTEM.streams:
        _, res = dev.named("stream")[spec.name]
        props = res["Properties"]
        assert props["StreamEncryption"] == {"EncryptionType": "KMS", "KeyId": arn(key)}
        assert props["RetentionPeriodHours"] == spec.retention_hours
        assert props["ShardCount"] == spec.shards
        assert props["StreamModeDetails"] == {"StreamMode": "PROVISIONED"}
        assert res["DeletionPolicy"] == "Delete"


def test_prod_streams_are_on_demand_and_retained(prod: Synth) -> None:
    for spec in SYSTEM.streams:
        _, res = prod.named("stream")[spec.name]
        assert res["Properties"]["StreamModeDetails"] == {"StreamMode": "ON_DEMAND"}
        assert "ShardCount" not in res["Properties"]
        assert res["DeletionPolicy"] == "Retain"


def test_tables_keys_billing_pitr_ttl_kms(dev: Synth, prod: Synth) -> None:
    key = key_logical(dev)
    for spec in SYSTEM.tables:
        _, res = dev.named("table")[spec.name]
        props = res["Properties"]
        assert props["KeySchema"] == [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ]
        assert props["AttributeDefinitions"] == [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ]
        assert props["BillingMode"] == "PAY_PER_REQUEST"
        assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
        assert props["SSESpecification"] == {
            "KMSMasterKeyId": arn(key),
            "SSEEnabled": True,
            "SSEType": "KMS",
        }
        assert res["DeletionPolicy"] == "Delete"
        assert props.get("DeletionProtectionEnabled") is not True
        _, prod_res = prod.named("table")[spec.name]
        assert prod_res["DeletionPolicy"] == "Retain"
        assert prod_res["UpdateReplacePolicy"] == "Retain"
        assert prod_res["Properties"]["DeletionProtectionEnabled"] is True


def test_buckets_encryption_public_access_versioning_lifecycle_logging(dev: Synth) -> None:
    key = key_logical(dev)
    logs_bucket = [
        k
        for k, v in dev.of_type("AWS::S3::Bucket").items()
        if "streamsense:name" not in (v.get("Metadata") or {})
    ]
    assert len(logs_bucket) == 1
    for spec in SYSTEM.buckets:
        _, res = dev.named("bucket")[spec.name]
        props = res["Properties"]
        assert props["BucketEncryption"] == {
            "ServerSideEncryptionConfiguration": [
                {
                    "BucketKeyEnabled": True,
                    "ServerSideEncryptionByDefault": {
                        "KMSMasterKeyID": arn(key),
                        "SSEAlgorithm": "aws:kms",
                    },
                }
            ]
        }
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }
        assert props["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
        assert ("VersioningConfiguration" in props) == spec.versioned
        if spec.versioned:
            assert props["VersioningConfiguration"] == {"Status": "Enabled"}
        rules = {r["Id"]: r for r in props["LifecycleConfiguration"]["Rules"]}
        assert rules["abort-incomplete-uploads"]["AbortIncompleteMultipartUpload"] == {
            "DaysAfterInitiation": 7
        }
        if spec.expire_after_days:
            assert rules["expire-current"]["ExpirationInDays"] == spec.expire_after_days
        else:
            assert "expire-current" not in rules
        assert rules["expire-noncurrent"]["NoncurrentVersionExpiration"] == {
            "NoncurrentDays": spec.noncurrent_expire_days
        }
        assert props["LoggingConfiguration"] == {
            "DestinationBucketName": ref(logs_bucket[0]),
            "LogFilePrefix": f"{spec.name}/",
        }


def test_current_lifecycle_values(dev: Synth) -> None:
    # The declared values, spelled out: exports expire after 90 days, hints after 30, models never.
    def rules(name: str) -> dict[str, Any]:
        return {
            r["Id"]: r
            for r in dev.named("bucket")[name][1]["Properties"]["LifecycleConfiguration"]["Rules"]
        }

    assert rules("exports")["expire-current"]["ExpirationInDays"] == 90
    assert rules("hints")["expire-current"]["ExpirationInDays"] == 30
    assert "expire-current" not in rules("models")
    assert rules("models")["expire-noncurrent"]["NoncurrentVersionExpiration"] == {
        "NoncurrentDays": 30
    }


def test_buckets_and_queues_deny_plain_http(dev: Synth) -> None:
    def denies_http(policy: dict[str, Any]) -> bool:
        return any(
            st["Effect"] == "Deny"
            and st.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
            for st in policy["PolicyDocument"]["Statement"]
        )

    def denies_old_tls(policy: dict[str, Any]) -> bool:
        return any(
            st["Effect"] == "Deny"
            and st.get("Condition") == {"NumericLessThan": {"s3:TlsVersion": 1.2}}
            for st in policy["PolicyDocument"]["Statement"]
        )

    bucket_policies = {
        json.dumps(p["Properties"]["Bucket"]): p["Properties"]
        for p in dev.of_type("AWS::S3::BucketPolicy").values()
    }
    for logical in dev.of_type("AWS::S3::Bucket"):
        policy = bucket_policies[json.dumps(ref(logical))]
        assert denies_http(policy) and denies_old_tls(policy), logical
    queue_policies = [p["Properties"] for p in dev.of_type("AWS::SQS::QueuePolicy").values()]
    for name, (logical, _) in dev.named("queue").items():
        matching = [p for p in queue_policies if ref(logical) in p["Queues"]]
        assert len(matching) == 1 and denies_http(matching[0]), name


def test_access_logs_bucket(dev: Synth) -> None:
    (logical,) = [
        k
        for k, v in dev.of_type("AWS::S3::Bucket").items()
        if "streamsense:name" not in (v.get("Metadata") or {})
    ]
    props = dev.resources[logical]["Properties"]
    # S3 server access logging cannot write to SSE-KMS buckets.
    assert props["BucketEncryption"] == {
        "ServerSideEncryptionConfiguration": [
            {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
        ]
    }
    assert props["PublicAccessBlockConfiguration"]["BlockPublicPolicy"] is True
    assert props["LifecycleConfiguration"]["Rules"][0]["ExpirationInDays"] == 30


def test_queues_kms_timeouts_retention_redrive(dev: Synth) -> None:
    key = key_logical(dev)
    for spec in SYSTEM.queues:
        _, res = dev.named("queue")[spec.name]
        props = res["Properties"]
        assert props["KmsMasterKeyId"] == arn(key)
        assert props["KmsDataKeyReusePeriodSeconds"] == 900
        assert props["VisibilityTimeout"] == spec.visibility_timeout_s
        assert props["MessageRetentionPeriod"] == spec.retention_s
        if spec.dead_letter_queue:
            assert props["RedrivePolicy"] == {
                "deadLetterTargetArn": arn(dev.logical("queue", spec.dead_letter_queue)),
                "maxReceiveCount": spec.max_receive_count,
            }
        else:
            assert "RedrivePolicy" not in props
    props = dev.named("queue")["investigations"][1]["Properties"]
    assert (props["VisibilityTimeout"], props["RedrivePolicy"]["maxReceiveCount"]) == (360, 3)


def test_kms_key_rotation_and_removal(dev: Synth, prod: Synth) -> None:
    key = dev.resources[key_logical(dev)]
    assert key["Properties"]["EnableKeyRotation"] is True
    assert key["Properties"]["PendingWindowInDays"] == 7
    assert key["DeletionPolicy"] == "Delete"
    prod_key = prod.resources[key_logical(prod)]
    assert prod_key["DeletionPolicy"] == "Retain"
    assert prod_key["Properties"]["PendingWindowInDays"] == 30
    statements = key["Properties"]["KeyPolicy"]["Statement"]
    cloudwatch = [
        s for s in statements if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert len(cloudwatch) == 1
    assert sorted(cloudwatch[0]["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert cloudwatch[0]["Condition"] == {
        "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    }


# ---- functions -----------------------------------------------------------------------------------


def test_functions_runtime_size_env_layers_tracing(dev: Synth) -> None:
    layers = {meta_name: logical for meta_name, (logical, _) in dev.named("layer").items()}
    for fn in SYSTEM.functions:
        _logical, res = dev.named("function")[fn.name]
        props = res["Properties"]
        assert props["Runtime"] == "python3.12"
        assert props["Handler"] == "handler.lambda_handler"
        assert props["Architectures"] == [fn.architecture]
        assert props["MemorySize"] == fn.memory_mb
        assert props["Timeout"] == fn.timeout_s
        assert props["TracingConfig"] == {"Mode": "Active"}
        assert props.get("ReservedConcurrentExecutions") == fn.reserved_concurrency
        env = props["Environment"]["Variables"]
        expected_env: dict[str, Any] = {
            "POWERTOOLS_SERVICE_NAME": fn.name,
            "POWERTOOLS_METRICS_NAMESPACE": "streamsense",
            "POWERTOOLS_LOG_LEVEL": "INFO",
            "POWERTOOLS_LOGGER_LOG_EVENT": "false",
            **fn.environment,
        }
        for access in fn.access:
            kind = SYSTEM.resource_kind(access.resource)
            # Ref is the table/bucket/stream name and the queue URL.
            expected_env[f"{kind.upper()}_{access.resource.upper()}"] = ref(
                dev.logical(kind, access.resource)
            )
        assert env == expected_env, fn.name
        wanted = {f"{name}-{fn.architecture}" if name != "model" else "model" for name in fn.layers}
        assert sorted(json.dumps(x) for x in props["Layers"]) == sorted(
            json.dumps(ref(layers[k])) for k in wanted
        )
        log_group = props["LoggingConfig"]["LogGroup"]["Ref"]
        assert dev.resources[log_group]["Properties"]["RetentionInDays"] == 14


def test_fraud_scorer_env_spelled_out(dev: Synth) -> None:
    env = dev.named("function")["fraud_scorer"][1]["Properties"]["Environment"]["Variables"]
    assert sorted(env) == [
        "BUCKET_MODELS",
        "POWERTOOLS_LOGGER_LOG_EVENT",
        "POWERTOOLS_LOG_LEVEL",
        "POWERTOOLS_METRICS_NAMESPACE",
        "POWERTOOLS_SERVICE_NAME",
        "QUEUE_INVESTIGATIONS",
        "QUEUE_QUARANTINE",
        "TABLE_DECISIONS",
        "TABLE_FRAUD_STATE",
    ]


def test_layers_compatible_runtime_and_architecture(dev: Synth) -> None:
    layers = dev.named("layer")
    assert set(layers) == {"ml-x86_64", "shared-x86_64", "model"}
    for name, (_, res) in layers.items():
        props = res["Properties"]
        assert props["CompatibleRuntimes"] == ["python3.12"]
        assert props["CompatibleArchitectures"] == (
            ["x86_64", "arm64"] if name == "model" else ["x86_64"]
        )


def test_kinesis_mappings_reliability_settings(dev: Synth) -> None:
    mappings = dev.of_type("AWS::Lambda::EventSourceMapping").values()
    for fn in SYSTEM.functions:
        fn_ref = ref(dev.logical("function", fn.name))
        for t in fn.triggers:
            if not isinstance(t, KinesisTrigger):
                continue
            source = arn(dev.logical("stream", t.stream))
            (m,) = [
                m["Properties"]
                for m in mappings
                if m["Properties"]["FunctionName"] == fn_ref
                and m["Properties"]["EventSourceArn"] == source
            ]
            assert {k: v for k, v in m.items() if k != "Tags"} == {
                "FunctionName": fn_ref,
                "EventSourceArn": source,
                "BatchSize": t.batch_size,
                "MaximumBatchingWindowInSeconds": t.batching_window_s,
                "StartingPosition": t.starting_position,
                "BisectBatchOnFunctionError": t.bisect_on_error,
                "MaximumRetryAttempts": t.max_retries,
                "MaximumRecordAgeInSeconds": t.max_record_age_s,
                "ParallelizationFactor": t.parallelization_factor,
                "FunctionResponseTypes": ["ReportBatchItemFailures"],
                "DestinationConfig": {
                    "OnFailure": {"Destination": arn(dev.logical("queue", t.on_failure))}
                },
            }, fn.name


def test_fraud_scorer_mapping_values_spelled_out(dev: Synth) -> None:
    fn_ref = ref(dev.logical("function", "fraud_scorer"))
    activity = next(
        m["Properties"]
        for m in dev.of_type("AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"] == fn_ref
        and m["Properties"]["EventSourceArn"] == arn(dev.logical("stream", "activity"))
    )
    assert (
        activity["BatchSize"],
        activity["MaximumRetryAttempts"],
        activity["MaximumRecordAgeInSeconds"],
    ) == (500, 3, 21600)
    assert activity["BisectBatchOnFunctionError"] is True


def test_sqs_mappings(dev: Synth) -> None:
    mappings = dev.of_type("AWS::Lambda::EventSourceMapping").values()
    count = 0
    for fn in SYSTEM.functions:
        for t in fn.triggers:
            if isinstance(t, SqsTrigger):
                count += 1
                source = arn(dev.logical("queue", t.queue))
                (m,) = [
                    m["Properties"] for m in mappings if m["Properties"]["EventSourceArn"] == source
                ]
                assert m["FunctionName"] == ref(dev.logical("function", fn.name))
                assert m["BatchSize"] == t.batch_size
                assert m["MaximumBatchingWindowInSeconds"] == t.batching_window_s
                assert m["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
                assert "StartingPosition" not in m
    kinesis = sum(isinstance(t, KinesisTrigger) for fn in SYSTEM.functions for t in fn.triggers)
    assert len(mappings) == count + kinesis


def test_s3_notifications_and_async_invoke_config(dev: Synth) -> None:
    notifications = {
        json.dumps(n["Properties"]["BucketName"]): n["Properties"]["NotificationConfiguration"]
        for n in dev.of_type("Custom::S3BucketNotifications").values()
    }
    invoke_configs = {
        json.dumps(c["Properties"]["FunctionName"]): c["Properties"]
        for c in dev.of_type("AWS::Lambda::EventInvokeConfig").values()
    }
    permissions = [p["Properties"] for p in dev.of_type("AWS::Lambda::Permission").values()]
    s3_functions = 0
    for fn in SYSTEM.functions:
        s3_triggers = [t for t in fn.triggers if isinstance(t, S3Trigger)]
        fn_logical = dev.logical("function", fn.name)
        if not s3_triggers:
            assert json.dumps(ref(fn_logical)) not in invoke_configs
            continue
        s3_functions += 1
        for t in s3_triggers:
            bucket_logical = dev.logical("bucket", t.bucket)
            config = notifications[json.dumps(ref(bucket_logical))]
            (entry,) = [
                c
                for c in config["LambdaFunctionConfigurations"]
                if c["LambdaFunctionArn"] == arn(fn_logical)
            ]
            assert entry["Events"] == ["s3:ObjectCreated:*"]
            rules = [{"Name": "prefix", "Value": t.prefix}] + (
                [{"Name": "suffix", "Value": t.suffix}] if t.suffix else []
            )
            assert entry["Filter"] == {"Key": {"FilterRules": rules}}
            (perm,) = [
                p
                for p in permissions
                if p["FunctionName"] == arn(fn_logical) and p["Principal"] == "s3.amazonaws.com"
            ]
            assert perm["SourceArn"] == arn(bucket_logical)
            assert perm["SourceAccount"] == {"Ref": "AWS::AccountId"}
            cfg = invoke_configs[json.dumps(ref(fn_logical))]
            assert cfg == {
                "FunctionName": ref(fn_logical),
                "Qualifier": "$LATEST",
                "MaximumRetryAttempts": t.max_retries,
                "MaximumEventAgeInSeconds": t.max_event_age_s,
                "DestinationConfig": {
                    "OnFailure": {"Destination": arn(dev.logical("queue", t.on_failure))}
                },
            }
    assert s3_functions == len(invoke_configs) == 2


def test_schedules(dev: Synth) -> None:
    rules = list(dev.of_type("AWS::Events::Rule").values())
    expected = [
        (fn.name, t.expression)
        for fn in SYSTEM.functions
        for t in fn.triggers
        if isinstance(t, ScheduleTrigger)
    ]
    assert len(rules) == len(expected) >= 1
    for fn_name, expression in expected:
        fn_arn = arn(dev.logical("function", fn_name))
        (rule,) = [r["Properties"] for r in rules if r["Properties"]["Targets"][0]["Arn"] == fn_arn]
        assert rule["ScheduleExpression"] == expression
        assert rule["State"] == "ENABLED"
    assert ("cache_hints", "rate(1 hour)") in expected


# ---- IAM -----------------------------------------------------------------------------------------


def _role_of(s: Synth, fn_name: str) -> tuple[str, dict[str, Any]]:
    role_logical = s.named("function")[fn_name][1]["Properties"]["Role"]["Fn::GetAtt"][0]
    return role_logical, s.resources[role_logical]


def expected_grants(s: Synth, fn_name: str) -> set[tuple[str, str, str, str]]:
    fn = SYSTEM.function(fn_name)
    stack = s.stack
    declared = stack.resolve(policy_statements(SYSTEM, fn, stack.arn_of))
    grants = expand(declared)
    read: set[str] = set()
    write: set[str] = set()
    for a in effective_access(SYSTEM, fn):
        service = SERVICE[SYSTEM.resource_kind(a.resource)]
        read.add(service)
        if a.mode != "read":
            write.add(service)
    key = json.dumps(arn(key_logical(s)), sort_keys=True)

    def via(services: set[str]) -> str:
        return json.dumps(
            {
                "StringEquals": {
                    "kms:ViaService": [
                        {"Fn::Join": ["", [f"{x}.", {"Ref": "AWS::Region"}, ".amazonaws.com"]]}
                        for x in sorted(services)
                    ]
                }
            },
            sort_keys=True,
        )

    grants |= {("Allow", a, key, via(read)) for a in ("kms:Decrypt", "kms:DescribeKey")}
    grants |= {("Allow", a, key, via(write)) for a in ("kms:Encrypt", "kms:GenerateDataKey")}
    log_group = s.named("function")[fn_name][1]["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
    log_arn = json.dumps(arn(log_group), sort_keys=True)
    grants |= {("Allow", a, log_arn, "null") for a in ("logs:CreateLogStream", "logs:PutLogEvents")}
    return grants


@pytest.mark.parametrize("fn_name", [fn.name for fn in SYSTEM.functions])
def test_role_is_exactly_the_declared_access(dev: Synth, fn_name: str) -> None:
    role_logical, role = _role_of(dev, fn_name)
    props = role["Properties"]
    assert props["AssumeRolePolicyDocument"]["Statement"] == [
        {
            "Action": "sts:AssumeRole",
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
        }
    ]
    assert "ManagedPolicyArns" not in props
    (inline,) = props["Policies"]
    assert expand(inline["PolicyDocument"]["Statement"]) == expected_grants(dev, fn_name)
    # The only other policy on the role: X-Ray, which has no resource-level permissions.
    attached = [
        p["Properties"]
        for p in dev.of_type("AWS::IAM::Policy").values()
        if ref(role_logical) in p["Properties"]["Roles"]
    ]
    assert len(attached) == 1
    assert expand(attached[0]["PolicyDocument"]["Statement"]) == {
        ("Allow", "xray:PutTelemetryRecords", '"*"', "null"),
        ("Allow", "xray:PutTraceSegments", '"*"', "null"),
    }


def test_least_privilege_spelled_out(dev: Synth) -> None:
    def actions_on(fn_name: str, kind: str, name: str) -> set[str]:
        _, role = _role_of(dev, fn_name)
        target = dev.logical(kind, name)
        return {
            a
            for (_, a, resource, _) in expand(
                role["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
            )
            if target in resource
        }

    # investigation reads decisions, never writes them; it has no bucket at all.
    assert actions_on("investigation", "table", "decisions") == {
        "dynamodb:BatchGetItem",
        "dynamodb:DescribeTable",
        "dynamodb:GetItem",
        "dynamodb:Query",
    }
    _, role = _role_of(dev, "investigation")
    assert not any(
        a.startswith("s3:")
        for (_, a, _, _) in expand(role["Properties"]["Policies"][0]["PolicyDocument"]["Statement"])
    )
    # delivery_prefs never touches the model store; fraud_scorer reads only the fraud/ prefix.
    assert actions_on("delivery_prefs", "bucket", "models") == set()
    models = dev.logical("bucket", "models")
    _, scorer = _role_of(dev, "fraud_scorer")
    s3_grants = {
        (a, r)
        for (_, a, r, _) in expand(
            scorer["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
        )
        if a.startswith("s3:")
    }
    prefixed = json.dumps({"Fn::Join": ["", [arn(models), "/fraud/*"]]}, sort_keys=True)
    assert s3_grants == {
        ("s3:GetObject", prefixed),
        ("s3:GetObjectVersion", prefixed),
        ("s3:ListBucket", json.dumps(arn(models), sort_keys=True)),
    }
    # the Kinesis consumer can read its streams and write its on-failure queue, nothing more.
    assert actions_on("qoe_hints", "stream", "playback") == {
        "kinesis:DescribeStream",
        "kinesis:DescribeStreamSummary",
        "kinesis:GetRecords",
        "kinesis:GetShardIterator",
        "kinesis:ListShards",
    }
    assert actions_on("qoe_hints", "stream", "activity") == set()
    assert actions_on("qoe_hints", "queue", "failures") == {
        "sqs:GetQueueAttributes",
        "sqs:GetQueueUrl",
        "sqs:SendMessage",
    }


# ---- operations ----------------------------------------------------------------------------------


def _alarms(s: Synth) -> list[dict[str, Any]]:
    return [a["Properties"] for a in s.of_type("AWS::CloudWatch::Alarm").values()]


def _dims(alarm: dict[str, Any]) -> list[dict[str, Any]]:
    return alarm.get("Dimensions", [])  # type: ignore[no-any-return]


def test_function_alarms(dev: Synth) -> None:
    (topic,) = dev.of_type("AWS::SNS::Topic")
    alarms = _alarms(dev)
    for fn in SYSTEM.functions:
        dims = [{"Name": "FunctionName", "Value": ref(dev.logical("function", fn.name))}]
        mine = {
            a["MetricName"]: a
            for a in alarms
            if a.get("Namespace") == "AWS/Lambda" and _dims(a) == dims
        }
        kinesis_ages = [t.max_record_age_s for t in fn.triggers if isinstance(t, KinesisTrigger)]
        assert set(mine) == (
            {"Errors", "Throttles", "IteratorAge"} if kinesis_ages else {"Errors", "Throttles"}
        ), fn.name
        for name in ("Errors", "Throttles"):
            a = mine[name]
            assert (a["Statistic"], a["Period"], a["Threshold"], a["EvaluationPeriods"]) == (
                "Sum",
                300,
                1,
                1,
            )
            assert a["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
            assert a["TreatMissingData"] == "notBreaching"
            assert a["AlarmActions"] == [ref(topic)] and a["OKActions"] == [ref(topic)]
        if kinesis_ages:
            a = mine["IteratorAge"]
            assert (a["Statistic"], a["Period"], a["EvaluationPeriods"]) == ("Maximum", 60, 5)
            # 10 minutes, and always well before records age out to the on-failure queue.
            assert a["Threshold"] == min(600, min(kinesis_ages) // 2) * 1000 == 600_000


def test_terminal_queue_depth_alarms(dev: Synth) -> None:
    assert terminal_queues(SYSTEM) == ["quarantine", "failures", "investigations_dlq"]
    depth = [a for a in _alarms(dev) if a.get("Namespace") == "AWS/SQS"]
    alarmed = {d["Value"]["Fn::GetAtt"][0] for a in depth for d in _dims(a)}
    assert alarmed == {dev.logical("queue", q) for q in terminal_queues(SYSTEM)}
    for a in depth:
        assert (a["MetricName"], a["Statistic"], a["Threshold"]) == (
            "ApproximateNumberOfMessagesVisible",
            "Maximum",
            1,
        )


def test_alarm_topic_encrypted_and_tls_only(dev: Synth) -> None:
    (topic,) = dev.of_type("AWS::SNS::Topic").values()
    assert topic["Properties"]["KmsMasterKeyId"] == arn(key_logical(dev))
    (policy,) = dev.of_type("AWS::SNS::TopicPolicy").values()
    assert any(
        st["Effect"] == "Deny" and st["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for st in policy["Properties"]["PolicyDocument"]["Statement"]
    )


def test_dashboard_covers_every_function_stream_and_queue(dev: Synth) -> None:
    (board,) = dev.of_type("AWS::CloudWatch::Dashboard").values()
    body = json.dumps(board["Properties"]["DashboardBody"])
    for fn in SYSTEM.functions:
        assert f"{fn.name}: invocations / errors / throttles" in body
        assert f"{fn.name}: events applied / quarantined / retried" in body
    for name in ("Streams: incoming records", "Queues: messages visible", "Alarms"):
        assert name in body


# ---- stages --------------------------------------------------------------------------------------


def test_stack_names_and_tags(dev: Synth, prod: Synth) -> None:
    assert dev.stack.stack_name == "streamsense-dev-tester-name"
    assert prod.stack.stack_name == "streamsense-prod"
    assert prod.stack.termination_protection is True
    assert dev.stack.termination_protection is False
    tags = {
        t["Key"]: t["Value"] for t in dev.named("function")["qoe_hints"][1]["Properties"]["Tags"]
    }
    assert tags == {"project": "streamsense", "stage": "dev", "owner": "tester-name"}


def test_prod_retains_every_stateful_resource_and_dev_cleans_up(dev: Synth, prod: Synth) -> None:
    stateful = (
        "AWS::Kinesis::Stream",
        "AWS::DynamoDB::Table",
        "AWS::S3::Bucket",
        "AWS::SQS::Queue",
        "AWS::KMS::Key",
        "AWS::Logs::LogGroup",
    )
    for cfn_type in stateful:
        assert {r["DeletionPolicy"] for r in prod.of_type(cfn_type).values()} == {"Retain"}, (
            cfn_type
        )
        assert {r["DeletionPolicy"] for r in dev.of_type(cfn_type).values()} == {"Delete"}, cfn_type
    # dev empties its buckets on stack deletion; prod never deletes objects.
    assert len(dev.of_type("Custom::S3AutoDeleteObjects")) == len(SYSTEM.buckets) + 1
    assert prod.of_type("Custom::S3AutoDeleteObjects") == {}
    log_group = prod.named("function")["fraud_scorer"][1]["Properties"]["LoggingConfig"][
        "LogGroup"
    ]["Ref"]
    assert prod.resources[log_group]["Properties"]["RetentionInDays"] == 90
