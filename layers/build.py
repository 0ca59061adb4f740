"""Build the Lambda layers into build/layers/ and measure them against Lambda's 250 MB limit.

    python -m layers.build                       # every layer SYSTEM's functions use
    python -m layers.build --layers shared       # one layer
    python -m layers.build --bundle-lambda-provided   # also ship boto3 & co. (default: Lambda's)

Layers (the layout is infra/assets.py's, which the CDK stack reads):

- ``shared-<arch>``: the ``streamsense`` package (shared/streamsense -> python/streamsense) and
  the light dependencies every function imports through it (pydantic, Powertools with its
  tracer). Functions that declare only ``("shared",)`` run on it alone.
- ``ml-<arch>``: the remaining runtime dependencies of pyproject.toml (numpy, scipy,
  scikit-learn, ddsketch and what they pull in).
- ``model``: artifacts from build/models/<model>/ with a manifest (version, training data
  window, metrics, sha256 per file) at /opt/models/manifest.json; empty but valid (a manifest
  that says so) when nothing has been trained yet.

Versions and wheel hashes come from uv.lock (the same resolution the venv uses), resolved for
Lambda's CPython 3.12 on manylinux (2014 and 2_28) wheels, installed with pip --platform
--only-binary=:all: --require-hashes, so no Docker and no compiler. boto3, botocore and their
dependencies are left out: the python3.12 runtime provides them. What is not needed at run time
is stripped; each category's savings are recorded in build/layers/sizes.json.

Checks that fail the build: a compiled module not built for cp312 on the target CPU, a
Requires-Dist not met by the layers plus the runtime, a function over 250 MB (code + layers),
and a handler that imports (through streamsense) a package none of its declared layers carries,
e.g. numpy in a function that only declares the shared layer. There is no CPython 3.12 on the
build host, so these checks are static; nothing is imported from the built layers."""

from __future__ import annotations

import argparse
import ast
import email.parser
import hashlib
import importlib.metadata
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.markers import Marker
from packaging.requirements import Requirement

from infra.assets import (
    ARCH_SPECIFIC,
    BUILD_LAYERS,
    BUILD_MODELS,
    LAMBDA_UNZIPPED_LIMIT_BYTES,
    REPO,
    function_dir,
    layer_key,
)
from infra.system import SYSTEM, System

TARGET_PYTHON = "3.12"
PLATFORMS = {
    "x86_64": ("manylinux2014_x86_64", "manylinux_2_28_x86_64"),
    "arm64": ("manylinux2014_aarch64", "manylinux_2_28_aarch64"),
}
MACHINE = {"x86_64": "x86_64", "arm64": "aarch64"}
# Shipped by the python3.12 Lambda runtime (boto3 and its dependency tree).
LAMBDA_PROVIDED = frozenset(
    {"boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3"}
)
# What the streamsense package itself imports at module scope (events.py, observability.py).
SHARED_ROOTS = ("pydantic", "aws-lambda-powertools")
# Never needed at run time: the code's own type stubs, sources and headers of compiled parts.
STRIP_SUFFIXES = {".pyi": "type stubs", ".pyx": "C sources", ".pxd": "C sources", ".c": "C sources",
                  ".cpp": "C sources", ".h": "C sources", ".hpp": "C sources"}  # fmt: skip
STRIP_DIST_INFO = ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def marker_env(architecture: str) -> dict[str, str]:
    """PEP 508 environment of Lambda's python3.12 runtime (Amazon Linux 2023)."""
    return {
        "python_version": TARGET_PYTHON,
        "python_full_version": f"{TARGET_PYTHON}.0",
        "implementation_name": "cpython",
        "implementation_version": f"{TARGET_PYTHON}.0",
        "platform_python_implementation": "CPython",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": MACHINE[architecture],
        "os_name": "posix",
        "platform_release": "",
        "platform_version": "",
        "extra": "",
    }


# ---- resolution from uv.lock -----------------------------------------------------------------


@dataclass(frozen=True)
class Locked:
    name: str
    version: str
    hashes: tuple[str, ...]
    deps: tuple[str, ...]  # canonical names, markers already evaluated for the target


@dataclass
class Resolution:
    packages: dict[str, Locked]
    roots: tuple[str, ...]  # the project's direct runtime dependencies

    def closure(self, names: Iterable[str]) -> set[str]:
        seen: set[str] = set()
        stack = [canonical(n) for n in names]
        while stack:
            name = stack.pop()
            if name in seen:
                continue
            seen.add(name)
            stack.extend(self.packages[name].deps)
        return seen


