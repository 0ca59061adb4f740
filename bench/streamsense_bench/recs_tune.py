"""`python -m streamsense_bench.recs_tune {a|b} [n_seeds]`: choose the product's hyperparameters
on validation users only (never the test users of benchmarks.md section 2).

Rule: the highest validation NDCG (NDCG@100 for A, NDCG@10 for B) among the settings whose
validation coverage@20 is above the reference EASE's (lambda=100) on the same users. The chosen
values are what ``streamsense.recs.model`` ships (RecsParams defaults for B, STATIC_PARAMS for A).
"""

from __future__ import annotations

import itertools
import sys
from dataclasses import replace
from typing import Any

import numpy as np
from streamsense.recs.model import RecsModel, RecsParams

from streamsense_bench.common import data_dir
from streamsense_bench.recs import histories, train_matrix
from streamsense_bench.recs_anchors import fit_ease
from streamsense_bench.recs_protocol import evaluate, load_ratings, protocol_a, protocol_b, top_k

GRID: dict[str, dict[str, Any]] = {
    "a": {
        "ease": [(200.0, 1), (400.0, 2), (800.0, 2)],
        "recency": [(1.0, 10.0)],
        "w_seq": [0.0, 0.1],
        "w_trend": [0.0, 0.05, 0.1],
        "pop_alpha": [0.0, 0.1, 0.25, 0.4],
    },
    "b": {
        "ease": [(200.0, 2), (400.0, 2), (400.0, 3), (800.0, 3)],
        "recency": [(0.05, 5.0), (0.1, 10.0), (0.3, 30.0)],
        "w_seq": [0.25, 0.5, 1.0],
        "w_trend": [0.0, 0.1],
        "pop_alpha": [0.1, 0.25, 0.4],
    },
}


def tune(proto: str, n_seeds: int = 3) -> tuple[RecsParams, dict[str, float], float]:
    ratings = load_ratings(data_dir())
    grid = GRID[proto]
    splits = [protocol_a(ratings, s) if proto == "a" else protocol_b(ratings, s, validation=True)
              for s in range(n_seeds)]
    k = 100 if proto == "a" else 25
    key = "ndcg100" if proto == "a" else "ndcg10"
    ease_cov = float(np.mean([
        evaluate(fit_ease(train_matrix(s)[0])(s.val.input, s.val.input_times, k), s.val,
                 s.n_items, proto)["coverage20"] for s in splits]))
    scores: dict[tuple[Any, ...], list[dict[str, float]]] = {}
    for lam, mc in grid["ease"]:
        for split in splits:
            _, codes = train_matrix(split)
            model = RecsModel.fit(codes, split.train["item"].to_numpy(), split.train["ts"].to_numpy(),
                                  split.n_items, replace(RecsParams(), lam=lam, min_count=mc))
            hist, now = histories(split.val)
            for floor, plays in grid["recency"]:
                model.params = replace(model.params, recency_floor=floor, recency_plays=plays)
                ease, seq, trend, _ = model.components(hist, now)
                for ws, wt, pa in itertools.product(grid["w_seq"], grid["w_trend"], grid["pop_alpha"]):
                    model.params = replace(model.params, w_seq=ws, w_trend=wt, pop_alpha=pa)
                    top = top_k(model.blend(ease, seq, trend), split.val.input, k)
                    m = evaluate(top, split.val, split.n_items, proto)
                    scores.setdefault((lam, mc, floor, plays, ws, wt, pa), []).append(m)
        print(f"fitted lam={lam} min_count={mc}", flush=True)
    means = {c: {m: float(np.mean([r[m] for r in rs])) for m in rs[0]} for c, rs in scores.items()}
    eligible = {c: m for c, m in means.items() if m["coverage20"] > ease_cov} or means
    best = max(eligible, key=lambda c: eligible[c][key])
    lam, mc, floor, plays, ws, wt, pa = best
    params = replace(RecsParams(), lam=lam, min_count=mc, recency_floor=floor, recency_plays=plays,
                     w_seq=ws, w_trend=wt, pop_alpha=pa)
    return params, means[best], ease_cov


def main(argv: list[str]) -> int:
    proto = argv[0] if argv else "b"
    n_seeds = int(argv[1]) if len(argv) > 1 else 3
    params, metrics, ease_cov = tune(proto, n_seeds)
    print(f"protocol {proto.upper()}: validation EASE(100) coverage20 {ease_cov:.4f}")
    print("chosen:", params)
    print("validation:", {k: round(v, 4) for k, v in metrics.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
