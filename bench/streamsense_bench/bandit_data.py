"""Loader for the Open Bandit Dataset sample (ZOZOTOWN, Saito et al. 2021) in
``bandits/obd/{random,bts}/men/``.

Each row of ``men.csv`` is one (impression, slot): the item shown (action), its slot
``position`` (1 = left, 2 = center, 3 = right), ``click``, ``propensity_score`` (the
probability the logging policy put that item in that slot: exactly 1/34 for the uniform-random
policy; a Monte Carlo estimate of the Bernoulli-Thompson posterior for bts), four hashed
categorical user features and 34 user-item affinities (counts of the user's past clicks on each
item). ``item_context.csv`` holds one numeric and three hashed categorical item features.

The loader checks what it reads (column set, item and position ranges, propensities in (0, 1],
one propensity for the random policy) and fails loudly rather than guessing.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

N_ITEMS = 34
POSITIONS = (1, 2, 3)
USER_FEATURES = 4


@dataclass(frozen=True)
class ObdLog:
    policy: str
    timestamp: np.ndarray  # datetime64[us], UTC
    item: np.ndarray  # int, 0..33
    position: np.ndarray  # int, 0-based slot (0, 1, 2)
    click: np.ndarray  # int 0/1
    pscore: np.ndarray  # float, propensity of (item, position) under the logging policy
    user: np.ndarray  # (n, 4) int codes of the hashed user features (codes per column)
    affinity: np.ndarray  # (n, 34) int past clicks per item
    item_context: np.ndarray  # (34, 4) item_feature_0 (float) + codes of features 1..3

    def __len__(self) -> int:
        return len(self.item)

    @property
    def engaged(self) -> np.ndarray:
        """The user has clicked any of the campaign's items before."""
        return self.affinity.sum(axis=1) > 0

    def subset(self, mask: np.ndarray) -> ObdLog:
        return ObdLog(
            self.policy,
            self.timestamp[mask],
            self.item[mask],
            self.position[mask],
            self.click[mask],
            self.pscore[mask],
            self.user[mask],
            self.affinity[mask],
            self.item_context,
        )


class ObdFormatError(ValueError):
    pass


def _codes(column: list[str]) -> np.ndarray:
    values = sorted(set(column))
    index = {v: i for i, v in enumerate(values)}
    return np.array([index[v] for v in column], dtype=np.int64)


def load_obd(root: Path, policy: str, campaign: str = "men") -> ObdLog:
    """Load ``root/<policy>/<campaign>/``; root is the ``bandits/obd`` folder."""
    folder = root / policy / campaign
    path = folder / f"{campaign}.csv"
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        rows = list(reader)
    aff_cols = [f"user-item_affinity_{i}" for i in range(N_ITEMS)]
    expected = ["", "timestamp", "item_id", "position", "click", "propensity_score"]
    expected += [f"user_feature_{i}" for i in range(USER_FEATURES)] + aff_cols
    if header != expected:
        raise ObdFormatError(f"{path}: unexpected columns {header[:8]}...")
    cols = list(zip(*rows, strict=True)) if rows else [()] * len(header)
    ts = np.array([t.replace("+00:00", "") for t in cols[1]], dtype="datetime64[us]")
    item = np.array(cols[2], dtype=np.int64)
    position = np.array(cols[3], dtype=np.int64)
    click = np.array(cols[4], dtype=np.int64)
    pscore = np.array(cols[5], dtype=float)
    user = np.stack([_codes(list(cols[6 + j])) for j in range(USER_FEATURES)], axis=1)
    aff_float = np.array(cols[6 + USER_FEATURES :], dtype=float).T
    affinity = aff_float.astype(np.int64)

    problems = []
    if item.min() < 0 or item.max() >= N_ITEMS:
        problems.append(f"item_id outside 0..{N_ITEMS - 1}")
    if not set(np.unique(position)) <= set(POSITIONS):
        problems.append(f"position outside {POSITIONS}")
    if not set(np.unique(click)) <= {0, 1}:
        problems.append("click not 0/1")
    if np.any(pscore <= 0) or np.any(pscore > 1):
        problems.append("propensity_score outside (0, 1]")
    if np.any(aff_float != affinity) or np.any(affinity < 0):
        problems.append("affinities are not non-negative counts")
    if policy == "random" and not np.allclose(pscore, 1.0 / N_ITEMS):
        problems.append("uniform-random log with a propensity other than 1/34")
    if np.any(np.diff(ts) < np.timedelta64(0, "us")):
        problems.append("rows not in time order")
    if problems:
        raise ObdFormatError(f"{path}: " + "; ".join(problems))

    with (folder / "item_context.csv").open(newline="") as fh:
        reader = csv.reader(fh)
        ih = next(reader)
        irows = list(reader)
    if ih != ["", "item_id", "item_feature_0", "item_feature_1", "item_feature_2", "item_feature_3"]:
        raise ObdFormatError(f"{folder}/item_context.csv: unexpected columns {ih}")
    irows.sort(key=lambda r: int(r[1]))
    if [int(r[1]) for r in irows] != list(range(N_ITEMS)):
        raise ObdFormatError(f"{folder}/item_context.csv: item ids are not 0..{N_ITEMS - 1}")
    icols = list(zip(*irows, strict=True))
    item_context = np.column_stack(
        [np.array(icols[2], dtype=float)] + [_codes(list(icols[k])).astype(float) for k in (3, 4, 5)]
    )
    return ObdLog(policy, ts, item, position - 1, click, pscore, user, affinity, item_context)


def action_frequencies(log: ObdLog) -> np.ndarray:
    """(3, 34): the share of each position's rows that showed each item.

    For a context-free logging policy (Bernoulli TS is one) this is an unbiased estimate of its
    time-averaged action distribution per slot: row t shows item a in slot k with probability
    pi_t(a, k), so the expected count of (a, k) is the sum over rows of pi_t(a, k)."""
    out = np.zeros((len(POSITIONS), N_ITEMS))
    np.add.at(out, (log.position, log.item), 1.0)
    return out / out.sum(axis=1, keepdims=True)
