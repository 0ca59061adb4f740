"""The model's maths on tiny inputs, checked against closed forms and hand-derived values."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from streamsense.recs.model import RecsModel, RecsParams, ease_weights, prune_columns


def test_ease_weights_match_the_closed_form() -> None:
    rng = np.random.default_rng(0)
    x = (rng.random((40, 12)) < 0.3).astype(np.float64)
    gram = x.T @ x
    b = ease_weights(gram, 5.0)
    p = np.linalg.inv(gram + 5.0 * np.eye(12))
    expected = np.eye(12) - p / np.diag(p)
    np.fill_diagonal(expected, 0.0)
    assert np.abs(b - expected).max() < 1e-5
    assert np.all(np.diag(b) == 0.0)


def test_ease_on_two_items_is_exact() -> None:
    # Two items always watched together by 3 members: G = [[3,3],[3,3]], lam = 1 ->
    # P = (G + I)^-1 = [[4,-3],[-3,4]] / 7, B[0,1] = -P[0,1] / P[1,1] = 3/4.
    b = ease_weights(np.array([[3.0, 3.0], [3.0, 3.0]]), 1.0)
    assert b.tolist() == [[0.0, pytest.approx(0.75, rel=1e-6)], [pytest.approx(0.75, rel=1e-6), 0.0]]


def test_prune_keeps_each_columns_strongest_weights() -> None:
    b = np.array([[0.0, 0.5, -0.9], [0.2, 0.0, 0.1], [-0.3, 0.4, 0.0]], dtype=np.float32)
    pruned = prune_columns(b, 1).toarray()
    assert pruned.tolist() == [[0.0, pytest.approx(0.5), pytest.approx(-0.9)],
                               [0.0, 0.0, 0.0], [pytest.approx(-0.3), 0.0, 0.0]]


def _fit(params: RecsParams) -> RecsModel:
    # member 0: 0 -> 1 -> 2; member 1: 0 -> 1 -> 2; member 2: 2 -> 3; item 4 played once.
    users = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2])
    items = np.array([0, 1, 2, 0, 1, 2, 2, 3, 4])
    ts = np.array([10, 20, 30, 11, 21, 31, 100, 200, 300], dtype=np.float64)
    return RecsModel.fit(users, items, ts, 5, params)


def test_transitions_count_what_comes_next_within_the_window() -> None:
    m = _fit(RecsParams(min_count=1, lam=1.0, seq_window=2, seq_pop_alpha=0.0, ease_keep=0))
    t = m.seq.toarray()
    # From item 0: item 1 next twice (weight 1 each), item 2 two plays later twice (1/2 each):
    # row sum 3 -> 2/3 and 1/3.
    assert t[0].tolist() == pytest.approx([0.0, 2 / 3, 1 / 3, 0.0, 0.0])
    # From item 2: item 3 (gap 1) and item 4 (gap 2) by member 2 only: 1 and 0.5 -> 2/3, 1/3.
    assert t[2].tolist() == pytest.approx([0.0, 0.0, 0.0, 2 / 3, 1 / 3])
    assert t[4].sum() == 0.0


def test_core_holds_titles_with_enough_plays() -> None:
    m = _fit(RecsParams(min_count=2, ease_keep=0))
    assert m.core.tolist() == [0, 1, 2]
    assert m.pop.tolist() == [2.0, 2.0, 3.0, 1.0, 1.0]


def test_recency_weights_decay_by_plays_ago() -> None:
    m = _fit(RecsParams(recency_floor=0.2, recency_plays=1.0))
    w = m.recency_weights(np.array([30.0, 10.0, 20.0]))
    # newest (30) weighs 1, then 0.2 + 0.8 e^-1, then 0.2 + 0.8 e^-2.
    assert w.tolist() == pytest.approx([1.0, 0.2 + 0.8 * np.exp(-2), 0.2 + 0.8 * np.exp(-1)], rel=1e-6)


def test_trending_is_causal_and_decays_with_the_half_life() -> None:
    m = _fit(RecsParams(trend_half_life_days=1.0))
    # At t=25 only the plays at 10, 11, 20, 21 exist (seconds apart: decay ~1).
    at = m.trending(25.0)
    assert at[[2, 3, 4]].tolist() == [0.0, 0.0, 0.0]
    assert at[0] == pytest.approx(2.0, abs=1e-3) and at[1] == pytest.approx(2.0, abs=1e-3)
    # One day after the window end everything is halved.
    assert m.trending(300.0 + 86_400)[4] == pytest.approx(0.5, rel=1e-5)


def test_scores_for_a_batch_equal_scores_one_by_one() -> None:
    m = _fit(RecsParams(min_count=1, lam=1.0, ease_keep=0, w_trend=0.2))
    hist = [(np.array([0]), np.array([50.0])), (np.array([2, 3]), np.array([60.0, 70.0]))]
    both = m.scores(hist, [50.0, 70.0])
    one = np.vstack([m.scores([h], [n]) for h, n in zip(hist, [50.0, 70.0], strict=True)])
    assert np.allclose(both, one)
    # A member who watched item 0 is pointed to item 1 first (always watched right after).
    assert int(np.argmax(np.where(np.arange(5) == 0, -np.inf, both[0]))) == 1


def test_sparse_ease_scores_like_the_dense_one_when_nothing_is_pruned() -> None:
    dense = _fit(RecsParams(min_count=1, lam=1.0, ease_keep=0))
    sparse = _fit(RecsParams(min_count=1, lam=1.0, ease_keep=4))
    assert sp.issparse(sparse.ease)
    hist = [(np.array([0, 2]), np.array([1.0, 2.0]))]
    assert np.allclose(dense.scores(hist, [2.0]), sparse.scores(hist, [2.0]), atol=1e-6)


def test_ease_weights_leave_the_callers_matrix_alone_unless_told() -> None:
    gram = np.array([[3.0, 3.0], [3.0, 3.0]], dtype=np.float32)
    ease_weights(gram, 1.0)
    assert gram.tolist() == [[3.0, 3.0], [3.0, 3.0]]


def test_prune_in_column_blocks_equals_one_block() -> None:
    rng = np.random.default_rng(1)
    b = rng.standard_normal((30, 30)).astype(np.float32)
    assert (prune_columns(b, 5, block=7) != prune_columns(b, 5, block=512)).nnz == 0
    assert np.all(np.diff(prune_columns(b, 5).tocsc().indptr) == 5)


def test_the_core_is_capped_to_the_most_played_titles() -> None:
    m = _fit(RecsParams(min_count=1, max_core=2, ease_keep=0))
    assert m.core.tolist() == [0, 2]  # item 2 (3 plays), then item 0 (2 plays, ties by index)
    assert m.ease.shape == (2, 2)
