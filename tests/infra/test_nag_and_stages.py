"""cdk-nag's AwsSolutions pack: zero unacknowledged findings in dev and prod, and every
acknowledgment is one of the reviewed ones, on the one resource it is about, with a reason.
Plus the stage settings read from context and the placeholder-asset guard."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from infra.access import effective_access
from infra.app import build_app, cdk_json_context
from infra.assets import MissingAsset
from infra.nag import REASONS
from infra.normalize import from_system, from_template
from infra.stages import StageConfig
from infra.system import SYSTEM
from tests.infra.test_normalize import TINY

if TYPE_CHECKING:
    from tests.infra.conftest import Synth


def acknowledgments(s: Synth) -> list[tuple[str, str, str]]:
    """(logical id, rule, reason) from the template's cdk_nag metadata."""
    out = []
    for logical, res in s.resources.items():
        for rule in ((res.get("Metadata") or {}).get("cdk_nag") or {}).get("rules_to_suppress", []):
            out.append((logical, rule["id"], rule["reason"]))
    return out


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_awssolutions_pack_found_nothing_unacknowledged(
    stage: str, request: pytest.FixtureRequest
) -> None:
    s: Synth = request.getfixturevalue(stage)
    # The synth itself would have raised on an unacknowledged finding; the report (written for
    # our placeholder warnings) lists plugins with findings only: AwsSolutions must not be there.
    report = s.report()
    assert report is not None
    findings = [
        (p["pluginName"], v["ruleName"])
        for p in report["pluginReports"]
        for v in p.get("violations", [])
    ]
    assert {plugin for plugin, _ in findings} == {"Construct Annotations"}
    assert {rule for _, rule in findings} == {"Annotation::streamsense:placeholder-asset"}
    # The pack's aspect ran: it copied every acknowledgment into the template.
    assert len(acknowledgments(s)) > 0


