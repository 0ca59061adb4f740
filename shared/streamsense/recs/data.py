"""The inputs of the recommender: plays (who watched what, when) and the catalogue (what each
title is: name, genres, tags), as column arrays."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

GLOBAL_REGION = "ALL"


@dataclass(frozen=True)
class Plays:
    """One row per play: member id, title id, unix seconds, weight (watch fraction, rating or 1)
    and region (ISO country or GLOBAL_REGION when the export has none)."""

    member: np.ndarray  # str
    title: np.ndarray  # str
    ts: np.ndarray  # int64 unix seconds
    weight: np.ndarray  # float32
    region: np.ndarray  # str

    def __post_init__(self) -> None:
        n = len(self.member)
        if not all(len(a) == n for a in (self.title, self.ts, self.weight, self.region)):
            raise ValueError("Plays columns must have the same length")

    def __len__(self) -> int:
        return len(self.member)

    @classmethod
    def from_rows(cls, rows: Sequence[tuple[str, str, int]], region: str = GLOBAL_REGION) -> Plays:
        """Convenience for small hand-made data: (member, title, unix seconds) tuples."""
        return cls(
            member=np.array([r[0] for r in rows], dtype=str),
            title=np.array([r[1] for r in rows], dtype=str),
            ts=np.array([r[2] for r in rows], dtype=np.int64),
            weight=np.ones(len(rows), dtype=np.float32),
            region=np.full(len(rows), region, dtype=object).astype(str),
        )

    def window(self) -> tuple[int, int]:
        return (int(self.ts.min()), int(self.ts.max())) if len(self) else (0, 0)


@dataclass(frozen=True)
class Catalogue:
    """What each title is. Titles with no plays yet (new releases) reach members through the
    content features (genres and tags) until they collect plays."""

    title: np.ndarray  # str
    name: np.ndarray  # str
    genres: tuple[tuple[str, ...], ...]
    tags: tuple[tuple[str, ...], ...]

    def __len__(self) -> int:
        return len(self.title)

    @classmethod
    def empty(cls) -> Catalogue:
        return cls(np.zeros(0, dtype=str), np.zeros(0, dtype=str), (), ())


_TOKEN = re.compile(r"[a-z0-9]+")


def content_matrix(genres: Sequence[Sequence[str]], tags: Sequence[Sequence[str]]) -> sp.csr_matrix:
    """Rows L2-normalized TF-IDF over genre and tag tokens (genres count double: they are
    curated, tags are free text). A title with no metadata gets a zero row."""
    vocab: dict[str, int] = {}
    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    for i, (gs, ts) in enumerate(zip(genres, tags, strict=True)):
        feats: dict[str, float] = {}
        for g in gs:
            if g and g != "(no genres listed)":
                feats[f"g:{g.lower()}"] = 2.0
        for t in ts:
            for tok in _TOKEN.findall(t.lower()):
                feats[f"t:{tok}"] = feats.get(f"t:{tok}", 0.0) + 1.0
        for f, v in feats.items():
            rows.append(i)
            cols.append(vocab.setdefault(f, len(vocab)))
            vals.append(v)
    m = sp.csr_matrix((vals, (rows, cols)), shape=(len(genres), max(1, len(vocab))), dtype=np.float32)
    df = np.asarray((m > 0).sum(axis=0)).ravel()
    idf = np.log((1 + len(genres)) / (1 + df)).astype(np.float32) + 1.0
    m = sp.csr_matrix(m @ sp.diags(idf), dtype=np.float32)
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return sp.csr_matrix(sp.diags(1.0 / norms) @ m, dtype=np.float32)