def resolve(lock_path: Path, pyproject: Path, architecture: str) -> Resolution:
    """Walk uv.lock from the project's runtime dependencies for the Lambda target."""
    lock = tomllib.loads(lock_path.read_text())
    project = tomllib.loads(pyproject.read_text())["project"]
    env = marker_env(architecture)
    entries: dict[str, list[dict[str, Any]]] = {}
    for pkg in lock["package"]:
        entries.setdefault(canonical(pkg["name"]), []).append(pkg)

    def applies(dep: Mapping[str, Any]) -> bool:
        return "marker" not in dep or Marker(dep["marker"]).evaluate(env)

    def pick(dep: Mapping[str, Any]) -> dict[str, Any]:
        options = entries[canonical(dep["name"])]
        if "version" in dep:
            options = [p for p in options if p["version"] == dep["version"]]
        if len(options) != 1:
            raise ValueError(f"uv.lock: cannot pick one {dep['name']} from {len(options)} entries")
        return options[0]

    me = pick({"name": project["name"]})
    packages: dict[str, Locked] = {}
    pending: list[tuple[dict[str, Any], tuple[str, ...]]] = []
    roots = []
    for dep in me.get("dependencies", []):
        if applies(dep):
            roots.append(canonical(dep["name"]))
            pending.append((pick(dep), tuple(dep.get("extra", ()))))
    visited: set[tuple[str, str]] = set()
    while pending:
        pkg, extras = pending.pop()
        name = canonical(pkg["name"])
        deps = [d for d in pkg.get("dependencies", []) if applies(d)]
        for extra in extras:
            deps += [d for d in pkg.get("optional-dependencies", {}).get(extra, []) if applies(d)]
        prior = packages.get(name)
        all_deps = sorted({*(prior.deps if prior else ()), *(canonical(d["name"]) for d in deps)})
        hashes = tuple(w["hash"] for w in pkg.get("wheels", []))
        packages[name] = Locked(name, pkg["version"], hashes, tuple(all_deps))
        for d in deps:
            key = (canonical(d["name"]), ",".join(d.get("extra", ())))
            if key not in visited:
                visited.add(key)
                pending.append((pick(d), tuple(d.get("extra", ()))))
    return Resolution(packages, tuple(sorted(set(roots))))


def partition(res: Resolution, bundle_provided: bool = False) -> dict[str, list[str]]:
    """Which packages go in which layer. Shared = what streamsense needs everywhere; ML = the
    rest of the runtime set; provided = what the Lambda runtime already has."""
    provided = set() if bundle_provided else set(LAMBDA_PROVIDED)
    everything = res.closure(res.roots)
    shared = res.closure(SHARED_ROOTS) - provided
    ml = everything - shared - provided
    return {
        "shared": sorted(shared),
        "ml": sorted(ml),
        "provided": sorted(everything & provided),
    }


# ---- install, strip, check -------------------------------------------------------------------


def requirements(res: Resolution, names: Iterable[str]) -> str:
    lines = []
    for name in sorted(names):
        pkg = res.packages[name]
        if not pkg.hashes:
            raise ValueError(
                f"uv.lock has no wheels for {name} {pkg.version}: cannot install for Lambda"
            )
        lines.append(f"{name}=={pkg.version} " + " ".join(f"--hash={h}" for h in pkg.hashes))
    return "\n".join(lines) + "\n"


