"""cdk-nag acknowledgments. Every AwsSolutions finding the stack does not fix is acknowledged
here, on the narrowest construct (the one CloudFormation resource, and for IAM5 the one exact
wildcard resource), with a one-line reason. They are derived from SYSTEM like the stack, so a new
function gets the same reviewed exceptions and nothing broader; any other finding fails synth.

With ``write_suppressions_to_cloud_formation`` each acknowledgment and its reason also lands in
the resource's template Metadata (``cdk_nag.rules_to_suppress``), which tests/infra counts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_cdk import Acknowledgment, CfnResource, Validations
from constructs import IConstruct

from infra.access import effective_access
from infra.stack import terminal_queues
from infra.system import System

if TYPE_CHECKING:
    from infra.stack import StreamsenseStack

BASIC_EXECUTION = "arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"

REASONS = {
    "AwsSolutions-L1": (
        "python3.12 on purpose: the ML and shared layers are built from cp312 wheels "
        "(layers/build.py); moving runtime means rebuilding and re-measuring them"
    ),
    "AwsSolutions-IAM5[Resource::*]": (
        "X-Ray PutTraceSegments/PutTelemetryRecords support no resource-level permissions "
        "(added by Lambda active tracing)"
    ),
    "prefix": "object actions limited to the key prefix this function declares in infra/system.py",
    "AwsSolutions-KDS3": (
        "a customer-managed key on purpose: raw activity events (emails, IPs, cards) sit on the "
        "stream before pseudonymization, so the key policy must gate reads, not only IAM"
    ),
    "AwsSolutions-SQS3": (
        "terminal queue (quarantine / on-failure destination) that nothing consumes; its depth is "
        "alarmed and operators drain it, a DLQ behind it would only be a second unread queue"
    ),
    "AwsSolutions-IAM4": (
        "CDK's own bucket-notifications handler (a singleton custom resource) uses "
        "AWSLambdaBasicExecutionRole for its logs; it only calls s3:PutBucketNotification at deploy"
    ),
}


def _ack(construct: IConstruct | None, rule: str, reason: str) -> None:
    if construct is None:
        raise LookupError(f"nothing to acknowledge {rule} on")
    Validations.of(construct).acknowledge(Acknowledgment(id=rule, reason=reason))


def _cfn(construct: IConstruct) -> CfnResource:
    child = construct.node.default_child
    assert isinstance(child, CfnResource), construct.node.path
    return child


def bucket_prefix_resources(stack: StreamsenseStack, system: System, fn_name: str) -> list[str]:
    """The IAM5 finding keys cdk-nag reports for a function's prefix-scoped object ARNs."""
    fn = system.function(fn_name)
    out: list[str] = []
    for access in effective_access(system, fn):
        if system.resource_kind(access.resource) != "bucket":
            continue
        logical = stack.get_logical_id(_cfn(stack.buckets[access.resource]))
        out.append(f"Resource::<{logical}.Arn>/{access.prefix or ''}*")
    return sorted(set(out))


def acknowledge(stack: StreamsenseStack) -> None:
    system = stack.system
    for fn in system.functions:
        function = stack.functions[fn.name]
        _ack(_cfn(function), "AwsSolutions-L1", REASONS["AwsSolutions-L1"])
        role = function.role
        assert role is not None
        default_policy = role.node.try_find_child("DefaultPolicy")
        if default_policy is not None:  # present because tracing is active
            _ack(
                default_policy.node.default_child,
                "AwsSolutions-IAM5[Resource::*]",
                REASONS["AwsSolutions-IAM5[Resource::*]"],
            )
        for finding in bucket_prefix_resources(stack, system, fn.name):
            _ack(_cfn(role), f"AwsSolutions-IAM5[{finding}]", REASONS["prefix"])
    for stream in stack.streams.values():
        _ack(_cfn(stream), "AwsSolutions-KDS3", REASONS["AwsSolutions-KDS3"])
    redrive_targets = {q.dead_letter_queue for q in system.queues if q.dead_letter_queue}
    for name in terminal_queues(system):
        if name not in redrive_targets:  # a queue used as a redrive DLQ passes SQS3 on its own
            _ack(_cfn(stack.queues[name]), "AwsSolutions-SQS3", REASONS["AwsSolutions-SQS3"])
    for child in stack.node.children:
        if child.node.id.startswith("BucketNotificationsHandler"):
            handler_role = child.node.try_find_child("Role")
            assert handler_role is not None, child.node.path
            _ack(
                _cfn(handler_role),
                f"AwsSolutions-IAM4[Policy::{BASIC_EXECUTION}]",
                REASONS["AwsSolutions-IAM4"],
            )
