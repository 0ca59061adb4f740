"""Where fraud models live and how the scorer gets them.

Models bucket layout: ``fraud/<version>/model.npz`` and ``fraud/<version>/manifest.json``
(written last: a version exists once its manifest does); ``fraud/live.json`` names the version
that decides, ``fraud/candidate.json`` the one scored in shadow next to it. The model layer may
carry a baked version at ``/opt/models/fraud/`` (the last good one when S3 has none or a
corrupt one).

``ModelCache`` loads once per container and re-reads the pointers at most once a minute. A
missing or corrupt artifact (sha256 mismatch) never raises into the handler: it keeps the last
good model, else the layer's, else none (rules only), and says why in ``error``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from streamsense.fraud.model import ARTIFACT, MANIFEST, FraudModel, ModelIntegrityError, load, save
from streamsense.storage import ObjectNotFound, ObjectStore

PREFIX = "fraud/"
LIVE_KEY = f"{PREFIX}live.json"
CANDIDATE_KEY = f"{PREFIX}candidate.json"
LAYER_DIR = Path(os.environ.get("STREAMSENSE_MODEL_DIR", "/opt/models")) / "fraud"


def artifact_key(version: str, name: str) -> str:
    return f"{PREFIX}{version}/{name}"


def publish(store: ObjectStore, model: FraudModel, *, stage: str = "candidate") -> str:
    """Write a version (artifact first, manifest last) and point ``stage`` at it."""
    files = save(model)
    store.put(artifact_key(model.version, ARTIFACT), files[ARTIFACT])
    store.put(artifact_key(model.version, MANIFEST), files[MANIFEST], content_type="application/json")
    store.put(f"{PREFIX}{stage}.json", json.dumps({"version": model.version}).encode(), content_type="application/json")
    return model.version


def promote(store: ObjectStore) -> str:
    """Make the shadow candidate the live model (after its shadow scores were reviewed)."""
    pointer = store.get(CANDIDATE_KEY)
    store.put(LIVE_KEY, pointer, content_type="application/json")
    return str(json.loads(pointer)["version"])


def load_version(store: ObjectStore, version: str) -> FraudModel:
    return load({ARTIFACT: store.get(artifact_key(version, ARTIFACT)), MANIFEST: store.get(artifact_key(version, MANIFEST))})


def load_dir(path: Path) -> FraudModel:
    try:
        return load({ARTIFACT: (path / ARTIFACT).read_bytes(), MANIFEST: (path / MANIFEST).read_bytes()})
    except OSError as exc:
        raise ModelIntegrityError(f"no model in {path}: {exc}") from None


def write_dir(model: FraudModel, path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    for name, body in save(model).items():
        (path / name).write_bytes(body)


class ModelCache:
    """Live and candidate models for one container."""

    def __init__(self, store: ObjectStore | None, ttl_s: float = 60.0, layer_dir: Path = LAYER_DIR) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self.layer_dir = layer_dir
        self.live: FraudModel | None = None
        self.candidate: FraudModel | None = None
        self.error: str | None = None
        self._checked = -float("inf")

    def _pointer(self, key: str) -> str | None:
        if self.store is None:
            return None
        try:
            return str(json.loads(self.store.get(key))["version"])
        except ObjectNotFound:
            return None

    def refresh(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if now - self._checked < self.ttl_s:
            return
        self._checked = now
        errors = []
        try:
            version = self._pointer(LIVE_KEY)
            if version is not None and (self.live is None or self.live.version != version):
                assert self.store is not None
                self.live = load_version(self.store, version)
        except (ObjectNotFound, ModelIntegrityError, KeyError, ValueError) as exc:
            errors.append(f"live: {type(exc).__name__}: {exc}"[:300])
        if self.live is None:
            try:
                self.live = load_dir(self.layer_dir)
            except ModelIntegrityError as exc:
                errors.append(f"layer: {exc}"[:300])
        try:
            version = self._pointer(CANDIDATE_KEY)
            if version is None or (self.live is not None and version == self.live.version):
                self.candidate = None
            elif self.candidate is None or self.candidate.version != version:
                assert self.store is not None
                self.candidate = load_version(self.store, version)
        except (ObjectNotFound, ModelIntegrityError, KeyError, ValueError) as exc:
            self.candidate = None
            errors.append(f"candidate: {type(exc).__name__}: {exc}"[:300])
        self.error = "; ".join(errors) or None