def pip_install(reqs: str, target: Path, architecture: str) -> None:
    """pip for another platform: only wheels (no builds), exactly the locked versions and hashes."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write(reqs)
        req_file = f.name
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
           "--no-input", "--no-compile", "--no-deps", "--require-hashes", "--only-binary=:all:",
           "--implementation", "cp", "--python-version", TARGET_PYTHON,
           *(a for p in PLATFORMS[architecture] for a in ("--platform", p)),
           "--target", str(target), "-r", req_file]  # fmt: skip
    try:
        subprocess.run(cmd, check=True)
    finally:
        Path(req_file).unlink()


@dataclass
class StripReport:
    files: dict[str, int] = field(default_factory=dict)
    bytes: dict[str, int] = field(default_factory=dict)

    def add(self, category: str, nbytes: int, nfiles: int = 1) -> None:
        self.files[category] = self.files.get(category, 0) + nfiles
        self.bytes[category] = self.bytes.get(category, 0) + nbytes


def tree_size(path: Path) -> tuple[int, int]:
    """(bytes, files) unzipped, as Lambda counts it."""
    total = count = 0
    for p in path.rglob("*"):
        if p.is_file() and not p.is_symlink():
            total += p.stat().st_size
            count += 1
    return total, count


# The CDK CLI zips asset folders with yazl's default deflate (zlib level 6): the same here.
ZIP_LEVEL = 6


def write_zip(path: Path, sink: Any) -> None:
    """The folder as a deflated zip, the way the CDK CLI uploads an asset: files in sorted
    order, fixed timestamps, so the same tree gives the same bytes."""
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_DEFLATED, compresslevel=ZIP_LEVEL) as zf:
        for p in sorted(path.rglob("*")):
            if p.is_file() and not p.is_symlink():
                info = zipfile.ZipInfo(p.relative_to(path).as_posix(), (1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = (p.stat().st_mode & 0xFFFF) << 16
                zf.writestr(info, p.read_bytes(), compresslevel=ZIP_LEVEL)


def zipped_size(path: Path) -> int:
    """Bytes of ``write_zip(path)``: what is stored and downloaded for a layer. Lambda's own
    limit is on the unzipped size."""
    with tempfile.TemporaryFile() as sink:
        write_zip(path, sink)
        return sink.tell()


def _is_test_dir(path: Path) -> bool:
    if path.name == "tests":
        return True
    # joblib-style "test" folders: only when they really hold test modules.
    return path.name == "test" and any(path.glob("test_*.py"))


def strip(root: Path) -> StripReport:
    """Remove what is never used at run time. Kept on purpose: licenses (dist-info/licenses),
    METADATA (importlib.metadata version lookups), numpy.testing (sklearn imports it)."""
    report = StripReport()
    for path in sorted(root.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if not path.exists():
            continue
        if path.is_dir():
            if path.name == "__pycache__":
                category = "__pycache__ (compiled for the build host, not 3.12)"
            elif _is_test_dir(path) and path.parent != root:
                category = "test suites"
            elif path.name == "bin" and path.parent == root / "python":  # pip --target scripts
                category = "console scripts"
            else:
                continue
            size, files = tree_size(path)
            shutil.rmtree(path)
            report.add(category, size, files)
        elif path.suffix in STRIP_SUFFIXES and "dist-info" not in path.parent.name:
            report.add(STRIP_SUFFIXES[path.suffix], path.stat().st_size)
            path.unlink()
        elif path.parent.name.endswith(".dist-info") and path.name in STRIP_DIST_INFO:
            report.add("dist-info RECORD/INSTALLER", path.stat().st_size)
            path.unlink()
    return report


_EXT = re.compile(r"\.(?P<tag>cpython-\d+[a-z]*-[a-z0-9_]+-linux-gnu|abi3)\.so$")


def check_extensions(site: Path, architecture: str) -> list[str]:
    """Every compiled module must be for CPython 3.12 (or the stable ABI) on the target CPU."""
    want = f"cpython-312-{MACHINE[architecture]}-linux-gnu"
    bad = []
    for so in site.rglob("*.so"):
        m = _EXT.search(so.name)
        if m and m.group("tag") not in (want, "abi3"):
            bad.append(str(so.relative_to(site)))
    return bad


def check_closure(site: Path, env: Mapping[str, str], available: set[str]) -> list[str]:
    """Every Requires-Dist of every installed distribution (markers evaluated for Lambda) is
    satisfied by this layer, the layers it is used with, or the runtime. Static, because this
    host has no CPython 3.12 to import the cp312 wheels with."""
    parser = email.parser.Parser()
    installed = {canonical(d.name.split("-")[0]) for d in site.glob("*.dist-info")}
    have = installed | available
    missing = []
    for dist in sorted(site.glob("*.dist-info")):
        meta = parser.parsestr((dist / "METADATA").read_text(errors="replace"))
        for raw in meta.get_all("Requires-Dist") or []:
            req = Requirement(raw)
            if req.marker is not None and not req.marker.evaluate(dict(env)):
                continue
            if canonical(req.name) not in have:
                missing.append(f"{dist.name}: {raw}")
    return missing


# ---- do a function's layers cover its imports? -------------------------------------------------


def _module_file(module: str, search: list[Path]) -> Path | None:
    rel = Path(*module.split("."))
    for root in search:
        for candidate in (root / rel.with_suffix(".py"), root / rel / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _guarded_by_import_error(node: ast.Try) -> bool:
    return any(
        isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError")
        for h in node.handlers
    )


def _imports(path: Path, package: str) -> set[str]:
    """Every module a file may import when run (module scope and inside functions), except
    typing-only imports and optional ones guarded by ``except ImportError``."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for branch in node.orelse:
                visit(branch)
            return
        if isinstance(node, ast.Try) and _guarded_by_import_error(node):
            for part in [*node.handlers, *node.orelse, *node.finalbody]:
                visit(part)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), filename=str(path)))
    return found


