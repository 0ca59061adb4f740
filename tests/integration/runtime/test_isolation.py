"""Each function runs in its own container process with only its own environment and only the
access it declared (the IAM statements infra.access derives, enforced on every AWS call); the
container is reused while warm and replaced after a timeout, a crash or a failed init."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest
from runtime_system import TEST_SYSTEM
from streamsense_local.stack import LAMBDA_RUNTIME_ENV, LOCAL_ENV, LocalStack

from infra.access import policy_statements

# All runtime tests share one stack per test worker (see conftest).
pytestmark = pytest.mark.xdist_group("local-runtime")


def _sqs_event(body: dict) -> dict:
    return {"Records": [{"messageId": "m-1", "body": json.dumps(body)}]}


def test_a_function_sees_only_its_own_environment(stack: LocalStack) -> None:
    os.environ["STREAMSENSE_TEST_PARENT_SECRET"] = "must-not-leak"
    try:
        first = stack.invoke("envdump", {})
        second = stack.invoke("envdump", {})
    finally:
        del os.environ["STREAMSENSE_TEST_PARENT_SECRET"]
    assert first.ok and second.ok
    env = first.response["env"]
    declared = {
        "TABLE_STATE": "streamsense-local-state",
        "QUEUE_QUARANTINE": stack.queue_url("quarantine"),
        "POWERTOOLS_SERVICE_NAME": "envdump",
        "POWERTOOLS_METRICS_NAMESPACE": "streamsense",
        "POWERTOOLS_LOG_LEVEL": "INFO",
        "POWERTOOLS_LOGGER_LOG_EVENT": "false",
        "FEATURE_FLAG": "on",
    }
    assert set(env) == set(declared) | set(LAMBDA_RUNTIME_ENV) | set(LOCAL_ENV)
    assert {k: env[k] for k in declared} == declared
    assert env["AWS_ENDPOINT_URL"] == stack.endpoint and env["STREAMSENSE_LOCAL"] == "1"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "streamsense-local-envdump"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    # Its own temporary credentials from its role, not the runtime's and not another function's.
    assert env["AWS_ACCESS_KEY_ID"] != stack.env_exports()["AWS_ACCESS_KEY_ID"]
    assert env["AWS_ACCESS_KEY_ID"] != stack.function_env("trespass")["AWS_ACCESS_KEY_ID"]
    assert env["AWS_SESSION_TOKEN"]
    assert first.response["function_name"] == "streamsense-local-envdump"
    assert first.response["memory_limit_in_mb"] == 256
    assert first.response["invoked_function_arn"] == "arn:aws:lambda:us-east-1:123456789012:function:streamsense-local-envdump"
    assert first.response["remaining_ms_positive"] is True
    assert first.response["cwd"] == str((stack.functions_dir / "envdump").resolve())  # the task root
    # A warm container: module scope ran once, in a process that is not the runtime.
    assert first.response["pid"] == second.response["pid"] != os.getpid()
    assert second.cold is False


def test_a_function_cannot_touch_what_it_did_not_declare(stack: LocalStack) -> None:
    inv = stack.invoke("trespass", {})
    assert inv.ok, inv.error
    assert inv.response == {
        "table_put_own": "ok",
        "table_get_own": "ok",
        "table_put_other": "AccessDeniedException",
        "table_batch_other": "AccessDeniedException",
        "table_scan_own": "AccessDeniedException",  # readwrite grants Get/Query/Batch*, not Scan
        "bucket_put_in_prefix": "ok",
        "bucket_get_in_prefix": "ok",
        "bucket_put_outside_prefix": "AccessDenied",
        "bucket_list_in_prefix": "ok",
        "bucket_list_outside_prefix": "AccessDenied",
        "queue_send_own": "ok",
        "queue_receive_own": "AccessDenied",  # write access to quarantine only
        "queue_send_other": "AccessDenied",
        "stream_put_undeclared": "AccessDeniedException",
        "lambda_list": "AccessDenied",
    }


def test_each_role_carries_exactly_the_derived_statements(stack: LocalStack) -> None:
    iam = stack.client("iam")
    for fn in TEST_SYSTEM.functions:
        doc = iam.get_role_policy(RoleName=f"streamsense-local-{fn.name}-role", PolicyName="declared-access")["PolicyDocument"]
        doc = json.loads(doc) if isinstance(doc, str) else doc
        assert doc["Statement"] == policy_statements(TEST_SYSTEM, fn, stack.naming.arn)


def test_a_timeout_kills_the_container_and_the_next_invoke_is_cold(stack: LocalStack) -> None:
    slow = stack.invoke("sleepy", _sqs_event({"id": "slow-1", "sleep": 3}))
    assert not slow.ok and slow.error_type == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in slow.error["errorMessage"]
    again = stack.invoke("sleepy", _sqs_event({"id": "fast-1"}))
    assert again.ok and again.cold


def test_a_crash_is_a_runtime_exit_error_and_the_next_invoke_is_cold(stack: LocalStack) -> None:
    crash = stack.invoke("sleepy", _sqs_event({"id": "crash-1", "exit": True}))
    assert not crash.ok and crash.error_type == "Runtime.ExitError"
    again = stack.invoke("sleepy", _sqs_event({"id": "after-crash-1"}))
    assert again.ok and again.cold


def test_an_import_error_fails_every_invoke_at_init(stack: LocalStack) -> None:
    for _ in range(2):
        inv = stack.invoke("broken", {})
        assert not inv.ok and inv.cold
        assert inv.error_type == "Runtime.ImportModuleError"
        assert "streamsense_no_such_module" in inv.error["errorMessage"]


def test_a_missing_handler_is_an_import_error(stack: LocalStack) -> None:
    proc = stack.processes["envdump"]
    original = proc.spec
    proc.stop()
    proc.spec = dataclasses.replace(original, code_dir=stack.functions_dir / "no-such-function")
    try:
        inv = stack.invoke("envdump", {})
    finally:
        proc.spec = original
    assert inv.error_type == "Runtime.ImportModuleError"


def test_cpu_seconds_per_container_and_for_the_server(stack: LocalStack) -> None:
    before = stack.cpu_seconds()
    assert stack.invoke("envdump", {}).ok
    after = stack.cpu_seconds()
    assert set(after) == {fn.name for fn in TEST_SYSTEM.functions} | {"moto_server", "runtime"}
    # a started container has at least its interpreter's start-up in there, and CPU only grows
    assert after["envdump"] >= before["envdump"] and after["envdump"] > 0
    assert after["moto_server"] >= before["moto_server"] > 0 and after["runtime"] > 0
