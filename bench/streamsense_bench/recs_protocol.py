"""benchmarks.md section 2: the MovieLens ml-latest-small splits and ranking metrics.

Protocol A (strong generalization, Liang et al. 2018): ratings > 3.5 are positives, users with
>= 5 positives, per seed 60 test + 60 validation users, the rest train; each held-out user's
positives split 80 % input (fold-in) / 20 % held out at random. The catalogue is the set of items
with a positive among the training users (items never seen in training cannot be ranked by any
model, so held-out items outside it are dropped, as in Liang et al.'s preprocessing).

Protocol B (temporal, Amazon Personalize's offline split): every rating is an interaction; per
seed 10 % of users are test users whose oldest 90 % of interactions (by timestamp) are the input
and newest 10 % held out; the other 90 % train on everything. Tuning uses validation users carved
out of those 90 % (another 10 % of all users) with the same per-user split; the model used on the
test users is refit on all 90 %.

Every model is evaluated through ``ranker(input_rows, input_times) -> top-k item indices`` over
the catalogue, input items masked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

#: ranker(input, input_times, k) -> (n_users, k) item indices, best first, input items excluded.
Ranker = Callable[[sp.csr_matrix, sp.csr_matrix, int], np.ndarray]

SEEDS = tuple(range(10))
A_TEST_USERS = 60
A_VAL_USERS = 60


def load_ratings(data_dir: Path) -> pd.DataFrame:
    path = data_dir / "movielens" / "ml-latest-small" / "ratings.csv"
    frame = pd.read_csv(path, dtype={"userId": np.int64, "movieId": np.int64,
                                     "rating": np.float32, "timestamp": np.int64})
    return frame.rename(columns={"userId": "user", "movieId": "item", "timestamp": "ts"})


@dataclass
class Heldout:
    """Held-out users: their fold-in input (with timestamps) and what they went on to watch."""

    users: np.ndarray  # original user ids
    input: sp.csr_matrix  # binary, n_users x n_items
    input_times: sp.csr_matrix  # unix seconds of each input interaction (same pattern)
    target: sp.csr_matrix  # binary held-out items


@dataclass
class Split:
    item_ids: np.ndarray  # catalogue: original item ids, index = column
    train: pd.DataFrame  # columns user, item (column index), ts, rating
    val: Heldout
    test: Heldout

    @property
    def n_items(self) -> int:
        return len(self.item_ids)


def _csr(rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    m = sp.csr_matrix((vals, (rows, cols)), shape=shape)
    m.sum_duplicates()
    return m


def _heldout(frame: pd.DataFrame, users: np.ndarray, is_input: np.ndarray, n_items: int) -> Heldout:
    row_of = {u: i for i, u in enumerate(users)}
    rows = frame["user"].map(row_of).to_numpy()
    cols = frame["col"].to_numpy()
    shape = (len(users), n_items)
    inp = is_input
    ones = np.ones(len(frame), dtype=np.float32)
    return Heldout(
        users=users,
        input=_csr(rows[inp], cols[inp], ones[inp], shape),
        input_times=_csr(rows[inp], cols[inp], frame["ts"].to_numpy()[inp].astype(np.float64), shape),
        target=_csr(rows[~inp], cols[~inp], ones[~inp], shape),
    )


def _finish(frame: pd.DataFrame, train_users: np.ndarray, groups: list[tuple[np.ndarray, np.ndarray]],
            is_input: np.ndarray) -> Split:
    """Index the catalogue on training items, drop out-of-catalogue rows of held-out users."""
    train = frame[frame["user"].isin(train_users)]
    item_ids = np.sort(train["item"].unique())
    col_of = pd.Series(np.arange(len(item_ids)), index=item_ids)
    frame = frame.assign(col=frame["item"].map(col_of))
    keep = frame["col"].notna().to_numpy()
    frame = frame[keep].assign(col=lambda f: f["col"].astype(np.int64))
    is_input = is_input[keep]
    out = []
    for users, _ in groups:
        mask = frame["user"].isin(users).to_numpy()
        part = frame[mask]
        h = _heldout(part, users, is_input[mask], len(item_ids))
        # A user with nothing left to predict (or no input) tells nothing: drop them.
        ok = (np.diff(h.target.indptr) > 0) & (np.diff(h.input.indptr) > 0)
        out.append(Heldout(h.users[ok], h.input[ok], h.input_times[ok], h.target[ok]))
    tr = frame[frame["user"].isin(train_users)]
    train_df = pd.DataFrame({"user": tr["user"].to_numpy(), "item": tr["col"].to_numpy(),
                             "ts": tr["ts"].to_numpy(), "rating": tr["rating"].to_numpy()})
    return Split(item_ids=item_ids, train=train_df, val=out[0], test=out[1])


def protocol_a(ratings: pd.DataFrame, seed: int) -> Split:
    pos = ratings[ratings["rating"] > 3.5]
    counts = pos["user"].value_counts()
    pos = pos[pos["user"].isin(counts[counts >= 5].index)].reset_index(drop=True)
    rng = np.random.default_rng(seed)
    users = rng.permutation(np.sort(pos["user"].unique()))
    test_u = users[:A_TEST_USERS]
    val_u = users[A_TEST_USERS:A_TEST_USERS + A_VAL_USERS]
    train_u = users[A_TEST_USERS + A_VAL_USERS:]
    # 80 % of each held-out user's positives at random are input, 20 % held out.
    is_input = np.ones(len(pos), dtype=bool)
    held = pos[pos["user"].isin(np.concatenate([test_u, val_u]))]
    for _, idx in sorted(held.groupby("user").indices.items()):
        rows = held.index.to_numpy()[idx]
        n_hold = round(0.2 * len(rows))
        is_input[rng.choice(rows, size=n_hold, replace=False)] = False
    return _finish(pos, train_u, [(val_u, is_input), (test_u, is_input)], is_input)


def _temporal_input_mask(frame: pd.DataFrame, users: np.ndarray) -> np.ndarray:
    """True for each held-out user's oldest 90 % of interactions (ties in original order)."""
    is_input = np.ones(len(frame), dtype=bool)
    sub = frame[frame["user"].isin(users)]
    for _, idx in sub.groupby("user").indices.items():
        rows = sub.index.to_numpy()[idx]
        order = rows[np.argsort(frame.loc[rows, "ts"].to_numpy(), kind="stable")]
        n_hold = max(1, round(0.1 * len(order)))
        is_input[order[len(order) - n_hold:]] = False
    return is_input