def third_party_imports(handler: Path, shared_root: Path = REPO / "shared") -> dict[str, Path]:
    """Top-level third-party modules a handler reaches through its own folder and streamsense,
    each with the first file found importing it."""
    search = [handler.parent, shared_root]
    seen: set[Path] = set()
    pending: list[tuple[Path, str]] = [(handler, "")]
    third: dict[str, Path] = {}
    local = {p.stem for p in handler.parent.glob("*.py")}
    while pending:
        path, package = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        for module in _imports(path, package):
            top = module.split(".")[0]
            if top == "streamsense" or top in local:
                parts = module.split(".")
                # importing a.b.c runs a/__init__, a/b/__init__ and a/b/c
                for i in range(1, len(parts) + 1):
                    name = ".".join(parts[:i])
                    file = _module_file(name, search)
                    if file is not None:
                        pkg = name if file.name == "__init__.py" else ".".join(parts[: i - 1])
                        pending.append((file, pkg))
            elif top and top not in sys.stdlib_module_names and top != "__future__":
                third.setdefault(top, path)
    return third


def check_function_imports(
    system: System, res: Resolution, functions_root: Path | None = None
) -> dict[str, list[str]]:
    """For each function with code: third-party modules it imports that none of its declared
    layers (nor the runtime) provides. Module -> distribution comes from the build venv's
    metadata, which is locked to the same versions."""
    parts = partition(res)
    by_layer = {"shared": set(parts["shared"]), "ml": set(parts["ml"]), "model": set()}
    dists_of = {
        k: {canonical(d) for d in v} for k, v in importlib.metadata.packages_distributions().items()
    }
    problems: dict[str, list[str]] = {}
    for fn in system.functions:
        handler = (
            function_dir(fn.name) if functions_root is None else functions_root / fn.name
        ) / "handler.py"
        if not handler.is_file():
            continue
        available = set(parts["provided"]).union(*(by_layer[layer] for layer in fn.layers))
        for module, source in sorted(third_party_imports(handler).items()):
            dists = dists_of.get(module, set())
            where = source.relative_to(REPO) if source.is_relative_to(REPO) else source.name
            if not dists:
                problems.setdefault(fn.name, []).append(
                    f"{module}: not installed in the build venv"
                )
            elif not dists & available:
                problems.setdefault(fn.name, []).append(
                    f"{module} ({', '.join(sorted(dists))}, imported by {where}) "
                    f"is not in its layers {list(fn.layers)}"
                )
    return problems


# ---- the layers ------------------------------------------------------------------------------


@dataclass
class LayerResult:
    key: str
    path: Path
    bytes: int
    files: int
    stripped: StripReport
    packages: dict[str, str]
    seconds: float
    zipped_bytes: int = 0
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "path": str(self.path.relative_to(REPO))
            if self.path.is_relative_to(REPO)
            else str(self.path),
            "bytes": self.bytes,
            "mb": round(self.bytes / 2**20, 2),
            "files": self.files,
            "zipped_bytes": self.zipped_bytes,
            "zipped_mb": round(self.zipped_bytes / 2**20, 2),
            "packages": self.packages,
            "stripped_bytes": dict(sorted(self.stripped.bytes.items())),
            "stripped_files": dict(sorted(self.stripped.files.items())),
            "stripped_total_bytes": sum(self.stripped.bytes.values()),
            "build_s": round(self.seconds, 1),
            "notes": self.notes,
        }


def _swap_into_place(tmp: Path, final: Path) -> None:
    # The stack treats an existing folder as a complete build, so it appears only when done.
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)


