"""The compact context the content bandit decides on.

A decision is "which variant v of title T to show this member at this position". The context of
one (impression, variant) pair is a small vector of 0/1 features:

- position buckets 1, 2, 3+ (bucket 0, the first slot, is the baseline),
- ``engaged``: the member has played this title before (after any impression of it),
- ``affinity >= 1`` and ``affinity >= 2``: the member played this title after being shown this
  very variant at least once / at least twice (a thermometer code, so the effect may saturate).

The same features exist in the Open Bandit Dataset the policy is benchmarked on: there a
"title" is the campaign, a "variant" is an item, ``engaged`` is "any user-item affinity > 0"
and the affinity is the user's past clicks on the item.

Every feature is 0/1 on purpose: the sufficient statistics (sums of z, z z^T and r z) are then
integers, so merging them is exact and order-independent (float sums are not associative).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

#: Position buckets: 0, 1, 2 and 3-or-later (UI rows deeper than the third slot behave alike).
POSITION_BUCKETS = 4
FEATURES: tuple[str, ...] = (
    "position_1",
    "position_2",
    "position_3plus",
    "engaged",
    "affinity_ge1",
    "affinity_ge2",
)
#: Number of shared features (the per-variant part of the model is one intercept each).
Q = len(FEATURES)
#: Indices of the features that differ between variants for one context: only these can change
#: which variant is best (the others shift every variant's score alike).
ARM_FEATURES = (4, 5)


def position_bucket(position: int) -> int:
    return min(max(int(position), 0), POSITION_BUCKETS - 1)


@dataclass(frozen=True)
class Context:
    """What is known about one member at one slot when a title's artwork is chosen.

    position: the slot (0 = first); engaged: the member has played the title before;
    affinity: variant id -> plays by this member that followed an impression of that variant.
    """

    position: int
    engaged: bool = False
    affinity: Mapping[str, int] = field(default_factory=dict)


def features(position: int, engaged: bool, affinity: int) -> tuple[int, ...]:
    """The 0/1 feature tuple of one (context, variant) pair, in FEATURES order."""
    bucket = position_bucket(position)
    return (
        int(bucket == 1),
        int(bucket == 2),
        int(bucket == 3),
        int(bool(engaged)),
        int(affinity >= 1),
        int(affinity >= 2),
    )


def context_matrix(context: Context, variants: Sequence[str]) -> np.ndarray:
    """(len(variants), Q) int matrix: the features of showing each variant in this context."""
    return np.array(
        [features(context.position, context.engaged, int(context.affinity.get(v, 0))) for v in variants],
        dtype=np.int64,
    ).reshape(len(variants), Q)


def feature_matrix(positions: np.ndarray, engaged: np.ndarray, affinity: np.ndarray) -> np.ndarray:
    """Vectorized ``features`` for n (position, engaged, affinity) triples: (n, Q) int."""
    bucket = np.clip(np.asarray(positions, dtype=np.int64), 0, POSITION_BUCKETS - 1)
    aff = np.asarray(affinity, dtype=np.int64)
    return np.column_stack(
        [bucket == 1, bucket == 2, bucket == 3, np.asarray(engaged, dtype=bool), aff >= 1, aff >= 2]
    ).astype(np.int64)


def arm_features(contexts: Sequence[Context], variants: Sequence[str]) -> np.ndarray:
    """(n, V, len(ARM_FEATURES)) int: the features that differ between variants (affinity >= 1,
    >= 2), filled only where a member has an affinity (most contexts have none)."""
    index = {v: j for j, v in enumerate(variants)}
    out = np.zeros((len(contexts), len(variants), len(ARM_FEATURES)), dtype=np.int64)
    for i, c in enumerate(contexts):
        for variant, plays in c.affinity.items():
            j = index.get(variant)
            if j is not None and plays >= 1:
                out[i, j, 0] = 1
                out[i, j, 1] = int(plays >= 2)
    return out
