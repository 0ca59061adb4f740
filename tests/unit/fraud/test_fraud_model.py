"""The model as data: the exported trees score exactly as scikit-learn does, contributions add
up to the raw score, artifacts are verified before loading, and the registry falls back."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from streamsense.fraud import model as M
from streamsense.fraud.registry import (
    CANDIDATE_KEY,
    LIVE_KEY,
    ModelCache,
    artifact_key,
    publish,
    write_dir,
)
from streamsense.storage import MemoryObjectStore


def _data(n: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    X[rng.random((n, 5)) < 0.05] = np.nan  # missing values take the learned side
    y = ((np.nan_to_num(X[:, 0]) + 0.5 * np.nan_to_num(X[:, 1]) ** 2 + rng.normal(0, 0.5, n)) > 1.0).astype(int)
    return X, y


def test_exported_trees_score_exactly_like_sklearn() -> None:
    X, y = _data()
    clf = HistGradientBoostingClassifier(max_iter=40, max_leaf_nodes=15, max_depth=5, random_state=0, early_stopping=False).fit(X, y)
    trees = M.TreeEnsemble.from_sklearn(clf)
    model = M.FraudModel(trees, {"features": list("abcde")})
    np.testing.assert_allclose(model.score(X), clf.predict_proba(X)[:, 1], rtol=0, atol=1e-12)


def test_contributions_add_up_to_the_raw_score() -> None:
    X, y = _data()
    trees = M.fit_trees(X, y, {"max_iter": 30})
    bias, contrib = trees.contributions(X[:200])
    np.testing.assert_allclose(bias + contrib.sum(axis=1), trees.raw(X[:200]), rtol=0, atol=1e-9)
    linear = M.fit_linear(X, y)
    bias, contrib = linear.contributions(X[:200])
    np.testing.assert_allclose(bias + contrib.sum(axis=1), linear.raw(X[:200]), rtol=0, atol=1e-9)
    model = M.FraudModel(trees, {"features": list("abcde")})
    top = model.top_contributions(np.array([[3.0, 0.0, 0.0, 0.0, 0.0]]))
    assert top[0][0][0] == "a"  # x0 drives the label


def test_save_load_roundtrip_and_checksum_refusal() -> None:
    X, y = _data()
    model = M.FraudModel(M.fit_trees(X, y, {"max_iter": 20}), {"features": list("abcde"), "version": "v1"})
    files = M.save(model)
    loaded = M.load(files)
    np.testing.assert_array_equal(loaded.score(X), model.score(X))
    assert json.loads(files[M.MANIFEST])["sha256"] == M.sha256(files[M.ARTIFACT])
    tampered = bytearray(files[M.ARTIFACT])
    tampered[-10] ^= 0xFF
    with pytest.raises(M.ModelIntegrityError, match="sha256 mismatch"):
        M.load({**files, M.ARTIFACT: bytes(tampered)})
    with pytest.raises(M.ModelIntegrityError):
        M.load({M.MANIFEST: files[M.MANIFEST]})


def test_thresholds_are_calibrated_to_precision_targets() -> None:
    scores = np.linspace(1.0, 0.0, 1000)
    y = (np.arange(1000) < 100).astype(int)  # the top 100 scores are the frauds
    t = M.calibrate_thresholds(scores, y)
    # precision 0.9 holds down to rank 111 (100/111 = 0.9009), 0.6 to 166, 0.3 to 333
    assert t["block"] == pytest.approx(scores[110])
    assert t["review"] == pytest.approx(scores[165])
    assert t["challenge"] == pytest.approx(scores[332])


def test_registry_falls_back_to_the_layer_then_to_rules(tmp_path: Path) -> None:
    X, y = _data()
    good = M.FraudModel(M.fit_trees(X, y, {"max_iter": 10}), {"features": list("abcde"), "version": "v-layer"})
    store = MemoryObjectStore()
    cache = ModelCache(store, ttl_s=0, layer_dir=tmp_path / "none")
    cache.refresh(now=0)
    assert cache.live is None and "layer" in (cache.error or "")  # nothing anywhere: rules only

    write_dir(good, tmp_path / "fraud")
    live = M.FraudModel(good.estimator, {"features": list("abcde"), "version": "v2"})
    publish(store, live, stage="live")
    store.objects[artifact_key("v2", M.ARTIFACT)] = b"corrupted"
    cache = ModelCache(store, ttl_s=0, layer_dir=tmp_path / "fraud")
    cache.refresh(now=0)
    assert cache.live is not None and cache.live.version == "v-layer"  # the layer's last good one
    assert "sha256 mismatch" in (cache.error or "")

    publish(store, live, stage="live")  # a good upload: picked up on the next refresh
    cand = M.FraudModel(good.estimator, {"features": list("abcde"), "version": "v3"})
    publish(store, cand, stage="candidate")
    cache.refresh(now=1)
    assert (cache.live.version, cache.candidate.version if cache.candidate else None) == ("v2", "v3")
    assert cache.error is None
    assert json.loads(store.objects[LIVE_KEY])["version"] == "v2" and CANDIDATE_KEY in store.objects


def test_exported_forest_scores_exactly_like_sklearn() -> None:
    from sklearn.ensemble import RandomForestClassifier

    X, y = _data()
    rf = RandomForestClassifier(n_estimators=15, max_depth=8, random_state=0).fit(X, y)
    forest = M.TreeEnsemble.from_sklearn_forest(rf)
    model = M.load(M.save(M.FraudModel(forest, {"features": list("abcde"), "version": "rf"})))
    np.testing.assert_allclose(model.score(X), rf.predict_proba(X)[:, 1], rtol=0, atol=1e-12)
    bias, contrib = forest.contributions(X[:100])
    np.testing.assert_allclose(bias + contrib.sum(axis=1), model.score(X[:100]), rtol=0, atol=1e-9)