def build_python_layer(
    layer: str,
    architecture: str,
    res: Resolution,
    names: list[str],
    out: Path,
    available: set[str],
    with_code: bool,
) -> LayerResult:
    started = time.perf_counter()
    key = layer_key(layer, architecture)
    final = out / key
    tmp = out / f".tmp-{key}"
    if tmp.exists():
        shutil.rmtree(tmp)
    site = tmp / "python"
    site.mkdir(parents=True)
    if names:
        pip_install(requirements(res, names), site, architecture)
    if with_code:
        shutil.copytree(
            REPO / "shared" / "streamsense",
            site / "streamsense",
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "tests"),
        )
    stripped = strip(tmp)
    bad = check_extensions(site, architecture)
    if bad:
        raise RuntimeError(
            f"{key}: extension modules not built for cp312/{architecture}: {bad[:5]}"
        )
    missing = check_closure(site, marker_env(architecture), available)
    if missing:
        raise RuntimeError(f"{key}: unmet run-time requirements: {missing}")
    size, files = tree_size(tmp)
    zipped = zipped_size(tmp)
    _swap_into_place(tmp, final)
    packages = {n: res.packages[n].version for n in sorted(names)}
    if with_code:
        packages["streamsense"] = "(shared/streamsense)"
    return LayerResult(
        key, final, size, files, stripped, packages, time.perf_counter() - started, zipped
    )


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def model_manifest(models: Path) -> dict[str, Any]:
    """The model layer's manifest from build/models/<model>/manifest.json files.

    Each model's own manifest (written by its trainer) must give ``version``; the training data
    window and metrics are copied as given. Every artifact file is hashed here and checked
    against the sha256 its manifest declares (the trainers write ``{"artifact" | "model_key",
    "sha256"}`` for their one artifact, or a ``files`` map), so a corrupt or missing artifact
    fails the build instead of shipping."""
    entries = []
    if models.is_dir():
        for model_dir in sorted(p for p in models.iterdir() if p.is_dir()):
            manifest_path = model_dir / "manifest.json"
            if not manifest_path.is_file():
                raise ValueError(f"{model_dir}: no manifest.json (version, data window, metrics)")
            declared = json.loads(manifest_path.read_text())
            if not declared.get("version"):
                raise ValueError(f"{manifest_path}: no version")
            found = {
                f.relative_to(model_dir).as_posix(): f
                for f in sorted(model_dir.rglob("*"))
                if f.is_file() and f != manifest_path and "__pycache__" not in f.parts
            }
            expected = declared_hashes(declared, list(found))
            missing = sorted(set(expected) - set(found))
            if missing:
                raise ValueError(f"{manifest_path}: declared artifacts missing: {missing}")
            files = []
            for rel, f in found.items():
                digest = _sha256(f)
                if rel in expected and expected[rel] != digest:
                    raise ValueError(
                        f"{f}: sha256 {digest} does not match its manifest ({expected[rel]})"
                    )
                files.append(
                    {
                        "path": rel,
                        "sha256": digest,
                        "bytes": f.stat().st_size,
                        "verified": rel in expected,
                    }
                )
            entries.append(
                {
                    "model": model_dir.name,
                    "version": declared["version"],
                    "training_data_window": declared.get(
                        "training_data_window", declared.get("data_window")
                    ),
                    "metrics": declared.get("metrics"),
                    "files": files,
                    "source_manifest": declared,
                }
            )
    manifest: dict[str, Any] = {"schema": 1, "root": "/opt/models", "models": entries}
    if not entries:
        manifest["note"] = (
            "no model artifacts in build/models at build time: this layer is intentionally empty; "
            "functions load from the S3 model store or fall back to rules"
        )
    return manifest


def declared_hashes(declared: Mapping[str, Any], present: list[str]) -> dict[str, str]:
    """path -> sha256 that a trainer's manifest declares."""
    files = declared.get("files")
    if isinstance(files, Mapping):
        return {
            str(k): str(v.get("sha256") if isinstance(v, Mapping) else v)
            for k, v in files.items()
            if v is not None
        }
    if isinstance(files, list):
        return {
            str(i["path"]): str(i["sha256"])
            for i in files
            if isinstance(i, Mapping) and "sha256" in i
        }
    sha = declared.get("sha256")
    if isinstance(sha, str):
        artifact = declared.get("artifact") or (
            str(declared["model_key"]).rsplit("/", 1)[-1] if declared.get("model_key") else None
        )
        if artifact is None and len(present) == 1:
            artifact = present[0]
        if artifact is not None:
            return {str(artifact): sha}
    return {}


