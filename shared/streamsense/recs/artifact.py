"""Model artifacts in a format that cannot execute code: one ``.npz`` of plain numeric and
unicode arrays (written and read with allow_pickle=False) and a JSON manifest (version, data
window, params, metrics, sha256 of the npz). Loading verifies the sha256 first: a corrupt or
tampered artifact raises ArtifactError and the caller keeps its last good model.

Layout in the models bucket: ``recs/<version>/model.npz``, ``recs/<version>/manifest.json``
(written last: a version exists once its manifest does), ``recs/current.json`` (which version
serving uses)."""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any

import numpy as np
import scipy.sparse as sp

from streamsense.recs.model import RecsModel, RecsParams
from streamsense.recs.serving import Recommender

FORMAT = "streamsense-recs/1"
PREFIX = "recs/"
CURRENT_KEY = "recs/current.json"


class ArtifactError(ValueError):
    """The artifact is missing, corrupt, or does not match its manifest."""


def model_key(version: str) -> str:
    return f"{PREFIX}{version}/model.npz"


def manifest_key(version: str) -> str:
    return f"{PREFIX}{version}/manifest.json"


def _put_csr(arrays: dict[str, np.ndarray], name: str, m: sp.csr_matrix) -> None:
    m = sp.csr_matrix(m)
    arrays[f"{name}__data"] = m.data.astype(np.float32)
    arrays[f"{name}__indices"] = m.indices.astype(np.int32)
    arrays[f"{name}__indptr"] = m.indptr.astype(np.int64)
    arrays[f"{name}__shape"] = np.array(m.shape, dtype=np.int64)


def _get_csr(z: Any, name: str) -> sp.csr_matrix:
    shape = tuple(int(v) for v in z[f"{name}__shape"])
    return sp.csr_matrix((z[f"{name}__data"], z[f"{name}__indices"], z[f"{name}__indptr"]), shape=shape)


def dumps(rec: Recommender) -> bytes:
    """The npz bytes of a trained recommender."""
    m = rec.model
    arrays: dict[str, np.ndarray] = {
        "titles": rec.titles.astype(str),
        "names": rec.names.astype(str),
        "regions": rec.regions.astype(str),
        "region_trend": rec.region_trend.astype(np.float32),
        "region_plays": rec.region_plays.astype(np.int64),
        "new_titles": rec.new_titles.astype(np.int64),
        "core": m.core.astype(np.int32),
        "pop": m.pop.astype(np.float32),
        "trend_end": m.trend_end.astype(np.float32),
        "window_end": np.array([m.window_end], dtype=np.float64),
    }
    if sp.issparse(m.ease):
        _put_csr(arrays, "ease_sparse", sp.csr_matrix(m.ease))
    else:
        arrays["ease_dense"] = np.asarray(m.ease, dtype=np.float32)
    _put_csr(arrays, "seq", m.seq)
    _put_csr(arrays, "content", rec.content)
    buf = io.BytesIO()
    np.savez_compressed(buf, allow_pickle=False, **arrays)  # type: ignore[arg-type]
    return buf.getvalue()


def make_manifest(version: str, body: bytes, rec: Recommender, *, window: tuple[int, int],
                  source: dict[str, Any], metrics: dict[str, Any], n_plays: int,
                  trained_at: str) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": version,
        "model_key": model_key(version),
        "sha256": hashlib.sha256(body).hexdigest(),
        "bytes": len(body),
        "data_window": {"start": window[0], "end": window[1]},
        "source": source,
        "params": rec.model.params.to_dict(),
        "metrics": metrics,
        "n_titles": len(rec.titles),
        "n_core_titles": len(rec.model.core),
        "n_plays": n_plays,
        "trained_at": trained_at,
    }


def loads(body: bytes, manifest: dict[str, Any]) -> Recommender:
    """Verify ``body`` against the manifest's sha256, then rebuild the recommender."""
    if manifest.get("format") != FORMAT:
        raise ArtifactError(f"unknown artifact format {manifest.get('format')!r}")
    digest = hashlib.sha256(body).hexdigest()
    if digest != manifest.get("sha256"):
        raise ArtifactError(f"sha256 mismatch: manifest {manifest.get('sha256')}, object {digest}")
    try:
        z = np.load(io.BytesIO(body), allow_pickle=False)
        ease: np.ndarray | sp.csr_matrix = (_get_csr(z, "ease_sparse") if "ease_sparse__data" in z
                                            else z["ease_dense"])
        n = len(z["titles"])
        model = RecsModel(
            params=RecsParams.from_dict(manifest["params"]), n_items=n, core=z["core"], ease=ease,
            seq=_get_csr(z, "seq"), pop=z["pop"], window_end=float(z["window_end"][0]),
            trend_end=z["trend_end"],
        )
        return Recommender(model=model, titles=z["titles"], names=z["names"],
                           content=_get_csr(z, "content"), regions=z["regions"],
                           region_trend=z["region_trend"], region_plays=z["region_plays"],
                           new_titles=z["new_titles"])
    except (KeyError, ValueError, OSError) as exc:
        raise ArtifactError(f"unreadable artifact: {exc}") from None


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    return json.dumps(manifest, indent=2, sort_keys=True).encode()
