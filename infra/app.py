"""The CDK app (cdk.json: ``.venv/bin/python -m infra.app``): one stack per stage and owner,
built from SYSTEM, checked by cdk-nag's AwsSolutions pack on every synth (an unacknowledged
finding fails the synth).

    npx cdk synth                              # dev stack of $USER: streamsense-dev-<user>
    npx cdk synth -c stage=prod                # the production stack: streamsense-prod
    npx cdk deploy -c owner=alice -c strict_assets=true
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from aws_cdk import App, Environment, Validations
from cdk_nag import AwsSolutionsChecks

from infra.assets import BUILD_LAYERS, FUNCTIONS, REPO
from infra.nag import acknowledge
from infra.stack import StreamsenseStack
from infra.stages import StageConfig
from infra.system import SYSTEM, System


def cdk_json_context(path: Path = REPO / "cdk.json") -> dict[str, Any]:
    """The context block of cdk.json (feature flags and stage defaults), for in-process synths
    (tests) that do not go through the CDK CLI, which would otherwise supply it."""
    context: dict[str, Any] = json.loads(path.read_text())["context"]
    return context


def build_app(
    context: dict[str, Any] | None = None,
    *,
    outdir: str | None = None,
    system: System = SYSTEM,
    environ: dict[str, str] | None = None,
    nag: bool = True,
    layers_root: Path = BUILD_LAYERS,
    functions_root: Path = FUNCTIONS,
) -> tuple[App, StreamsenseStack]:
    """The app and its stack. Under the CDK CLI pass nothing (the CLI hands cdk.json's and
    ``-c`` context over); in tests pass ``{**cdk_json_context(), ...}``."""
    app = App(context=context, outdir=outdir)
    env = dict(os.environ if environ is None else environ)
    config = StageConfig.from_context(app.node.try_get_context, system, env)
    account, region = env.get("CDK_DEFAULT_ACCOUNT"), env.get("CDK_DEFAULT_REGION")
    stack = StreamsenseStack(
        app,
        config.stack_name,
        system=system,
        config=config,
        layers_root=layers_root,
        functions_root=functions_root,
        env=Environment(account=account, region=region) if account and region else None,
    )
    acknowledge(stack)
    if nag:
        # write_suppressions_to_cloud_formation keeps each acknowledgment and its reason in the
        # template's Metadata (cdk_nag.rules_to_suppress): an audit trail reviewers can read.
        Validations.of(app).add_plugins(
            AwsSolutionsChecks(app, write_suppressions_to_cloud_formation=True)
        )
    return app, stack


def main() -> None:
    # Missing assets surface as construct warnings in the CLI's output (and in cdk.out's
    # validation-report.json); -c strict_assets=true makes them errors.
    app, _ = build_app()
    app.synth()


if __name__ == "__main__":
    main()
