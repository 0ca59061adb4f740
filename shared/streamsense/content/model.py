"""The artwork/trailer/synopsis variant policy: Thompson sampling on a Bayesian linear model of
the play rate, kept as integer sufficient statistics per (title, variant).

Reward model, for showing variant v in context z (see ``features``):

    P(play) ~= alpha_v + gamma . z

alpha_v is the variant's own play rate at the baseline context and gamma is shared by the
title's variants (position, "has played the title before", and the member's affinity to this
variant). Only the affinity part of z differs between variants, so it is what makes the choice
contextual; the rest keeps the alpha_v estimates fair when variants were shown in different
slots or to different members.

Why a linear-Gaussian model rather than a logistic one: its posterior depends on the data only
through sums (n, plays, sum z, sum z z^T, sum r z per variant), so state is a handful of
integers per variant, merging two shards' statistics is an exact addition, and the posterior
does not depend on the order impressions arrive in. A logistic posterior needs the raw rows or
an order-dependent online approximation.

Priors (empirical Bayes per title): the title's pooled play rate p with a Beta(1, 19) pseudo
prior, noise variance p(1 - p), alpha_v ~ N(p, (cv * p)^2), gamma ~ N(0, effect_sd^2).

Choice probabilities are P(variant is the argmax of a posterior draw), estimated with
``samples`` draws, then mixed with ``exploration`` of uniform so every variant keeps a
propensity > 0 (the logs stay evaluable off-policy for any future policy). The probability the
variant was drawn with is logged with the impression.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from streamsense.content.features import ARM_FEATURES, Context, Q, arm_features

_TRI = np.triu_indices(Q)
#: Length of one variant's flat statistics list: n, plays, sum z, sum z z^T (upper), sum r z.
STATS_LEN = 2 + Q + len(_TRI[0]) + Q


@dataclass
class VariantStats:
    """Sufficient statistics of one variant's impressions (all integers)."""

    n: int = 0
    plays: int = 0
    z: np.ndarray = field(default_factory=lambda: np.zeros(Q, dtype=np.int64))
    zz: np.ndarray = field(default_factory=lambda: np.zeros((Q, Q), dtype=np.int64))
    zr: np.ndarray = field(default_factory=lambda: np.zeros(Q, dtype=np.int64))

    def add(self, z: Sequence[int], played: bool) -> None:
        v = np.asarray(z, dtype=np.int64)
        self.n += 1
        self.z += v
        self.zz += np.outer(v, v)
        if played:
            self.plays += 1
            self.zr += v

    def merged(self, other: VariantStats) -> VariantStats:
        return VariantStats(
            self.n + other.n,
            self.plays + other.plays,
            self.z + other.z,
            self.zz + other.zz,
            self.zr + other.zr,
        )

    def to_list(self) -> list[int]:
        return [self.n, self.plays, *self.z.tolist(), *self.zz[_TRI].tolist(), *self.zr.tolist()]

    def to_text(self) -> str:
        """The list as one comma-separated string: how the table stores it (one attribute
        instead of 35 numbers: a third of the bytes and far less (de)serialization)."""
        return ",".join(map(str, self.to_list()))

    @classmethod
    def from_list(cls, values: Sequence[int] | str) -> VariantStats:
        if isinstance(values, str):
            values = [int(x) for x in values.split(",")]
        if len(values) != STATS_LEN:
            raise ValueError(f"variant statistics need {STATS_LEN} numbers, got {len(values)}")
        v = np.asarray([int(x) for x in values], dtype=np.int64)
        zz = np.zeros((Q, Q), dtype=np.int64)
        zz[_TRI] = v[2 + Q : 2 + Q + len(_TRI[0])]
        zz = zz + zz.T - np.diag(np.diag(zz))
        return cls(int(v[0]), int(v[1]), v[2 : 2 + Q].copy(), zz, v[-Q:].copy())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VariantStats) and self.to_list() == other.to_list()