def protocol_b(ratings: pd.DataFrame, seed: int, validation: bool = False) -> Split:
    """Temporal split. With validation=True the 'test' users are replaced by validation users
    drawn from the training users and the model trains on the remaining 80 % (tuning run)."""
    frame = ratings.reset_index(drop=True)
    rng = np.random.default_rng(seed)
    users = rng.permutation(np.sort(frame["user"].unique()))
    n10 = round(0.1 * len(users))
    test_u, val_u, rest = users[:n10], users[n10:2 * n10], users[2 * n10:]
    if validation:
        train_u, held = rest, val_u
    else:
        train_u, held = np.concatenate([val_u, rest]), test_u
    is_input = _temporal_input_mask(frame, held)
    return _finish(frame, train_u, [(held, is_input), (held, is_input)], is_input)


# ---- metrics -------------------------------------------------------------------------------


def _hits(top: np.ndarray, target: sp.csr_matrix) -> np.ndarray:
    """(n_users, k) 0/1 matrix: is the item at each rank in the user's held-out set."""
    hits = np.zeros(top.shape, dtype=np.float64)
    for u in range(top.shape[0]):
        t = target.indices[target.indptr[u]:target.indptr[u + 1]]
        hits[u] = np.isin(top[u], t)
    return hits


def _ndcg(hits: np.ndarray, n_target: np.ndarray, k: int) -> np.ndarray:
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (hits[:, :k] * disc).sum(axis=1)
    idcg = np.array([disc[: min(k, int(n))].sum() for n in n_target])
    return dcg / idcg


def evaluate(top: np.ndarray, held: Heldout, n_items: int, protocol: str) -> dict[str, float]:
    """Mean metrics over the held-out users for one seed (top has >= 100 columns for A, 25 for B)."""
    hits = _hits(top, held.target)
    n_t = np.diff(held.target.indptr)
    cov20 = len(np.unique(top[:, :20])) / n_items
    if protocol == "a":
        return {
            "recall20": float((hits[:, :20].sum(1) / np.minimum(20, n_t)).mean()),
            "recall50": float((hits[:, :50].sum(1) / np.minimum(50, n_t)).mean()),
            "ndcg100": float(_ndcg(hits, n_t, 100).mean()),
            "ndcg10": float(_ndcg(hits, n_t, 10).mean()),
            "coverage20": cov20,
        }
    first = np.where(hits[:, :25].any(1), hits[:, :25].argmax(1) + 1, np.inf)
    return {
        "p10": float(hits[:, :10].sum(1).mean() / 10),
        "ndcg10": float(_ndcg(hits, n_t, 10).mean()),
        "ndcg25": float(_ndcg(hits, n_t, 25).mean()),
        "mrr25": float(np.where(np.isfinite(first), 1.0 / first, 0.0).mean()),
        "coverage20": cov20,
    }


def exposure_gini(top: np.ndarray, n_items: int, k: int = 20) -> float:
    """Gini coefficient of how often each catalogue item appears in the users' top-k lists
    (0 = every item shown equally often, 1 = one item gets all the exposure)."""
    counts = np.sort(np.bincount(top[:, :k].ravel(), minlength=n_items).astype(np.float64))
    n = len(counts)
    total = counts.sum()
    if total == 0:
        return 0.0
    cum = np.cumsum(counts)
    return float((n + 1 - 2 * (cum.sum() / total)) / n)


def top_k(scores: np.ndarray, inputs: sp.csr_matrix, k: int) -> np.ndarray:
    """Top-k columns per row with the input items masked out (scores is modified)."""
    scores = np.asarray(scores, dtype=np.float64)
    rows = np.repeat(np.arange(inputs.shape[0]), np.diff(inputs.indptr))
    scores[rows, inputs.indices] = -np.inf
    part = np.argpartition(-scores, k, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)
