"""The variant policy: exact statistics, exact posterior, choice probabilities that are proper
distributions and are what gets logged."""

from __future__ import annotations

import numpy as np
import pytest
from streamsense.content.features import (
    ARM_FEATURES,
    FEATURES,
    Context,
    arm_features,
    context_matrix,
    feature_matrix,
    features,
    position_bucket,
)
from streamsense.content.model import (
    STATS_LEN,
    Choice,
    PolicyConfig,
    TitleStats,
    VariantStats,
    choice_probabilities,
    choose,
    merge_all,
    posterior,
)
from streamsense.events import ImpressionPayload


def test_features_are_the_documented_zero_one_code() -> None:
    assert FEATURES == ("position_1", "position_2", "position_3plus", "engaged", "affinity_ge1", "affinity_ge2")
    assert features(0, False, 0) == (0, 0, 0, 0, 0, 0)
    assert features(1, True, 0) == (1, 0, 0, 1, 0, 0)
    assert features(2, True, 1) == (0, 1, 0, 1, 1, 0)
    assert features(7, True, 5) == (0, 0, 1, 1, 1, 1)
    assert [position_bucket(p) for p in (-1, 0, 1, 2, 3, 40)] == [0, 0, 1, 2, 3, 3]
    m = context_matrix(Context(2, True, {"b": 2}), ["a", "b"])
    assert m.tolist() == [[0, 1, 0, 1, 0, 0], [0, 1, 0, 1, 1, 1]]


def test_variant_statistics_are_exact_integer_sums() -> None:
    s = VariantStats()
    s.add((0, 1, 0, 1, 1, 0), played=False)
    s.add((0, 0, 0, 0, 0, 0), played=True)
    s.add((1, 0, 0, 1, 0, 0), played=True)
    assert (s.n, s.plays) == (3, 2)
    assert s.z.tolist() == [1, 1, 0, 2, 1, 0]
    assert s.zr.tolist() == [1, 0, 0, 1, 0, 0]
    assert s.zz[3].tolist() == [1, 1, 0, 2, 1, 0]
    assert s.zz[0, 0] == 1 and s.zz[1, 4] == 1 and s.zz[0, 1] == 0
    flat = s.to_list()
    assert len(flat) == STATS_LEN == 35
    assert flat[:8] == [3, 2, 1, 1, 0, 2, 1, 0]
    assert VariantStats.from_list(flat) == s
    with pytest.raises(ValueError, match="35 numbers"):
        VariantStats.from_list(flat[:-1])


def _random_stats(seed: int, n: int) -> TitleStats:
    rng = np.random.default_rng(seed)
    t = TitleStats()
    for _ in range(n):
        t.add(f"v{rng.integers(3)}", features(int(rng.integers(4)), bool(rng.random() < 0.3), int(rng.integers(3))), bool(rng.random() < 0.2))
    return t


def test_merging_is_exact_commutative_and_associative() -> None:
    a, b, c = _random_stats(1, 50), _random_stats(2, 70), _random_stats(3, 30)
    assert a.merged(b) == b.merged(a)
    assert a.merged(b).merged(c) == a.merged(b.merged(c)) == merge_all([c, a, b])
    both = a.merged(b)
    assert both.impressions == 120 and both.plays == a.plays + b.plays
    # Merging is the same as having seen all impressions in one place.
    rng = np.random.default_rng(9)
    whole, left, right = TitleStats(), TitleStats(), TitleStats()
    for i in range(40):
        args = (f"v{rng.integers(2)}", features(int(rng.integers(4)), bool(rng.random() < 0.5), int(rng.integers(3))), bool(rng.random() < 0.3))
        whole.add(*args)
        (left if i % 3 else right).add(*args)
    assert left.merged(right) == whole
    assert TitleStats.from_dict(whole.to_dict()) == whole


def test_posterior_matches_the_conjugate_formula() -> None:
    # One variant, 10 impressions at the baseline context, 2 plays; nothing about gamma.
    t = TitleStats()
    for i in range(10):
        t.add("a", (0, 0, 0, 0, 0, 0), played=i < 2)
    cfg = PolicyConfig()
    post = posterior(t, ["a"], cfg)
    pooled = (2 + 1) / (10 + 20)
    noise = pooled * (1 - pooled)
    prior_prec = 1 / pooled**2
    expected_alpha = (prior_prec * pooled + 2 / noise) / (prior_prec + 10 / noise)
    assert post.pooled_rate == pytest.approx(0.1, abs=1e-15)
    assert post.mean[0] == pytest.approx(expected_alpha, rel=1e-12)
    assert np.allclose(post.mean[1:], 0.0)
    # Its variance is the inverse precision.
    cov = np.linalg.inv(post.chol @ post.chol.T)
    assert cov[0, 0] == pytest.approx(1 / (prior_prec + 10 / noise), rel=1e-12)
    assert cov[1, 1] == pytest.approx(cfg.effect_sd**2, rel=1e-12)