@dataclass
class TitleStats:
    """A title's statistics: variant id -> VariantStats. Merging is exact addition."""

    variants: dict[str, VariantStats] = field(default_factory=dict)

    def add(self, variant: str, z: Sequence[int], played: bool) -> None:
        self.variants.setdefault(variant, VariantStats()).add(z, played)

    def add_batch(self, variants: Sequence[str], z: np.ndarray, played: np.ndarray) -> None:
        """Add many impressions at once (vectorized; the same integers as one add() each)."""
        z = np.asarray(z, dtype=np.int64).reshape(len(variants), Q)
        played = np.asarray(played, dtype=bool)
        names, inverse = np.unique(np.asarray(variants, dtype=object), return_inverse=True)
        for k, name in enumerate(names):
            mask = inverse == k
            zk = z[mask]
            s = self.variants.setdefault(str(name), VariantStats())
            s.n += int(mask.sum())
            s.plays += int(played[mask].sum())
            s.z += zk.sum(axis=0)
            s.zz += zk.T @ zk
            s.zr += zk[played[mask]].sum(axis=0)

    def merged(self, other: TitleStats) -> TitleStats:
        out = {k: VariantStats.from_list(s.to_list()) for k, s in self.variants.items()}
        for k, s in other.variants.items():
            out[k] = out[k].merged(s) if k in out else VariantStats.from_list(s.to_list())
        return TitleStats(out)

    @property
    def impressions(self) -> int:
        return sum(s.n for s in self.variants.values())

    @property
    def plays(self) -> int:
        return sum(s.plays for s in self.variants.values())

    def to_dict(self) -> dict[str, list[int]]:
        return {k: self.variants[k].to_list() for k in sorted(self.variants)}

    def to_item(self) -> dict[str, str]:
        """The stored form: variant -> VariantStats.to_text (from_dict reads both forms)."""
        return {k: self.variants[k].to_text() for k in sorted(self.variants)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Sequence[int] | str]) -> TitleStats:
        return cls({str(k): VariantStats.from_list(v) for k, v in data.items()})

    def digest(self) -> str:
        """A short content hash: identifies the exact state a policy was computed from."""
        blob = json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TitleStats) and self.to_dict() == other.to_dict()


def merge_all(parts: Sequence[TitleStats]) -> TitleStats:
    out = TitleStats()
    for p in parts:
        out = out.merged(p)
    return out


@dataclass(frozen=True)
class PolicyConfig:
    samples: int = 2000  # posterior draws per distinct context when computing propensities
    exploration: float = 0.05  # share of uniform mixed in: every propensity >= exploration / V
    prior_plays: float = 1.0  # Beta pseudo counts for the title's pooled play rate
    prior_impressions: float = 20.0
    prior_cv: float = 1.0  # prior sd of a variant's rate, relative to the pooled rate
    effect_sd: float = 0.1  # prior sd of each shared effect, in play-rate units (|effect| < 0.2 a priori)
    seed: int = 0

    @property
    def name(self) -> str:
        return f"lin-ts/e{self.exploration:g}/s{self.samples}"


@lru_cache(maxsize=32)
def seeded_normals(seed: int, d: int, m: int) -> np.ndarray:
    """np.random.default_rng(seed).standard_normal((d, m)), computed once (read-only): every
    decision draws from a freshly seeded generator, so the numbers never change and the
    expensive part of a Thompson step need not be redone."""
    eps = np.random.default_rng(seed).standard_normal((d, m))
    eps.setflags(write=False)
    return eps


@dataclass(frozen=True)
class Posterior:
    variants: tuple[str, ...]  # the offered variants first, then others with statistics
    offered: int
    mean: np.ndarray  # (len(variants) + Q,): alpha per variant, then gamma
    chol: np.ndarray  # lower Cholesky factor of the precision matrix
    pooled_rate: float
    noise_var: float

    def sample(self, m: int, rng: np.random.Generator | int) -> np.ndarray:
        """(m, V + Q) posterior draws: mean + L^-T eps has covariance (L L^T)^-1. An int seed
        draws eps from a fresh generator with that seed (cached: the same numbers every time)."""
        # Imported here: content_bandit's apply path never samples (a leaner cold start).
        from scipy.linalg import solve_triangular

        eps = seeded_normals(rng, len(self.mean), m) if isinstance(rng, int) else rng.standard_normal((len(self.mean), m))
        # A triangular solve (L^T is upper): ~5x cheaper than a general solve, same draws.
        return self.mean[None, :] + solve_triangular(self.chol, eps, trans="T", lower=True, check_finite=False).T

    def rates(self, contexts: np.ndarray) -> np.ndarray:
        """Posterior-mean play rate of each offered variant: contexts (n, offered, Q) -> (n, offered)."""
        v = len(self.variants)
        return self.mean[None, : self.offered] + contexts @ self.mean[v:]


