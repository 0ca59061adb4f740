"""The anchors of benchmarks.md section 2, each a plain reference implementation written here
(independent of the product's code) except ALS, which is the peer library's (implicit).

Every ``fit_*`` takes the training interactions as a binary user x item CSR matrix and returns a
``Ranker``. Scores are computed for a whole batch of held-out users at once."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.linalg import lapack
from scipy.sparse.linalg import svds

from streamsense_bench.recs_protocol import Ranker, top_k


def fit_popularity(x: sp.csr_matrix) -> Ranker:
    pop = np.asarray(x.sum(axis=0)).ravel().astype(np.float64)

    def rank(inp: sp.csr_matrix, _t: sp.csr_matrix, k: int) -> np.ndarray:
        return top_k(np.tile(pop, (inp.shape[0], 1)), inp, k)

    return rank


def fit_itemknn(x: sp.csr_matrix, k_neighbors: int = 100) -> Ranker:
    """Item-based kNN, cosine similarity, each item's k most similar neighbours kept."""
    x = x.astype(np.float64).tocsc()
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0)).ravel())
    norms[norms == 0] = 1.0
    xn = x @ sp.diags(1.0 / norms)
    sim = np.asarray((xn.T @ xn).todense())
    np.fill_diagonal(sim, 0.0)
    # Keep, for each source item (row), its k most similar items.
    n = sim.shape[0]
    if n > k_neighbors:
        drop = np.argpartition(-sim, k_neighbors, axis=1)[:, k_neighbors:]
        np.put_along_axis(sim, drop, 0.0, axis=1)
    s = sp.csr_matrix(sim)

    def rank(inp: sp.csr_matrix, _t: sp.csr_matrix, k: int) -> np.ndarray:
        return top_k((inp @ s).toarray(), inp, k)

    return rank


def ease_weights(x: sp.csr_matrix, lam: float) -> np.ndarray:
    """EASE^R (Steck 2019): B = I - P / diag(P), P = (X^T X + lambda I)^-1, diag(B) = 0."""
    g = (x.T @ x).toarray().astype(np.float32)
    g[np.diag_indices_from(g)] += lam
    # Float32 Cholesky inverse: same result to ~1e-6 as float64, a third of the time.
    c, info = lapack.spotrf(g, lower=1, overwrite_a=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"potrf failed: {info}")
    p, info = lapack.spotri(c, lower=1, overwrite_c=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"potri failed: {info}")
    p = np.tril(p) + np.tril(p, -1).T
    b = -p / np.diag(p)
    np.fill_diagonal(b, 0.0)
    return b


def fit_ease(x: sp.csr_matrix, lam: float = 100.0) -> Ranker:
    b = ease_weights(x, lam)

    def rank(inp: sp.csr_matrix, _t: sp.csr_matrix, k: int) -> np.ndarray:
        return top_k(inp @ b, inp, k)

    return rank


def fit_puresvd(x: sp.csr_matrix, factors: int = 100) -> Ranker:
    """PureSVD (Cremonesi et al. 2010): project the user's row on the top item factors."""
    _, _, vt = svds(x.astype(np.float64), k=min(factors, min(x.shape) - 1), random_state=0)
    v = vt.T

    def rank(inp: sp.csr_matrix, _t: sp.csr_matrix, k: int) -> np.ndarray:
        return top_k((inp @ v) @ v.T, inp, k)

    return rank


def fit_als(x: sp.csr_matrix, factors: int = 64, regularization: float = 0.05,
            alpha: float = 2.0, iterations: int = 15, seed: int = 0) -> Ranker:
    """implicit's ALS (Hu, Koren, Volinsky 2008); held-out users are folded in with implicit's
    own ``recalculate_user`` path."""
    from implicit.cpu.als import AlternatingLeastSquares

    model = AlternatingLeastSquares(factors=factors, regularization=regularization, alpha=alpha,
                                    iterations=iterations, random_state=seed, num_threads=2)
    model.fit(x.astype(np.float32).tocsr(), show_progress=False)

    def rank(inp: sp.csr_matrix, _t: sp.csr_matrix, k: int) -> np.ndarray:
        ids, _ = model.recommend(np.arange(inp.shape[0]), inp.astype(np.float32).tocsr(), N=k,
                                 filter_already_liked_items=True, recalculate_user=True)
        return np.asarray(ids)

    return rank