def build_model_layer(out: Path, models: Path = BUILD_MODELS) -> LayerResult:
    started = time.perf_counter()
    final, tmp = out / "model", out / ".tmp-model"
    if tmp.exists():
        shutil.rmtree(tmp)
    root = tmp / "models"
    root.mkdir(parents=True)
    manifest = model_manifest(models)
    for entry in manifest["models"]:
        shutil.copytree(models / entry["model"], root / entry["model"])
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    stripped = strip(tmp)
    size, files = tree_size(tmp)
    zipped = zipped_size(tmp)
    _swap_into_place(tmp, final)
    packages = {e["model"]: str(e["version"]) for e in manifest["models"]}
    notes = [manifest["note"]] if "note" in manifest else []
    return LayerResult(
        "model", final, size, files, stripped, packages, time.perf_counter() - started, zipped, notes
    )


def function_sizes(system: System, layers: Mapping[str, int]) -> dict[str, Any]:
    """Each function's code plus its layers, unzipped, against the 250 MB limit."""
    out = {}
    for fn in system.functions:
        code = function_dir(fn.name)
        code_bytes = 0
        if code.is_dir():
            code_bytes = sum(
                p.stat().st_size
                for p in code.rglob("*")
                if p.is_file()
                and "__pycache__" not in p.parts
                and p.suffix != ".pyc"
                and "tests" not in p.parts
            )
        keys = [layer_key(layer, fn.architecture) for layer in fn.layers]
        unknown = [k for k in keys if k not in layers]
        total = code_bytes + sum(layers.get(k, 0) for k in keys)
        out[fn.name] = {
            "layers": keys,
            "code_bytes": code_bytes,
            "code_present": code.is_dir(),
            "bytes": total,
            "mb": round(total / 2**20, 2),
            "limit_mb": LAMBDA_UNZIPPED_LIMIT_BYTES / 2**20,
            "headroom_mb": round((LAMBDA_UNZIPPED_LIMIT_BYTES - total) / 2**20, 2),
            "under_limit": total <= LAMBDA_UNZIPPED_LIMIT_BYTES,
            "unmeasured_layers": unknown,
        }
    return out


def measure_provided(res: Resolution, names: list[str], architecture: str) -> dict[str, Any]:
    """What leaving boto3 & co. to the runtime saves: install them aside and measure."""
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "python"
        pip_install(requirements(res, names), site, architecture)
        strip(Path(tmp))
        size, files = tree_size(Path(tmp))
    return {
        "packages": {n: res.packages[n].version for n in names},
        "bytes": size,
        "mb": round(size / 2**20, 2),
        "files": files,
    }


def used_layers(system: System) -> list[tuple[str, str]]:
    keys = {
        (layer, fn.architecture if layer in ARCH_SPECIFIC else "")
        for fn in system.functions
        for layer in fn.layers
    }
    return sorted(keys)


def print_table(sizes: Mapping[str, Any]) -> None:
    print(f"\n{'layer':<18}{'MB':>9}{'zip MB':>9}{'files':>8}{'stripped MB':>13}  packages")
    for key, layer in sizes["layers"].items():
        stripped = layer["stripped_total_bytes"] / 2**20
        zipped = layer.get("zipped_mb", float("nan"))  # absent in a sizes.json from before
        pk = ", ".join(f"{n} {v}" for n, v in layer["packages"].items()) or "-"
        print(
            f"{key:<18}{layer['mb']:>9.2f}{zipped:>9.2f}{layer['files']:>8}{stripped:>13.2f}  {pk[:90]}"
        )
    if sizes.get("lambda_provided"):
        lp = sizes["lambda_provided"]
        print(
            f"{'(left to runtime)':<18}{lp['mb']:>9.2f}{'':>9}{lp['files']:>8}{'':>13}  {', '.join(lp['packages'])}"
        )
    print(
        f"\n{'function':<18}{'MB':>9}{'headroom':>10}  layers (limit {LAMBDA_UNZIPPED_LIMIT_BYTES / 2**20:.0f} MB unzipped)"
    )
    for name, fn in sizes["functions"].items():
        flag = "" if fn["under_limit"] else "  OVER THE LIMIT"
        extra = (
            f"  (not measured: {', '.join(fn['unmeasured_layers'])})"
            if fn["unmeasured_layers"]
            else ""
        )
        print(
            f"{name:<18}{fn['mb']:>9.2f}{fn['headroom_mb']:>10.2f}  {' + '.join(fn['layers'])}{extra}{flag}"
        )