def posterior(stats: TitleStats, variants: Sequence[str], config: PolicyConfig) -> Posterior:
    """The Gaussian posterior of (alpha, gamma). Variants offered but without statistics get the
    prior; variants with statistics but not offered stay in the model (their impressions are
    evidence about gamma and the pooled rate) and are simply never chosen."""
    offered = tuple(variants)
    if len(set(offered)) != len(offered) or not offered:
        raise ValueError("candidate variants must be distinct and non-empty")
    names = offered + tuple(sorted(set(stats.variants) - set(offered)))
    v = len(names)
    rows = [stats.variants.get(name, VariantStats()) for name in names]
    pooled = (stats.plays + config.prior_plays) / (stats.impressions + config.prior_impressions)
    noise = pooled * (1.0 - pooled)
    tau_alpha = config.prior_cv * pooled

    d = v + Q
    xtx = np.zeros((d, d))
    xtr = np.zeros(d)
    for i, s in enumerate(rows):
        xtx[i, i] = s.n
        xtx[i, v:] = s.z
        xtx[v:, i] = s.z
        xtx[v:, v:] += s.zz
        xtr[i] = s.plays
        xtr[v:] += s.zr

    prior_prec = np.concatenate([np.full(v, 1.0 / tau_alpha**2), np.full(Q, 1.0 / config.effect_sd**2)])
    prior_mean = np.concatenate([np.full(v, pooled), np.zeros(Q)])
    precision = np.diag(prior_prec) + xtx / noise
    chol = np.linalg.cholesky(precision)
    rhs = prior_prec * prior_mean + xtr / noise
    mean = np.linalg.solve(chol.T, np.linalg.solve(chol, rhs))
    return Posterior(names, len(offered), mean, chol, float(pooled), float(noise))


def thompson_probabilities(post: Posterior, arm_patterns: np.ndarray, config: PolicyConfig, rng: np.random.Generator | int) -> np.ndarray:
    """P(argmax) for each distinct arm-feature pattern: (k, V, len(ARM_FEATURES)) -> (k, V),
    already mixed with the exploration floor. All patterns share the same posterior draws."""
    v = post.offered
    draws = post.sample(config.samples, rng)
    alpha = draws[:, :v]  # (m, V): only offered variants compete
    gamma = draws[:, [len(post.variants) + j for j in ARM_FEATURES]]  # (m, A)
    out = np.empty((len(arm_patterns), v))
    for k, pattern in enumerate(arm_patterns):
        scores = alpha + gamma @ pattern.T.astype(float)  # (m, V)
        counts = np.bincount(scores.argmax(axis=1), minlength=v)
        out[k] = counts / config.samples
    return (1.0 - config.exploration) * out + config.exploration / v


def choice_probabilities(
    stats: TitleStats,
    variants: Sequence[str],
    contexts: Sequence[Context],
    config: PolicyConfig | None = None,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """(len(contexts), len(variants)) probabilities with which the policy shows each variant.

    Rows sum to 1. Contexts that only differ in features shared by all variants get the same
    row (those features cannot change the argmax), so a batch costs one set of draws."""
    config = config or PolicyConfig()
    post = posterior(stats, variants, config)
    if not contexts:
        return np.zeros((0, len(variants)))
    arm = arm_features(contexts, variants)
    patterns, inverse = np.unique(arm, axis=0, return_inverse=True)
    probs = thompson_probabilities(post, patterns, config, rng if rng is not None else config.seed)
    return probs[np.asarray(inverse).reshape(-1)]


@dataclass(frozen=True)
class Choice:
    """One decision, with what must be logged for off-policy evaluation."""

    variant_id: str
    propensity: float  # the probability this variant was drawn with
    probabilities: dict[str, float]
    policy: str  # config name + digest of the statistics the probabilities came from

    def impression_payload(self, profile_id: str, title_id: str, position: int, played: bool) -> dict[str, object]:
        """The ``impression`` event payload the app emits once the outcome is known."""
        return {
            "profile_id": profile_id,
            "title_id": title_id,
            "variant_id": self.variant_id,
            "position": position,
            "propensity": self.propensity,
            "played": played,
        }


def choose(
    stats: TitleStats,
    variants: Sequence[str],
    context: Context,
    rng: np.random.Generator,
    config: PolicyConfig | None = None,
) -> Choice:
    """Draw the variant to show. The propensities are computed first (seeded by the config, so
    the same state and context always give the same distribution) and the variant is then
    drawn from exactly that distribution with ``rng``: the logged propensity is the true one."""
    config = config or PolicyConfig()
    probs = choice_probabilities(stats, variants, [context], config)[0]
    index = int(rng.choice(len(variants), p=probs))
    return Choice(
        variant_id=variants[index],
        propensity=float(probs[index]),
        probabilities={v: float(p) for v, p in zip(variants, probs, strict=True)},
        policy=f"{config.name}/{stats.digest()}",
    )