def test_without_acknowledgments_the_pack_fails_the_synth(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Proves the pack runs in build_app and that each reviewed acknowledgment is needed: on a
    small system with acknowledgments switched off, exactly those rules fail the synth."""
    import infra.app

    monkeypatch.setattr(infra.app, "acknowledge", lambda stack: None)
    outdir = tmp_path / "out"
    app, stack = build_app(
        {**cdk_json_context(), "stage": "dev"},
        outdir=str(outdir),
        system=TINY,
        environ={"USER": "t"},
        layers_root=tmp_path / "layers",
        functions_root=tmp_path / "functions",
    )
    with pytest.raises(Exception, match="ValidationFailed"):
        app.synth()
    report = json.loads((outdir / "validation-report.json").read_text())
    (aws,) = [p for p in report["pluginReports"] if p["pluginName"] == "AwsSolutions"]
    failed = {
        (v["ruleName"], c["constructPath"].split("/")[1])
        for v in aws["violations"]
        for c in v["violatingConstructs"]
    }
    assert {(rule.split("[")[0], where) for rule, where in failed} == {
        ("AwsSolutions-L1", "FnWorker"),
        ("AwsSolutions-IAM5", "FnWorkerRole"),  # X-Ray Resource::* and the drops/* object grant
        ("AwsSolutions-KDS3", "StreamClicks"),
        ("AwsSolutions-SQS3", "QueueBad"),  # terminal; work_dlq is a redrive DLQ and passes
        (
            "AwsSolutions-IAM4",
            next(w for _, w in failed if w.startswith("BucketNotificationsHandler")),
        ),
    }
    assert len([r for r, w in failed if r.startswith("AwsSolutions-IAM5")]) == 2
    # The template is written before validation: the tiny system round-trips through the stack.
    template = json.loads((outdir / f"{stack.stack_name}.template.json").read_text())
    assert from_template(template) == from_system(TINY)
    assert len(stack.placeholders) == 3  # ml + shared layers and the function's code


def test_every_acknowledgment_is_reviewed_and_narrow(dev: Synth) -> None:
    acks = acknowledgments(dev)
    assert all(reason.strip() for _, _, reason in acks)
    rules = Counter(rule.split("[")[0] for _, rule, _ in acks)
    n_fn = len(SYSTEM.functions)
    bucket_grants = {
        (fn.name, a.resource, a.prefix)
        for fn in SYSTEM.functions
        for a in effective_access(SYSTEM, fn)
        if SYSTEM.resource_kind(a.resource) == "bucket"
    }
    assert rules == {
        "AwsSolutions-L1": n_fn,  # python3.12 on every function
        "AwsSolutions-IAM5": n_fn + len(bucket_grants),  # X-Ray Resource::* + object-prefix grants
        "AwsSolutions-KDS3": len(SYSTEM.streams),
        "AwsSolutions-SQS3": 2,  # quarantine and failures (investigations_dlq is a redrive DLQ)
        "AwsSolutions-IAM4": 1,  # CDK's bucket-notifications handler
    }
    by_rule = {(logical, rule) for logical, rule, _ in acks}
    assert (dev.logical("queue", "quarantine"), "AwsSolutions-SQS3") in by_rule
    assert (dev.logical("queue", "failures"), "AwsSolutions-SQS3") in by_rule
    exports, models = dev.logical("bucket", "exports"), dev.logical("bucket", "models")
    trainer_role = dev.named("function")["fraud_trainer"][1]["Properties"]["Role"]["Fn::GetAtt"][0]
    assert {rule for logical, rule in by_rule if logical == trainer_role} == {
        f"AwsSolutions-IAM5[Resource::<{exports}.Arn>/fraud-labels/*]",
        f"AwsSolutions-IAM5[Resource::<{models}.Arn>/fraud/*]",
    }
    # No acknowledgment on the stack as a whole, none for rules without a reviewed reason.
    known = {k.split("[")[0] for k in REASONS if k.startswith("AwsSolutions")}
    assert set(rules) <= known


def test_prod_has_no_auto_delete_acknowledgments_to_hide(prod: Synth) -> None:
    assert (
        Counter(rule.split("[")[0] for _, rule, _ in acknowledgments(prod))["AwsSolutions-IAM4"]
        == 1
    )


def test_placeholder_assets_are_flagged(dev: Synth) -> None:
    messages = dev.stack.placeholders
    missing_layers = {m.split(":")[0] for m in messages if m.startswith("layer ")}
    assert missing_layers == {"layer ml-x86_64", "layer shared-x86_64", "layer model"}
    missing_functions = {
        m.split(":")[0].removeprefix("function ") for m in messages if m.startswith("function ")
    }
    functions_root = dev.stack.functions_root
    assert missing_functions == {
        fn.name
        for fn in SYSTEM.functions
        if not (functions_root / fn.name).is_dir() or not any((functions_root / fn.name).iterdir())
    }


def test_strict_assets_refuses_placeholders(tmp_path: Path) -> None:
    with pytest.raises(MissingAsset, match="strict_assets forbids placeholders"):
        build_app(
            {**cdk_json_context(), "strict_assets": "true"},
            outdir=str(tmp_path / "out"),
            environ={"USER": "t"},
            layers_root=tmp_path / "none",
            nag=False,
        )


def _config(context: dict[str, Any], environ: dict[str, str] | None = None) -> StageConfig:
    return StageConfig.from_context(context.get, SYSTEM, environ or {})


def test_stage_defaults() -> None:
    dev = _config({}, {"USER": "Ada Lovelace"})
    assert (dev.stage, dev.owner, dev.stack_name) == (
        "dev",
        "ada-lovelace",
        "streamsense-dev-ada-lovelace",
    )
    assert (dev.stream_mode, dev.retain_data, dev.log_retention_days, dev.strict_assets) == (
        "provisioned",
        False,
        14,
        False,
    )
    prod = _config({"stage": "prod", "owner": "ignored-in-prod"})
    assert (prod.stack_name, prod.stream_mode, prod.retain_data, prod.log_retention_days) == (
        "streamsense-prod",
        "on_demand",
        True,
        90,
    )


def test_stage_overrides_from_cli_strings() -> None:
    c = _config(
        {
            "owner": "9lives",
            "shards": "playback=4,activity=2",
            "stream_mode": "provisioned",
            "strict_assets": "true",
            "log_level": "debug",
        }
    )
    assert c.owner == "u9lives"  # stack names must start with a letter
    assert (c.shards("playback", 2), c.shards("activity", 1)) == (4, 2)
    assert (c.strict_assets, c.log_level) == (True, "DEBUG")
    assert _config({"shards": '{"playback": 8}'}).shards("playback", 2) == 8


@pytest.mark.parametrize(
    ("context", "error"),
    [
        ({"stage": "staging"}, "stage must be dev or prod"),
        ({"stream_mode": "auto"}, "stream_mode must be"),
        ({"shards": "clicks=2"}, "unknown streams"),
        ({"shards": "playback=0"}, "shard counts must be >= 1"),
    ],
)
def test_stage_rejects_bad_context(context: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        _config(context)