def build(
    wanted: set[str],
    out: Path = BUILD_LAYERS,
    models: Path = BUILD_MODELS,
    *,
    system: System = SYSTEM,
    bundle_provided: bool = False,
    measure_left_out: bool = True,
) -> dict[str, Any]:
    """Build the wanted layers SYSTEM uses, merge with earlier builds' sizes, write
    ``out/sizes.json`` and return it."""
    out.mkdir(parents=True, exist_ok=True)
    sizes_path = out / "sizes.json"
    previous = json.loads(sizes_path.read_text()) if sizes_path.is_file() else {}
    layer_sizes: dict[str, Any] = dict(previous.get("layers", {}))
    lambda_provided = previous.get("lambda_provided")
    lock, pyproject = REPO / "uv.lock", REPO / "pyproject.toml"

    for layer, arch in used_layers(system):
        if layer not in wanted:
            continue
        if layer == "model":
            result = build_model_layer(out, models)
        else:
            res = resolve(lock, pyproject, arch)
            parts = partition(res, bundle_provided)
            runtime = set(parts["provided"])
            if layer == "shared":
                result = build_python_layer(
                    "shared", arch, res, parts["shared"], out, runtime, with_code=True
                )
            else:
                # The ML layer is always deployed next to the shared one (the stack checks it).
                result = build_python_layer(
                    "ml",
                    arch,
                    res,
                    parts["ml"],
                    out,
                    runtime | set(parts["shared"]),
                    with_code=False,
                )
                if parts["provided"] and measure_left_out:
                    lambda_provided = measure_provided(res, parts["provided"], arch)
        layer_sizes[result.key] = result.summary()
        print(
            f"built {result.key}: {result.bytes / 2**20:.2f} MB ({result.zipped_bytes / 2**20:.2f} MB zipped)"
            f" in {result.seconds:.1f} s",
            flush=True,
        )

    sizes: dict[str, Any] = {
        "limit_bytes": LAMBDA_UNZIPPED_LIMIT_BYTES,
        "target": {"python": TARGET_PYTHON, "platforms": PLATFORMS},
        "layers": dict(sorted(layer_sizes.items())),
        "lambda_provided": lambda_provided,
        "functions": function_sizes(system, {k: v["bytes"] for k, v in layer_sizes.items()}),
    }
    sizes_path.write_text(json.dumps(sizes, indent=2) + "\n")
    return sizes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m layers.build", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("--layers", default="ml,shared,model", help="comma list of ml, shared, model")
    ap.add_argument("--out", type=Path, default=BUILD_LAYERS)
    ap.add_argument("--models", type=Path, default=BUILD_MODELS)
    ap.add_argument(
        "--bundle-lambda-provided", action="store_true", help="ship boto3 & co. in the layers"
    )
    ap.add_argument(
        "--skip-provided-measure",
        action="store_true",
        help="do not measure what leaving boto3 out saves",
    )
    args = ap.parse_args(argv)
    wanted = {x.strip() for x in args.layers.split(",") if x.strip()}
    if not wanted <= {"ml", "shared", "model"}:
        ap.error(f"unknown layers: {sorted(wanted - {'ml', 'shared', 'model'})}")
    sizes = build(
        wanted,
        args.out,
        args.models,
        bundle_provided=args.bundle_lambda_provided,
        measure_left_out=not args.skip_provided_measure,
    )
    print_table(sizes)
    import_problems = check_function_imports(
        SYSTEM, resolve(REPO / "uv.lock", REPO / "pyproject.toml", "x86_64")
    )
    for fn_name, problems in import_problems.items():
        for problem in problems:
            print(f"ERROR: {fn_name} imports {problem}", file=sys.stderr)
    sizes_path = args.out / "sizes.json"
    print(
        f"\nwrote {sizes_path.relative_to(REPO) if sizes_path.is_relative_to(REPO) else sizes_path}"
    )
    over = [n for n, f in sizes["functions"].items() if not f["under_limit"]]
    if over:
        limit_mb = LAMBDA_UNZIPPED_LIMIT_BYTES / 2**20
        print(f"ERROR: over Lambda's {limit_mb:.0f} MB unzipped limit: {over}", file=sys.stderr)
    return 1 if over or import_problems else 0


if __name__ == "__main__":
    sys.exit(main())