def _affinity_title() -> TitleStats:
    """Members with affinity to a variant play it at 30%, everyone else at 2%."""
    t = TitleStats()
    for v in ("a", "b", "c"):
        for i in range(500):
            t.add(v, features(i % 3, False, 0), played=i % 50 == 0)
        for i in range(40):
            t.add(v, features(0, True, 1), played=i % 10 < 3)
    return t


def test_choice_probabilities_sum_to_one_keep_a_floor_and_follow_context() -> None:
    t = _affinity_title()
    cfg = PolicyConfig(samples=4000, exploration=0.06, seed=3)
    contexts = [Context(0), Context(2, True, {"b": 1}), Context(1, True, {"c": 1})]
    p = choice_probabilities(t, ["a", "b", "c"], contexts, cfg)
    assert p.shape == (3, 3)
    assert np.allclose(p.sum(axis=1), 1.0, atol=1e-12)
    assert p.min() >= 0.06 / 3 - 1e-15
    assert p[1, 1] > 0.9 and p[2, 2] > 0.9  # the affinity variant wins
    assert np.all(np.abs(p[0] - 1 / 3) < 0.15)  # no evidence between variants otherwise
    # Deterministic given the config's seed; an offered variant without statistics competes too.
    assert np.array_equal(p, choice_probabilities(t, ["a", "b", "c"], contexts, cfg))
    q = choice_probabilities(t, ["a", "new"], [Context(0)], cfg)
    assert q.shape == (1, 2) and q.sum() == pytest.approx(1.0) and q[0, 1] > 0.03


def test_choose_draws_from_the_logged_distribution() -> None:
    t = _affinity_title()
    cfg = PolicyConfig(samples=1000, seed=1)
    rng = np.random.default_rng(0)
    ctx = Context(0, True, {"a": 1})
    choices = [choose(t, ["a", "b", "c"], ctx, rng, cfg) for _ in range(200)]
    first = choices[0]
    assert isinstance(first, Choice)
    assert sum(first.probabilities.values()) == pytest.approx(1.0, abs=1e-12)
    for c in choices:
        assert c.propensity == c.probabilities[c.variant_id]
        assert c.policy == f"lin-ts/e0.05/s1000/{t.digest()}"
    share_a = sum(c.variant_id == "a" for c in choices) / len(choices)
    assert abs(share_a - first.probabilities["a"]) < 0.08
    payload = ImpressionPayload.model_validate(first.impression_payload("p1", "t1", 0, played=True))
    assert payload.propensity == first.propensity and payload.variant_id == first.variant_id


def test_bad_candidate_lists_are_refused() -> None:
    with pytest.raises(ValueError, match="distinct"):
        posterior(TitleStats(), ["a", "a"], PolicyConfig())
    with pytest.raises(ValueError, match="distinct"):
        posterior(TitleStats(), [], PolicyConfig())


def test_vectorized_features_and_batch_updates_equal_the_one_by_one_path() -> None:
    rng = np.random.default_rng(11)
    n = 300
    pos, eng, aff = rng.integers(0, 9, n), rng.random(n) < 0.4, rng.integers(0, 4, n)
    names = [f"v{i}" for i in rng.integers(0, 4, n)]
    played = rng.random(n) < 0.2
    z = feature_matrix(pos, eng, aff)
    assert z.tolist() == [list(features(int(p), bool(e), int(a))) for p, e, a in zip(pos, eng, aff, strict=True)]
    one, many = TitleStats(), TitleStats()
    for i in range(n):
        one.add(names[i], z[i], bool(played[i]))
    many.add_batch(names, z, played)
    assert many == one


def test_arm_features_are_the_affinity_columns_of_the_context_matrix() -> None:
    ctxs = [Context(0), Context(3, True, {"b": 1, "zz": 4}), Context(1, True, {"a": 2, "c": 0})]
    variants = ["a", "b", "c"]
    arm = arm_features(ctxs, variants)
    for i, c in enumerate(ctxs):
        assert arm[i].tolist() == context_matrix(c, variants)[:, list(ARM_FEATURES)].tolist()
    assert arm[2].tolist() == [[1, 1], [0, 0], [0, 0]]
