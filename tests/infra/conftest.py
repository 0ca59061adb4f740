"""Infra tests synthesize the dev and prod stacks once per session (cdk-nag's AwsSolutions pack
runs in that synth: an unacknowledged finding fails it). The layer root is an empty folder so
the template never depends on whether `make layers` ran; function folders are a snapshot of
functions/ taken at synth time."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # layers/ is a build script folder, not an installed package
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from infra.app import build_app, cdk_json_context  # noqa: E402
from infra.stack import StreamsenseStack  # noqa: E402

OWNER_ENV = {"USER": "Tester.Name"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # One xdist worker runs every infra test, so each stage is synthesized once.
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.xdist_group("infra-synth"))


@dataclass
class Synth:
    stack: StreamsenseStack
    template: dict[str, Any]
    outdir: Path
    layers_root: Path

    @property
    def resources(self) -> dict[str, Any]:
        return self.template["Resources"]  # type: ignore[no-any-return]

    def of_type(self, cfn_type: str) -> dict[str, Any]:
        return {k: v for k, v in self.resources.items() if v["Type"] == cfn_type}

    def named(self, kind: str) -> dict[str, tuple[str, dict[str, Any]]]:
        """SYSTEM name -> (logical id, resource) for resources marked streamsense:kind."""
        out = {}
        for logical, res in self.resources.items():
            meta = res.get("Metadata") or {}
            if meta.get("streamsense:kind") == kind:
                out[meta["streamsense:name"]] = (logical, res)
        return out

    def logical(self, kind: str, name: str) -> str:
        return self.named(kind)[name][0]

    def report(self) -> dict[str, Any] | None:
        path = self.outdir / "validation-report.json"
        return json.loads(path.read_text()) if path.is_file() else None


def _synth(tmp_path_factory: pytest.TempPathFactory, stage: str) -> Synth:
    outdir = tmp_path_factory.mktemp(f"cdk-out-{stage}")
    layers_root = tmp_path_factory.mktemp(f"no-layers-{stage}")
    # A snapshot of functions/, so the test sees the folders the synth saw while others add them.
    functions_root = tmp_path_factory.mktemp(f"functions-{stage}") / "functions"
    shutil.copytree(
        REPO / "functions", functions_root, ignore=shutil.ignore_patterns("__pycache__")
    )
    app, stack = build_app(
        {**cdk_json_context(), "stage": stage},
        outdir=str(outdir),
        environ=OWNER_ENV,
        layers_root=layers_root,
        functions_root=functions_root,
    )
    assembly = app.synth()  # raises if cdk-nag reports an unacknowledged finding
    template = assembly.get_stack_by_name(stack.stack_name).template
    return Synth(stack, template, outdir, layers_root)


@pytest.fixture(scope="session")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synth]:
    yield _synth(tmp_path_factory, "dev")


@pytest.fixture(scope="session")
def prod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synth]:
    yield _synth(tmp_path_factory, "prod")
