"""The streamsense stack: every stream, table, bucket, queue and function of ``SYSTEM``
(infra/system.py), wired exactly as declared, plus what running it in an account needs
(one KMS key, server access logs, alarms, a dashboard).

Nothing here names a resource of the system by hand: add a table or a function to SYSTEM and it
appears in the template, with its IAM, env vars, triggers and alarms. Every CloudFormation
resource that stands for a SYSTEM entry carries ``Metadata: {"streamsense:kind", "streamsense:name"}``
so infra/normalize.py can read the template back into SYSTEM's logical names.

IAM is only what infra/access.py derives from the declared access, plus the KMS, log and X-Ray
permissions the runtime itself needs. That is why event-source mappings and async invoke
configs are L1 constructs: their L2 counterparts add grants of their own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import (
    Annotations,
    Aws,
    CfnOutput,
    CfnResource,
    Duration,
    RemovalPolicy,
    Stack,
    Tags,
)
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra import assets
from infra.access import effective_access, policy_statements
from infra.stages import StageConfig
from infra.system import (
    Function,
    KinesisTrigger,
    S3Trigger,
    ScheduleTrigger,
    SqsTrigger,
    System,
    function_env_keys,
    powertools_env,
)

META_KIND = "streamsense:kind"
META_NAME = "streamsense:name"
PLACEHOLDER_WARNING = "streamsense:placeholder-asset"

_SERVICE_OF_KIND = {"stream": "kinesis", "table": "dynamodb", "bucket": "s3", "queue": "sqs"}
_ARCH = {"x86_64": lambda_.Architecture.X86_64, "arm64": lambda_.Architecture.ARM_64}
_LOG_RETENTION = {
    1: logs.RetentionDays.ONE_DAY,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    90: logs.RetentionDays.THREE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
}


def construct_id(prefix: str, name: str) -> str:
    """``("Fn", "fraud_scorer") -> "FnFraudScorer"``: stable logical ids from SYSTEM names."""
    return prefix + "".join(
        part[:1].upper() + part[1:] for part in name.replace("-", "_").split("_")
    )


def mark(construct: Construct, kind: str, name: str) -> None:
    """Record the SYSTEM kind and name on the construct's CloudFormation resource."""
    cfn = construct if isinstance(construct, CfnResource) else construct.node.default_child
    assert isinstance(cfn, CfnResource), construct.node.path
    cfn.add_metadata(META_KIND, kind)
    cfn.add_metadata(META_NAME, name)


class StreamsenseStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id_: str,
        *,
        system: System,
        config: StageConfig,
        layers_root: Path = assets.BUILD_LAYERS,
        functions_root: Path = assets.FUNCTIONS,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            scope,
            construct_id_,
            stack_name=config.stack_name,
            description=f"streamsense data plane ({config.stage}, owner {config.owner})",
            termination_protection=config.retain_data,
            **kwargs,
        )
        system.validate()
        self.system = system
        self.config = config
        self.placeholders: list[str] = []
        self.layers_root, self.functions_root = layers_root, functions_root
        self._removal = RemovalPolicy.RETAIN if config.retain_data else RemovalPolicy.DESTROY
        for key, value in (
            ("project", system.name),
            ("stage", config.stage),
            ("owner", config.owner),
        ):
            Tags.of(self).add(key, value)

        self.key = kms.Key(
            self,
            "DataKey",
            description=f"{system.name} {config.stage}: streams, tables, buckets, queues, alarm topic",
            enable_key_rotation=True,
            removal_policy=self._removal,
            pending_window=Duration.days(30 if config.retain_data else 7),
        )
        self.access_logs = self._access_logs_bucket()
        self.streams = {
            s.name: self._stream(s.name, s.shards, s.retention_hours) for s in system.streams
        }
        self.tables = {t.name: self._table(t.name, t.ttl_attribute) for t in system.tables}
        self.buckets = {b.name: self._bucket(b) for b in system.buckets}
        self.queues: dict[str, sqs.Queue] = {}
        for q in _dlqs_first(system):
            self.queues[q.name] = self._queue(q)
        self.alarm_topic = self._alarm_topic()

        self._layers: dict[str, lambda_.LayerVersion] = {}
        self.functions: dict[str, lambda_.Function] = {}
        for fn in system.functions:
            self.functions[fn.name] = self._function(fn)

        self.alarms: list[cw.Alarm] = []
        self._function_alarms()
        self._queue_alarms()
        self.dashboard = self._dashboard()
        self._outputs()

    # ---- resources -------------------------------------------------------------------------

    def _access_logs_bucket(self) -> s3.Bucket:
        # S3 server access logs can only be delivered to an SSE-S3 bucket (not SSE-KMS).
        bucket = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=False,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-access-logs",
                    expiration=Duration.days(365 if self.config.retain_data else 30),
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                )
            ],
            removal_policy=self._removal,
            auto_delete_objects=not self.config.retain_data,
        )
        return bucket

    def _stream(self, name: str, shards: int, retention_hours: int) -> kinesis.Stream:
        on_demand = self.config.stream_mode == "on_demand"
        stream = kinesis.Stream(
            self,
            construct_id("Stream", name),
            encryption=kinesis.StreamEncryption.KMS,
            encryption_key=self.key,
            retention_period=Duration.hours(retention_hours),
            stream_mode=kinesis.StreamMode.ON_DEMAND
            if on_demand
            else kinesis.StreamMode.PROVISIONED,
            shard_count=None if on_demand else self.config.shards(name, shards),
            removal_policy=self._removal,
        )
        mark(stream, "stream", name)
        return stream

    def _table(self, name: str, ttl_attribute: str | None) -> dynamodb.Table:
        table = dynamodb.Table(
            self,
            construct_id("Table", name),
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            time_to_live_attribute=ttl_attribute,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=self.key,
            deletion_protection=self.config.retain_data,
            removal_policy=self._removal,
        )
        mark(table, "table", name)
        return table

    def _bucket(self, spec: Any) -> s3.Bucket:
        rules: list[s3.LifecycleRule] = [
            s3.LifecycleRule(
                id="abort-incomplete-uploads",
                abort_incomplete_multipart_upload_after=Duration.days(7),
            )
        ]
        if spec.expire_after_days:
            rules.append(
                s3.LifecycleRule(
                    id="expire-current", expiration=Duration.days(spec.expire_after_days)
                )
            )
        if spec.versioned:
            rules.append(
                s3.LifecycleRule(
                    id="expire-noncurrent",
                    noncurrent_version_expiration=Duration.days(spec.noncurrent_expire_days),
                )
            )
        bucket = s3.Bucket(
            self,
            construct_id("Bucket", spec.name),
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            bucket_key_enabled=True,  # S3 reuses a bucket-level data key: far fewer KMS calls
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=spec.versioned,
            lifecycle_rules=rules,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix=f"{spec.name}/",
            removal_policy=self._removal,
            auto_delete_objects=not self.config.retain_data,
        )
        mark(bucket, "bucket", spec.name)
        return bucket

    def _queue(self, spec: Any) -> sqs.Queue:
        dlq = None
        if spec.dead_letter_queue:
            dlq = sqs.DeadLetterQueue(
                max_receive_count=spec.max_receive_count, queue=self.queues[spec.dead_letter_queue]
            )
        queue = sqs.Queue(
            self,
            construct_id("Queue", spec.name),
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=self.key,
            data_key_reuse=Duration.minutes(15),  # fewer KMS calls; the default is 5 minutes
            enforce_ssl=True,
            visibility_timeout=Duration.seconds(spec.visibility_timeout_s),
            retention_period=Duration.seconds(spec.retention_s),
            dead_letter_queue=dlq,
            removal_policy=self._removal,
        )
        mark(queue, "queue", spec.name)
        return queue

    def _alarm_topic(self) -> sns.Topic:
        topic = sns.Topic(
            self,
            "Alarms",
            display_name=f"{self.system.name} {self.config.stage} alarms",
            master_key=self.key,
            enforce_ssl=True,
        )
        # CloudWatch publishes to the encrypted topic with the key on its own behalf.
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsToPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
            )
        )
        if self.config.alarm_email:
            topic.add_subscription(subs.EmailSubscription(self.config.alarm_email))
        return topic

    # ---- functions -------------------------------------------------------------------------

    def _asset(self, path: Any, what: str, hint: str) -> assets.Asset:
        asset = assets.resolve(path, what, hint, strict=self.config.strict_assets)
        if asset.placeholder:
            self.placeholders.append(asset.message)
        return asset

    def _warn_placeholder(self, construct: Construct, asset: assets.Asset) -> None:
        if asset.placeholder:
            Annotations.of(construct).add_warning_v2(PLACEHOLDER_WARNING, asset.message)

    def _layer(self, layer: str, architecture: str) -> lambda_.LayerVersion:
        key = assets.layer_key(layer, architecture)
        if key in self._layers:
            return self._layers[key]
        asset = self._asset(
            assets.layer_dir(layer, architecture, self.layers_root),
            f"layer {key}",
            "run `make layers`",
        )
        arch_list = [_ARCH[architecture]] if layer in assets.ARCH_SPECIFIC else list(_ARCH.values())
        version = lambda_.LayerVersion(
            self,
            construct_id("Layer", key.replace("-", "_").replace("x86_64", "x86")),
            code=lambda_.Code.from_asset(str(asset.path)),
            compatible_runtimes=[lambda_.Runtime.PYTHON_3_12],
            compatible_architectures=arch_list,
            description=f"{self.system.name} {key} layer (layers/build.py)",
        )
        self._warn_placeholder(version, asset)
        mark(version, "layer", key)
        self._layers[key] = version
        return version

    def arn_of(self, kind: str, name: str) -> str:
        if kind == "stream":
            return self.streams[name].stream_arn
        if kind == "table":
            return self.tables[name].table_arn
        if kind == "bucket":
            return self.buckets[name].bucket_arn
        if kind == "queue":
            return self.queues[name].queue_arn
        raise KeyError(kind)

    def _env_value(self, kind: str, name: str) -> str:
        if kind == "stream":
            return self.streams[name].stream_name
        if kind == "table":
            return self.tables[name].table_name
        if kind == "bucket":
            return self.buckets[name].bucket_name
        return self.queues[name].queue_url  # SQS clients address queues by URL

    def _kms_statements(self, fn: Function) -> list[iam.PolicyStatement]:
        """Decrypt for what the function reads, encrypt for what it writes, each only through
        the services of those resources (kms:ViaService), never the key directly."""
        read: set[str] = set()
        write: set[str] = set()
        for a in effective_access(self.system, fn):
            service = _SERVICE_OF_KIND[self.system.resource_kind(a.resource)]
            if a.mode in ("read", "readwrite"):
                read.add(service)
            if a.mode in ("write", "readwrite"):
                write.add(service)
                read.add(service)  # SQS and S3 multipart writes also decrypt the data key
        out = []
        for sid, actions, services in (
            ("KmsDecryptViaServices", ["kms:Decrypt", "kms:DescribeKey"], read),
            ("KmsEncryptViaServices", ["kms:Encrypt", "kms:GenerateDataKey"], write),
        ):
            if services:
                out.append(
                    iam.PolicyStatement(
                        sid=sid,
                        actions=actions,
                        resources=[self.key.key_arn],
                        conditions={
                            "StringEquals": {
                                "kms:ViaService": [
                                    f"{s}.{Aws.REGION}.amazonaws.com" for s in sorted(services)
                                ]
                            }
                        },
                    )
                )
        return out

    def _function(self, fn: Function) -> lambda_.Function:
        fid = construct_id("Fn", fn.name)
        if "shared" not in fn.layers:
            # The shared layer carries streamsense and pydantic/Powertools; the ML layer does not.
            raise ValueError(f"{fn.name}: every function needs the shared layer, got {fn.layers}")
        log_group = logs.LogGroup(
            self,
            f"{fid}Logs",
            retention=_LOG_RETENTION.get(
                self.config.log_retention_days, logs.RetentionDays.TWO_WEEKS
            ),
            removal_policy=self._removal,
        )
        statements = [
            iam.PolicyStatement.from_json(s)
            for s in policy_statements(self.system, fn, self.arn_of)
        ]
        statements += self._kms_statements(fn)
        statements.append(
            iam.PolicyStatement(
                sid="WriteOwnLogs",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[log_group.log_group_arn],
            )
        )
        role = iam.Role(
            self,
            f"{fid}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"{fn.name}: exactly the access declared in infra/system.py",
            inline_policies={"declared-access": iam.PolicyDocument(statements=statements)},
        )
        env: dict[str, str] = {
            var: self._env_value(kind, name)
            for var, (kind, name) in function_env_keys(self.system, fn).items()
        }
        env.update(powertools_env(fn, self.config.log_level))
        env.update(fn.environment)

        code_asset = self._asset(
            assets.function_dir(fn.name, self.functions_root),
            f"function {fn.name}",
            f"functions/{fn.name}/handler.py is not written yet",
        )
        function = lambda_.Function(
            self,
            fid,
            description=fn.description[:256],
            runtime=lambda_.Runtime.PYTHON_3_12,
            architecture=_ARCH[fn.architecture],
            handler="handler.lambda_handler",
            code=lambda_.Code.from_asset(
                str(code_asset.path), exclude=["__pycache__", "*.pyc", "tests"]
            ),
            memory_size=fn.memory_mb,
            timeout=Duration.seconds(fn.timeout_s),
            environment=env,
            layers=[self._layer(layer, fn.architecture) for layer in fn.layers],
            role=role,
            log_group=log_group,
            tracing=lambda_.Tracing.ACTIVE,
            reserved_concurrent_executions=fn.reserved_concurrency,
            recursive_loop=lambda_.RecursiveLoop.TERMINATE,
        )
        self._warn_placeholder(function, code_asset)
        mark(function, "function", fn.name)
        self._triggers(fn, fid, function)
        return function

    def _triggers(self, fn: Function, fid: str, function: lambda_.Function) -> None:
        async_configs: set[tuple[int, int, str]] = set()
        for index, t in enumerate(fn.triggers):
            if isinstance(t, KinesisTrigger):
                _check_kinesis(fn, t)
                esm = lambda_.CfnEventSourceMapping(
                    self,
                    construct_id(f"{fid}From", f"stream_{t.stream}"),
                    function_name=function.function_name,
                    event_source_arn=self.streams[t.stream].stream_arn,
                    batch_size=t.batch_size,
                    maximum_batching_window_in_seconds=t.batching_window_s,
                    starting_position=t.starting_position,
                    bisect_batch_on_function_error=t.bisect_on_error,
                    maximum_retry_attempts=t.max_retries,
                    maximum_record_age_in_seconds=t.max_record_age_s,
                    parallelization_factor=t.parallelization_factor,
                    function_response_types=["ReportBatchItemFailures"]
                    if t.report_batch_item_failures
                    else None,
                    destination_config=lambda_.CfnEventSourceMapping.DestinationConfigProperty(
                        on_failure=lambda_.CfnEventSourceMapping.OnFailureProperty(
                            destination=self.queues[t.on_failure].queue_arn
                        )
                    ),
                )
                mark(esm, "trigger", fn.name)
            elif isinstance(t, SqsTrigger):
                queue = next(q for q in self.system.queues if q.name == t.queue)
                _check_sqs(fn, t, queue.visibility_timeout_s)
                esm = lambda_.CfnEventSourceMapping(
                    self,
                    construct_id(f"{fid}From", f"queue_{t.queue}"),
                    function_name=function.function_name,
                    event_source_arn=self.queues[t.queue].queue_arn,
                    batch_size=t.batch_size,
                    maximum_batching_window_in_seconds=t.batching_window_s,
                    function_response_types=["ReportBatchItemFailures"]
                    if t.report_batch_item_failures
                    else None,
                )
                mark(esm, "trigger", fn.name)
            elif isinstance(t, S3Trigger):
                key_filter = s3.NotificationKeyFilter(
                    prefix=t.prefix or None, suffix=t.suffix or None
                )
                self.buckets[t.bucket].add_event_notification(
                    s3.EventType.OBJECT_CREATED, s3n.LambdaDestination(function), key_filter
                )
                async_configs.add((t.max_retries, t.max_event_age_s, t.on_failure))
            elif isinstance(t, ScheduleTrigger):
                rule = events.Rule(
                    self,
                    f"{fid}Schedule{index}",
                    schedule=events.Schedule.expression(t.expression),
                    description=(t.description or f"{fn.name} schedule")[:512],
                    targets=[targets.LambdaFunction(function)],
                )
                mark(rule, "trigger", fn.name)
            else:  # pragma: no cover - SYSTEM.validate() knows every trigger type
                raise TypeError(f"unknown trigger {t!r}")
        if len(async_configs) > 1:
            raise ValueError(
                f"{fn.name}: S3 triggers disagree on async retries/age/destination {sorted(async_configs)}; "
                "Lambda has one async invoke config per function"
            )
        for retries, age, on_failure in async_configs:
            if not 0 <= retries <= 2 or not 60 <= age <= 21600:
                raise ValueError(
                    f"{fn.name}: async retries must be 0..2 and max event age 60..21600 s"
                )
            lambda_.CfnEventInvokeConfig(
                self,
                f"{fid}AsyncConfig",
                function_name=function.function_name,
                qualifier="$LATEST",
                maximum_retry_attempts=retries,
                maximum_event_age_in_seconds=age,
                destination_config=lambda_.CfnEventInvokeConfig.DestinationConfigProperty(
                    on_failure=lambda_.CfnEventInvokeConfig.OnFailureProperty(
                        destination=self.queues[on_failure].queue_arn
                    )
                ),
            )

    # ---- operations ------------------------------------------------------------------------

    def _alarm(
        self, cid: str, metric: cw.IMetric, threshold: float, description: str, periods: int = 1
    ) -> None:
        alarm = cw.Alarm(
            self,
            cid,
            metric=metric,
            threshold=threshold,
            evaluation_periods=periods,
            datapoints_to_alarm=periods,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            alarm_description=description,
        )
        alarm.add_alarm_action(cw_actions.SnsAction(self.alarm_topic))
        alarm.add_ok_action(cw_actions.SnsAction(self.alarm_topic))
        self.alarms.append(alarm)

    def _function_alarms(self) -> None:
        five_min = Duration.minutes(5)
        for fn in self.system.functions:
            function = self.functions[fn.name]
            fid = construct_id("Fn", fn.name)
            self._alarm(
                f"{fid}ErrorsAlarm",
                function.metric_errors(period=five_min, statistic="Sum"),
                1,
                f"{fn.name}: invocations failed (unhandled errors; batch item failures are not errors)",
            )
            self._alarm(
                f"{fid}ThrottlesAlarm",
                function.metric_throttles(period=five_min, statistic="Sum"),
                1,
                f"{fn.name}: invocations throttled (concurrency limit reached)",
            )
            ages = [t.max_record_age_s for t in fn.triggers if isinstance(t, KinesisTrigger)]
            if ages:
                threshold_s = min(self.config.iterator_age_alarm_s, min(ages) // 2)
                self._alarm(
                    f"{fid}IteratorAgeAlarm",
                    function.metric("IteratorAge", period=Duration.minutes(1), statistic="Maximum"),
                    threshold_s * 1000,
                    f"{fn.name}: oldest unprocessed Kinesis record older than {threshold_s} s for 5 minutes "
                    f"(records older than {min(ages)} s go to the on-failure queue)",
                    periods=5,
                )

    def _queue_alarms(self) -> None:
        for name in terminal_queues(self.system):
            self._alarm(
                construct_id("Queue", name) + "DepthAlarm",
                self.queues[name].metric_approximate_number_of_messages_visible(
                    period=Duration.minutes(5), statistic="Maximum"
                ),
                1,
                f"{name}: messages waiting in a terminal queue (nothing consumes it: an operator must look)",
            )

    def _dashboard(self) -> cw.Dashboard:
        board = cw.Dashboard(self, "Dashboard", default_interval=Duration.hours(3))
        board.add_widgets(
            cw.AlarmStatusWidget(title="Alarms", alarms=list(self.alarms), width=24, height=4)
        )
        for fn in self.system.functions:
            function = self.functions[fn.name]

            def emf(name: str, fn_name: str = fn.name) -> cw.Metric:
                # Powertools EMF: namespace from POWERTOOLS_METRICS_NAMESPACE, dimension service.
                return cw.Metric(
                    namespace="streamsense",
                    metric_name=name,
                    dimensions_map={"service": fn_name},
                    statistic="Sum",
                )

            row: list[cw.IWidget] = [
                cw.GraphWidget(
                    title=f"{fn.name}: invocations / errors / throttles",
                    left=[
                        function.metric_invocations(),
                        function.metric_errors(),
                        function.metric_throttles(),
                    ],
                    width=6,
                ),
                cw.GraphWidget(
                    title=f"{fn.name}: duration p50 / p99 (ms)",
                    left=[
                        function.metric_duration(statistic="p50"),
                        function.metric_duration(statistic="p99"),
                    ],
                    width=6,
                ),
                cw.GraphWidget(
                    title=f"{fn.name}: events applied / quarantined / retried",
                    left=[emf("EventsApplied"), emf("EventsQuarantined"), emf("EventsRetried")],
                    width=6,
                ),
            ]
            if any(isinstance(t, KinesisTrigger) for t in fn.triggers):
                row.append(
                    cw.GraphWidget(
                        title=f"{fn.name}: iterator age (ms)",
                        left=[function.metric("IteratorAge", statistic="Maximum")],
                        width=6,
                    )
                )
            board.add_widgets(*row)
        board.add_widgets(
            cw.GraphWidget(
                title="Streams: incoming records",
                left=[s.metric_incoming_records(statistic="Sum") for s in self.streams.values()],
                width=8,
            ),
            cw.GraphWidget(
                title="Streams: write throttles",
                left=[
                    s.metric_put_records_throttled_records(statistic="Sum")
                    for s in self.streams.values()
                ],
                width=8,
            ),
            cw.GraphWidget(
                title="Queues: messages visible",
                left=[
                    q.metric_approximate_number_of_messages_visible() for q in self.queues.values()
                ],
                width=8,
            ),
        )
        return board

    def _outputs(self) -> None:
        for kind, group in (
            ("Stream", {n: s.stream_name for n, s in self.streams.items()}),
            ("Table", {n: t.table_name for n, t in self.tables.items()}),
            ("Bucket", {n: b.bucket_name for n, b in self.buckets.items()}),
            ("Queue", {n: q.queue_url for n, q in self.queues.items()}),
            ("Function", {n: f.function_name for n, f in self.functions.items()}),
        ):
            for name, value in group.items():
                CfnOutput(
                    self,
                    construct_id(f"Out{kind}", name),
                    value=value,
                    description=f"{kind.lower()} {name}",
                )
        CfnOutput(
            self,
            "OutAlarmTopic",
            value=self.alarm_topic.topic_arn,
            description="alarm notifications",
        )


# ---- helpers --------------------------------------------------------------------------------


def terminal_queues(system: System) -> list[str]:
    """Queues nothing consumes (quarantine, on-failure, dead-letter queues): a message there
    waits for an operator, so their depth is alarmed."""
    consumed = {
        t.queue for fn in system.functions for t in fn.triggers if isinstance(t, SqsTrigger)
    }
    consumed |= {
        a.resource for fn in system.functions for a in fn.access if a.mode in ("read", "readwrite")
    }
    return [q.name for q in system.queues if q.name not in consumed]


def _dlqs_first(system: System) -> list[Any]:
    """Queues ordered so each dead-letter queue exists before the queue that redrives to it."""
    ordered: list[Any] = []
    pending = list(system.queues)
    while pending:
        ready = [
            q
            for q in pending
            if not q.dead_letter_queue or q.dead_letter_queue in {o.name for o in ordered}
        ]
        if not ready:
            raise ValueError(f"dead-letter queues form a cycle: {[q.name for q in pending]}")
        ordered.extend(ready)
        pending = [q for q in pending if q not in ready]
    return ordered


def _check_kinesis(fn: Function, t: KinesisTrigger) -> None:
    """Lambda's limits on Kinesis mappings, checked at synth instead of at deploy."""
    problems = []
    if not 1 <= t.batch_size <= 10_000:
        problems.append("batch_size must be 1..10000")
    if not 0 <= t.batching_window_s <= 300:
        problems.append("batching_window_s must be 0..300")
    if not (t.max_retries == -1 or 0 <= t.max_retries <= 10_000):
        problems.append("max_retries must be -1 or 0..10000")
    if not (t.max_record_age_s == -1 or 60 <= t.max_record_age_s <= 604_800):
        problems.append("max_record_age_s must be -1 or 60..604800")
    if not 1 <= t.parallelization_factor <= 10:
        problems.append("parallelization_factor must be 1..10")
    if problems:
        raise ValueError(f"{fn.name} <- stream {t.stream}: " + "; ".join(problems))


def _check_sqs(fn: Function, t: SqsTrigger, visibility_timeout_s: int) -> None:
    problems = []
    if not 1 <= t.batch_size <= 10_000:
        problems.append("batch_size must be 1..10000")
    if t.batch_size > 10 and t.batching_window_s < 1:
        problems.append("batch_size > 10 needs batching_window_s >= 1")
    if visibility_timeout_s < fn.timeout_s:
        # CloudFormation rejects it, and a message would reappear while still being processed.
        problems.append(
            f"queue visibility timeout {visibility_timeout_s}s < function timeout {fn.timeout_s}s"
        )
    if problems:
        raise ValueError(f"{fn.name} <- queue {t.queue}: " + "; ".join(problems))
