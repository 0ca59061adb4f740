"""Where the stack finds its code: the layer builds (``make layers`` -> layers/build.py writes
them) and the function folders. Shared by the stack and the layer build so the two agree on the
layout.

Synthesizing must not require the ~200 MB ML layer to be built (tests that only inspect the
template, a fresh clone running ``cdk synth``): a missing asset falls back to a placeholder
directory with a warning on the construct. ``-c strict_assets=true`` (what ``make deploy``
passes) turns that into an error, so a placeholder never reaches an account."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

REPO = Path(__file__).resolve().parents[1]
BUILD_LAYERS = REPO / "build" / "layers"
BUILD_MODELS = REPO / "build" / "models"
FUNCTIONS = REPO / "functions"
PLACEHOLDER = Path(__file__).resolve().parent / "placeholder_asset"

LayerName = Literal["ml", "shared", "model"]
# Layers with compiled wheels (numpy, pydantic-core, ...) are built per CPU architecture.
ARCH_SPECIFIC: frozenset[str] = frozenset({"ml", "shared"})
# Lambda's limit on a function's code plus all its layers, unzipped.
LAMBDA_UNZIPPED_LIMIT_BYTES = 250 * 1024 * 1024


def layer_key(layer: str, architecture: str) -> str:
    """``ml-x86_64``, ``shared-arm64``, ``model`` (the model layer is data: any architecture)."""
    return f"{layer}-{architecture}" if layer in ARCH_SPECIFIC else layer


def layer_dir(layer: str, architecture: str, root: Path = BUILD_LAYERS) -> Path:
    return root / layer_key(layer, architecture)


def function_dir(name: str, root: Path = FUNCTIONS) -> Path:
    return root / name


class MissingAsset(FileNotFoundError):
    pass


@dataclass(frozen=True)
class Asset:
    path: Path
    placeholder: bool
    message: str = ""


def resolve(path: Path, what: str, hint: str, strict: bool) -> Asset:
    """The asset at ``path`` if it is a non-empty directory, else the placeholder (or an error
    when ``strict``). The layer build writes each layer to a temporary folder and renames it
    into place, so an existing folder is a complete build."""
    if path.is_dir() and any(path.iterdir()):
        return Asset(path, placeholder=False)
    message = f"{what}: {path} is missing ({hint}); using a placeholder asset that cannot run"
    if strict:
        raise MissingAsset(
            f"{what}: {path} is missing ({hint}); strict_assets forbids placeholders"
        )
    return Asset(PLACEHOLDER, placeholder=True, message=message)
