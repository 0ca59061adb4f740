"""The layer build: resolution from uv.lock for Lambda's platform, the shared/ML split, stripping,
the model layer's manifest, and sizes against the 250 MB limit. The shared layer is really built
(pip from the lock, a few MB); the ~160 MB ML layer is checked from build/layers/sizes.json when
`make layers` has run."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import zipfile
from pathlib import Path

import pytest

from infra.assets import BUILD_LAYERS, LAMBDA_UNZIPPED_LIMIT_BYTES, REPO
from infra.system import SYSTEM
from layers import build as lb
from tests.infra.test_normalize import TINY

LIMIT = 250 * 1024 * 1024


@pytest.fixture(scope="module")
def resolution() -> lb.Resolution:
    return lb.resolve(REPO / "uv.lock", REPO / "pyproject.toml", "x86_64")


def test_limit_is_lambdas() -> None:
    assert LAMBDA_UNZIPPED_LIMIT_BYTES == LIMIT == 262_144_000


def test_resolution_is_for_cpython_312(resolution: lb.Resolution) -> None:
    assert set(resolution.roots) == {
        "aws-lambda-powertools",
        "boto3",
        "ddsketch",
        "numpy",
        "pydantic",
        "scikit-learn",
        "scipy",
    }
    lock = (REPO / "uv.lock").read_text()
    # numpy/scipy have one pin per Python in uv.lock: the 3.12 one is chosen.
    numpy = resolution.packages["numpy"].version
    assert f'name = "numpy"\nversion = "{numpy}"' in lock
    assert all(pkg.hashes for pkg in resolution.packages.values() if pkg.name != "streamsense")
    assert "colorama" not in resolution.packages  # win32-only markers evaluated out


def test_partition_shared_ml_and_what_lambda_provides(resolution: lb.Resolution) -> None:
    parts = lb.partition(resolution)
    shared, ml, provided = set(parts["shared"]), set(parts["ml"]), set(parts["provided"])
    assert {"pydantic", "pydantic-core", "aws-lambda-powertools", "aws-xray-sdk", "wrapt"} <= shared
    assert {"numpy", "scipy", "scikit-learn", "joblib", "threadpoolctl", "ddsketch"} <= ml
    assert provided == {
        "boto3",
        "botocore",
        "s3transfer",
        "jmespath",
        "python-dateutil",
        "six",
        "urllib3",
    }
    assert not shared & ml and not (shared | ml) & provided
    assert shared | ml | provided == resolution.closure(resolution.roots)
    bundled = lb.partition(resolution, bundle_provided=True)
    assert (
        bundled["provided"] == [] and "botocore" in bundled["shared"] and "boto3" in bundled["ml"]
    )


def test_strip_removes_only_what_is_not_run(tmp_path: Path) -> None:
    site = tmp_path / "python"
    files = {
        "pkg/__init__.py": b"x" * 10,
        "pkg/core.pyi": b"s" * 7,
        "pkg/_ext.pxd": b"c" * 5,
        "pkg/__pycache__/core.cpython-311.pyc": b"p" * 11,
        "pkg/tests/test_core.py": b"t" * 13,
        "pkg/sub/tests/data.bin": b"t" * 17,
        "pkg/testing.py": b"k" * 3,  # a runtime module named like tests: kept
        "pkg/test/helpers.py": b"h" * 4,  # "test" without test_*.py modules: kept
        "joblib/test/test_x.py": b"j" * 6,  # "test" holding test modules: removed
        "pkg-1.0.dist-info/RECORD": b"r" * 19,
        "pkg-1.0.dist-info/METADATA": b"m" * 23,
        "pkg-1.0.dist-info/licenses/LICENSE": b"l" * 29,
        "bin/f2py": b"b" * 31,
    }
    for rel, data in files.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_bytes(data)
    (tmp_path / "bin").mkdir()  # a top-level bin next to python/ is layer content: kept
    report = lb.strip(tmp_path)
    left = sorted(p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file())
    assert left == [
        "pkg-1.0.dist-info/METADATA",
        "pkg-1.0.dist-info/licenses/LICENSE",
        "pkg/__init__.py",
        "pkg/test/helpers.py",
        "pkg/testing.py",
    ]
    assert report.bytes == {
        "__pycache__ (compiled for the build host, not 3.12)": 11,
        "test suites": 13 + 17 + 6,
        "type stubs": 7,
        "C sources": 5,
        "dist-info RECORD/INSTALLER": 19,
        "console scripts": 31,
    }


def test_zipped_size_is_the_deflated_zip_of_the_tree(tmp_path: Path) -> None:
    tree = tmp_path / "layer"
    (tree / "python" / "pkg").mkdir(parents=True)
    (tree / "python" / "pkg" / "zeros.bin").write_bytes(bytes(100_000))
    (tree / "python" / "pkg" / "__init__.py").write_text("x = 1\n")
    archive = tmp_path / "layer.zip"
    with archive.open("wb") as sink:
        lb.write_zip(tree, sink)
    with zipfile.ZipFile(archive) as zf:
        assert zf.namelist() == ["python/pkg/__init__.py", "python/pkg/zeros.bin"]
        assert zf.read("python/pkg/zeros.bin") == bytes(100_000)
        assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_DEFLATED}
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    size = lb.zipped_size(tree)
    assert size == archive.stat().st_size == lb.zipped_size(tree)  # deterministic
    assert size < 1_000 < lb.tree_size(tree)[0]  # 100 kB of zeros deflate to a few hundred bytes


def test_extension_tags_are_checked(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    for name in (
        "ok.cpython-312-x86_64-linux-gnu.so",
        "abi.abi3.so",
        "bad.cpython-311-x86_64-linux-gnu.so",
        "arm.cpython-312-aarch64-linux-gnu.so",
    ):
        (tmp_path / "a" / name).write_bytes(b"")
    assert sorted(lb.check_extensions(tmp_path, "x86_64")) == [
        "a/arm.cpython-312-aarch64-linux-gnu.so",
        "a/bad.cpython-311-x86_64-linux-gnu.so",
    ]


def test_model_layer_manifest_hashes_and_checks(tmp_path: Path) -> None:
    models = tmp_path / "models"
    (models / "fraud").mkdir(parents=True)
    (models / "fraud" / "model.npz").write_bytes(b"abc")
    (models / "fraud" / "manifest.json").write_text(
        json.dumps(
            {
                "version": "2024-06-01T00:00:00Z-1",
                "data_window": ["2018-07-25", "2018-08-01"],
                "metrics": {"ap": 0.71},
                "files": {"model.npz": {"sha256": hashlib.sha256(b"abc").hexdigest()}},
            }
        )
    )
    result = lb.build_model_layer(tmp_path / "out", models)
    manifest = json.loads((tmp_path / "out" / "model" / "models" / "manifest.json").read_text())
    (entry,) = manifest["models"]
    assert entry["model"] == "fraud" and entry["version"] == "2024-06-01T00:00:00Z-1"
    assert entry["training_data_window"] == ["2018-07-25", "2018-08-01"]
    assert entry["metrics"] == {"ap": 0.71}
    assert entry["files"] == [
        {
            "path": "model.npz",
            "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            "bytes": 3,
            "verified": True,
        }
    ]
    assert (tmp_path / "out" / "model" / "models" / "fraud" / "model.npz").read_bytes() == b"abc"
    assert result.packages == {"fraud": "2024-06-01T00:00:00Z-1"}
    # A corrupt artifact fails the build instead of shipping.
    (models / "fraud" / "model.npz").write_bytes(b"abd")
    with pytest.raises(ValueError, match="does not match its manifest"):
        lb.build_model_layer(tmp_path / "out", models)
    (models / "fraud" / "model.npz").write_bytes(b"abc")
    (models / "recs").mkdir()
    (models / "recs" / "x.npz").write_bytes(b"1")
    with pytest.raises(ValueError, match=r"recs: no manifest\.json"):
        lb.model_manifest(models)


def test_empty_model_layer_is_valid_and_says_so(tmp_path: Path) -> None:
    result = lb.build_model_layer(tmp_path / "out", tmp_path / "no-models")
    manifest = json.loads((tmp_path / "out" / "model" / "models" / "manifest.json").read_text())
    assert manifest["models"] == [] and "intentionally empty" in manifest["note"]
    assert result.notes == [manifest["note"]]
    assert result.files == 1


def test_function_sizes_add_code_and_layers(tmp_path: Path) -> None:
    sizes = lb.function_sizes(
        SYSTEM, {"ml-x86_64": 100 * 2**20, "shared-x86_64": 10 * 2**20, "model": 2**20}
    )
    scorer = sizes["fraud_scorer"]
    assert scorer["layers"] == ["ml-x86_64", "shared-x86_64", "model"]
    assert scorer["bytes"] == scorer["code_bytes"] + 111 * 2**20
    assert scorer["under_limit"] is True
    over = lb.function_sizes(
        SYSTEM, {"ml-x86_64": 245 * 2**20, "shared-x86_64": 6 * 2**20, "model": 0}
    )
    assert over["fraud_scorer"]["under_limit"] is False
    assert over["delivery_prefs"]["under_limit"] is True  # shared layer only


def test_shared_layer_builds_from_the_lock(tmp_path: Path) -> None:
    """The real build of the shared layer (pip --platform from uv.lock's hashes)."""
    sizes = lb.build({"shared"}, tmp_path, tmp_path / "no-models", measure_left_out=False)
    layer = tmp_path / "shared-x86_64"
    site = layer / "python"
    assert (site / "streamsense" / "events.py").read_bytes() == (
        REPO / "shared/streamsense/events.py"
    ).read_bytes()
    installed = {p.name.split("-")[0].lower() for p in site.glob("*.dist-info")}
    assert {
        "pydantic",
        "pydantic_core",
        "aws_lambda_powertools",
        "aws_xray_sdk",
        "wrapt",
    } <= installed
    assert not {"boto3", "botocore", "numpy", "scipy"} & installed
    assert any(
        p.name.endswith(".cpython-312-x86_64-linux-gnu.so")
        for p in (site / "pydantic_core").iterdir()
    )
    assert not list(site.rglob("__pycache__")) and not list(site.rglob("*.pyi"))
    assert not list(site.glob("*.dist-info/RECORD"))
    summary = sizes["layers"]["shared-x86_64"]
    assert summary["bytes"] == lb.tree_size(layer)[0]
    assert 2 * 2**20 < summary["bytes"] < 40 * 2**20
    assert summary["zipped_bytes"] == lb.zipped_size(layer)
    assert 0 < summary["zipped_bytes"] < summary["bytes"]
    assert (
        sizes["functions"]["investigation"]["bytes"]
        == summary["bytes"] + sizes["functions"]["investigation"]["code_bytes"]
    )


def test_built_layers_fit_lambdas_limit() -> None:
    """Reads the layer build's measurement (`make test` builds the layers first). Run alone
    without a build it skips, since building downloads ~60 MB of wheels; under CI it fails."""
    path = BUILD_LAYERS / "sizes.json"
    sizes = json.loads(path.read_text()) if path.is_file() else {"layers": {}}
    if "ml-x86_64" not in sizes["layers"]:
        message = "the ML layer has not been built: run `make layers` to measure the layers"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    assert sizes["limit_bytes"] == LIMIT
    for name, fn in sizes["functions"].items():
        assert fn["bytes"] <= LIMIT, name
        assert fn["unmeasured_layers"] == [], name
    assert sizes["layers"]["ml-x86_64"]["stripped_total_bytes"] > 0
    for key, layer in sizes["layers"].items():
        assert layer["zipped_bytes"] > 0, key
    # Wheels deflate to about a third; a near-empty layer (the model layer with only its
    # manifest, before any training) zips larger than it is, by the zip headers alone.
    for key in ("ml-x86_64", "shared-x86_64"):
        if key in sizes["layers"]:
            layer = sizes["layers"][key]
            assert layer["zipped_bytes"] < 0.5 * layer["bytes"], key
    model = sizes["layers"].get("model")
    if model is not None and model["files"] == 1:  # the manifest alone
        assert model["bytes"] < model["zipped_bytes"] < 1024


def test_function_imports_are_covered_by_declared_layers(resolution: lb.Resolution) -> None:
    # A function declaring only the shared layer must not reach numpy & co. through streamsense.
    assert lb.check_function_imports(SYSTEM, resolution) == {}


def test_import_check_catches_a_shared_only_function_importing_numpy(
    tmp_path: Path, resolution: lb.Resolution
) -> None:
    handler = tmp_path / "worker" / "handler.py"
    handler.parent.mkdir()
    (handler.parent / "helpers.py").write_text("def f():\n    import numpy as np\n    return np\n")
    handler.write_text(
        "from __future__ import annotations\n"
        "from typing import TYPE_CHECKING\n"
        "from streamsense.events import parse_event\n"
        "import helpers\n"
        "if TYPE_CHECKING:\n    import sklearn\n"
        "try:\n    import pandas\nexcept ImportError:\n    pandas = None\n"
    )
    assert set(lb.third_party_imports(handler)) == {"numpy", "pydantic"}
    (fn,) = TINY.functions
    shared_only = dataclasses.replace(
        TINY, functions=(dataclasses.replace(fn, name="worker", layers=("shared",)),)
    )
    assert lb.check_function_imports(shared_only, resolution, tmp_path) == {
        "worker": ["numpy (numpy, imported by helpers.py) is not in its layers ['shared']"]
    }
    with_ml = dataclasses.replace(TINY, functions=(dataclasses.replace(fn, name="worker"),))
    assert lb.check_function_imports(with_ml, resolution, tmp_path) == {}


@pytest.mark.parametrize(
    ("manifest", "present", "expected"),
    [
        # the fraud trainer's shape
        ({"artifact": "model.npz", "sha256": "aa"}, ["model.npz"], {"model.npz": "aa"}),
        # the recs trainer's shape (S3 key of its one artifact)
        ({"model_key": "recs/v1/model.npz", "sha256": "bb"}, ["model.npz"], {"model.npz": "bb"}),
        ({"sha256": "cc"}, ["only.npz"], {"only.npz": "cc"}),
        ({"sha256": "cc"}, ["a.npz", "b.json"], {}),  # ambiguous: nothing declared per file
        (
            {"files": {"a.npz": {"sha256": "dd"}, "b.json": "ee"}},
            ["a.npz", "b.json"],
            {"a.npz": "dd", "b.json": "ee"},
        ),
        ({"files": [{"path": "a.npz", "sha256": "ff"}]}, ["a.npz"], {"a.npz": "ff"}),
    ],
)
def test_declared_hashes_reads_each_trainers_manifest(
    manifest: dict[str, object], present: list[str], expected: dict[str, str]
) -> None:
    assert lb.declared_hashes(manifest, present) == expected


def test_declared_artifact_must_exist(tmp_path: Path) -> None:
    (tmp_path / "recs").mkdir()
    (tmp_path / "recs" / "manifest.json").write_text(
        json.dumps({"version": "v1", "model_key": "recs/v1/model.npz", "sha256": "00"})
    )
    (tmp_path / "recs" / "other.npz").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"declared artifacts missing: \['model.npz'\]"):
        lb.model_manifest(tmp_path)


