"""A tiny hand-made viewing history with an obvious structure (shared by the recs unit tests).

Two taste groups in two regions: the sci-fi members (US) watch dune -> arrival -> blade in that
order, the animation members (DE) watch up -> coco -> soul. ``sf-late`` (US) has only watched
dune -> arrival, so blade is what comes next for them. ``foundation`` is a sci-fi title in the
catalogue with no plays (a new release)."""

from __future__ import annotations

import numpy as np
from streamsense.recs.data import Catalogue, Plays

T0 = 1_733_000_000
SCIFI = ("dune", "arrival", "blade")
ANIM = ("up", "coco", "soul")
NAMES = {
    "dune": ("Dune", ("Sci-Fi", "Adventure")),
    "arrival": ("Arrival", ("Sci-Fi", "Drama")),
    "blade": ("Blade Runner 2049", ("Sci-Fi", "Thriller")),
    "up": ("Up", ("Animation", "Comedy")),
    "coco": ("Coco", ("Animation", "Musical")),
    "soul": ("Soul", ("Animation", "Comedy")),
    "foundation": ("Foundation", ("Sci-Fi", "Drama")),
}


def plays() -> Plays:
    rows: list[tuple[str, str, int, str]] = []
    t = T0
    for m in range(4):
        for title in SCIFI:
            t += 600
            rows.append((f"sf-{m}", title, t, "US"))
        for title in ANIM:
            t += 600
            rows.append((f"an-{m}", title, t, "DE"))
    for title in SCIFI[:2]:
        t += 600
        rows.append(("sf-late", title, t, "US"))
    return Plays(
        member=np.array([r[0] for r in rows], dtype=str),
        title=np.array([r[1] for r in rows], dtype=str),
        ts=np.array([r[2] for r in rows], dtype=np.int64),
        weight=np.ones(len(rows), dtype=np.float32),
        region=np.array([r[3] for r in rows], dtype=str),
    )


def catalogue() -> Catalogue:
    ids = list(NAMES)
    return Catalogue(
        title=np.array(ids, dtype=str),
        name=np.array([NAMES[i][0] for i in ids], dtype=str),
        genres=tuple(NAMES[i][1] for i in ids),
        tags=tuple(() for _ in ids),
    )