def test_fraud_artifact_round_trips_through_the_model_layer(tmp_path: Path) -> None:
    """The fraud trainer's real artifact (npz + manifest with sha256) goes into the layer,
    verified, and the scorer's loader reads the layer copy at /opt/models/fraud."""
    import numpy as np
    from streamsense.fraud.model import FraudModel, fit_linear, manifest_for
    from streamsense.fraud.registry import load_dir, write_dir

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    model = FraudModel(
        fit_linear(X, (X[:, 0] > 0.5).astype(int)),
        manifest_for(
            "v-test",
            ["a", "b", "c"],
            ("2018-07-25", "2018-08-01"),
            {"holdout_ap": 0.5},
            {"block": 0.9},
            {},
        ),
    )
    write_dir(model, tmp_path / "models" / "fraud")
    lb.build_model_layer(tmp_path / "out", tmp_path / "models")
    layer_models = tmp_path / "out" / "model" / "models"
    (entry,) = json.loads((layer_models / "manifest.json").read_text())["models"]
    assert (entry["model"], entry["version"]) == ("fraud", "v-test")
    assert entry["training_data_window"] == {"start": "2018-07-25", "end": "2018-08-01"}
    assert [(f["path"], f["verified"]) for f in entry["files"]] == [("model.npz", True)]
    assert load_dir(layer_models / "fraud").manifest["version"] == "v-test"
