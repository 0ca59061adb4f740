"""`python -m streamsense_bench recs`: benchmarks.md section 2 on MovieLens ml-latest-small.

Protocols A and B over seeds 0..9 with the anchors in the same run on the same splits
(popularity, ItemKNN cosine k=100, PureSVD f=100, a plain reference EASE lambda=100, implicit's
ALS) and the product model (``streamsense.recs.model``) with the hyperparameters chosen on
validation users only (``streamsense_bench.recs_tune``). Then the product's full retrain on all
of ml-latest-small (time and peak memory in a fresh process), its growth with catalogue size,
and the fold-in time of one new play.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp
from streamsense.recs.data import Plays
from streamsense.recs.model import STATIC_PARAMS, RecsModel, RecsParams
from streamsense.recs.serving import Recommender, states_from_plays

from streamsense_bench.common import data_dir, print_table
from streamsense_bench.recs_anchors import (
    fit_als,
    fit_ease,
    fit_itemknn,
    fit_popularity,
    fit_puresvd,
)
from streamsense_bench.recs_protocol import (
    SEEDS,
    Heldout,
    Ranker,
    Split,
    evaluate,
    exposure_gini,
    load_ratings,
    protocol_a,
    protocol_b,
    top_k,
)

ANCHORS: dict[str, Callable[[sp.csr_matrix], Ranker]] = {
    "popularity": fit_popularity,
    "itemknn_cosine_k100": fit_itemknn,
    "puresvd_f100": fit_puresvd,
    "ease_lambda100": fit_ease,
    "implicit_als": fit_als,
}
KEYS = {"a": ("recall20", "recall50", "ndcg100", "ndcg10", "coverage20"),
        "b": ("p10", "ndcg10", "ndcg25", "mrr25", "coverage20")}
SCALE_SIZES = (2500, 5000, 9724)


def histories(h: Heldout) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[float]]:
    """Each held-out member's input as (item indices, unix seconds), and their 'now' (last play)."""
    out: list[tuple[np.ndarray, np.ndarray]] = []
    now: list[float] = []
    t = h.input_times
    for u in range(t.shape[0]):
        s, e = t.indptr[u], t.indptr[u + 1]
        out.append((t.indices[s:e], t.data[s:e]))
        now.append(float(t.data[s:e].max()))
    return out, now


def train_matrix(split: Split) -> tuple[sp.csr_matrix, np.ndarray]:
    codes = split.train["user"].astype("category").cat.codes.to_numpy()
    x = sp.csr_matrix((np.ones(len(codes), np.float32), (codes, split.train["item"].to_numpy())),
                      shape=(int(codes.max()) + 1, split.n_items))
    x.sum_duplicates()
    x.data[:] = 1.0
    return x, codes


def fit_product(split: Split, params: RecsParams) -> Ranker:
    _, codes = train_matrix(split)
    model = RecsModel.fit(codes, split.train["item"].to_numpy(), split.train["ts"].to_numpy(),
                          split.n_items, params)

    def rank(inp: sp.csr_matrix, times: sp.csr_matrix, k: int) -> np.ndarray:
        hist, now = histories(Heldout(np.zeros(0), inp, times, inp))
        return top_k(model.scores(hist, now), inp, k)

    return rank


def _run_protocol(name: str, make: Callable[[int], Split], params: RecsParams,
                  log: list[str]) -> dict[str, Any]:
    per: dict[str, list[dict[str, float]]] = {}
    k = 100 if name == "a" else 25
    for seed in SEEDS:
        split = make(seed)
        x, _ = train_matrix(split)
        for model_name in [*ANCHORS, "product"]:
            started = time.perf_counter()
            ranker = fit_product(split, params) if model_name == "product" else ANCHORS[model_name](x)
            top = ranker(split.test.input, split.test.input_times, k)
            m = evaluate(top, split.test, split.n_items, name)
            m["gini20"] = exposure_gini(top, split.n_items)
            m["seconds"] = time.perf_counter() - started
            per.setdefault(model_name, []).append(m)
        log.append(f"{name} seed {seed}: {split.n_items} items, {split.test.input.shape[0]} test users")
        print(log[-1], flush=True)
    out: dict[str, Any] = {"anchors": {}, "n_seeds": len(SEEDS)}
    for model_name, ms in per.items():
        mean = {key: float(np.mean([m[key] for m in ms])) for key in ms[0]}
        se = {key: float(np.std([m[key] for m in ms], ddof=1) / np.sqrt(len(ms))) for key in ms[0]}
        entry = {**mean, "stderr": se}
        if model_name == "product":
            out["product"] = entry
        else:
            out["anchors"][model_name] = entry
    return out


def _fit_in_fresh_process(n_items: int, min_count: int) -> dict[str, float]:
    """Train on the n_items most-played titles in a new interpreter: peak RSS (VmHWM: exec
    starts a fresh address space, unlike ru_maxrss which inherits the parent's peak) is the
    process's own with numpy, scipy and pandas loaded, as a Lambda container would see it."""
    code = (
        "import json,time,numpy as np\n"
        "from pathlib import Path\n"
        "from dataclasses import replace\n"
        "from streamsense.recs.model import RecsModel, RecsParams\n"
        "from streamsense_bench.recs_protocol import load_ratings\n"
        f"r = load_ratings(Path({str(data_dir())!r}))\n"
        f"keep = r['item'].value_counts().index[:{n_items}]\n"
        "r = r[r['item'].isin(keep)]\n"
        "u = r['user'].astype('category').cat.codes.to_numpy()\n"
        "i = r['item'].astype('category').cat.codes.to_numpy()\n"
        "t0 = time.perf_counter(); c0 = time.process_time()\n"
        f"m = RecsModel.fit(u, i, r['ts'].to_numpy(), int(i.max()) + 1, replace(RecsParams(), min_count={min_count}))\n"
        "dt = time.perf_counter() - t0; cpu = time.process_time() - c0\n"
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
        "print(json.dumps({'train_s': dt, 'train_cpu_s': cpu, 'peak_mem_mb': int(hwm) / 1024,"
        " 'core_items': int(len(m.core)), 'items': int(m.n_items), 'plays': int(len(r))}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _trainer_in_fresh_process() -> dict[str, float]:
    """recs_trainer's whole path on ml-latest-small (read the export + catalogue, holdout
    evaluation, retrain, artifact, serving rows for every member, region and title) with the
    in-memory storage twins, in a new interpreter."""
    code = (
        "import json,time\n"
        "from pathlib import Path\n"
        "from streamsense.storage import MemoryObjectStore, MemoryTable\n"
        "from streamsense.recs.service import retrain_from_export\n"
        f"d = Path({str(data_dir() / 'movielens' / 'ml-latest-small')!r})\n"
        "ex, mo, tb = MemoryObjectStore(), MemoryObjectStore(), MemoryTable()\n"
        "ex.put('viewing-history/ml/ratings.csv', (d / 'ratings.csv').read_bytes())\n"
        "ex.put('viewing-history/catalog/movies.csv', (d / 'movies.csv').read_bytes())\n"
        "ex.put('viewing-history/catalog/tags.csv', (d / 'tags.csv').read_bytes())\n"
        "t0 = time.perf_counter(); c0 = time.process_time()\n"
        "out = retrain_from_export('exports', 'viewing-history/ml/ratings.csv', 'e', None, exports=ex, models=mo, table=tb)\n"
        "dt = time.perf_counter() - t0; cpu = time.process_time() - c0\n"
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
        "print(json.dumps({'wall_s': dt, 'cpu_s': cpu, 'peak_mem_mb': int(hwm) / 1024, 'rows_written': len(tb.items),"
        " 'table_requests': tb.requests, 'artifact_mb': out.manifest['bytes'] / 1e6, 'holdout': out.manifest['metrics']}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _fold_in_ms(ratings: Any) -> dict[str, float]:
    """Time to update one member's list after a new play, as recs_realtime does it: add the play
    to the member's history, recompute the top 50 with reasons (EASE + transitions + new-title
    slots) from the in-memory model. Median and p95 over 100 members (compute only, no I/O)."""
    plays = Plays(member=ratings["user"].astype(str).to_numpy(), title=ratings["item"].astype(str).to_numpy(),
                  ts=ratings["ts"].to_numpy(), weight=np.ones(len(ratings), np.float32),
                  region=np.full(len(ratings), "ALL"))
    rec = Recommender.train(plays, None, RecsParams())
    states = states_from_plays(plays)
    rng = np.random.default_rng(0)
    members = rng.choice(sorted(states), size=100, replace=False)
    times = []
    for member in members:
        state = states[str(member)]
        title = str(rec.titles[int(rng.integers(len(rec.titles)))])
        started = time.perf_counter()
        state.add(title, max(state.history.values()) + 60)
        rec.recommend(state, 50)
        times.append((time.perf_counter() - started) * 1000)
    return {"median": float(np.median(times)), "p95": float(np.percentile(times, 95))}


def run() -> dict[str, Any]:
    ratings = load_ratings(data_dir())
    log: list[str] = []
    results: dict[str, Any] = {
        "params": {"protocol_a": STATIC_PARAMS.to_dict(), "protocol_b": RecsParams().to_dict()},
    }
    results["protocol_a"] = _run_protocol("a", lambda s: protocol_a(ratings, s), STATIC_PARAMS, log)
    results["protocol_b"] = _run_protocol("b", lambda s: protocol_b(ratings, s), RecsParams(), log)

    full = _fit_in_fresh_process(ratings["item"].nunique(), RecsParams().min_count)
    results["train_s"] = full["train_s"]
    results["peak_mem_mb"] = full["peak_mem_mb"]
    results["full_retrain"] = full
    results["trainer"] = _trainer_in_fresh_process()
    fold = _fold_in_ms(ratings)
    results["fold_in_ms"] = fold["median"]
    results["fold_in_ms_p95"] = fold["p95"]
    # Growth with catalogue size: every title in the EASE core (min_count=1) so n is the size.
    results["scaling"] = [_fit_in_fresh_process(n, 1) for n in SCALE_SIZES]

    for proto in ("a", "b"):
        res = results[f"protocol_{proto}"]
        rows = [["product", *(res["product"][k] for k in KEYS[proto]), res["product"]["gini20"]]]
        rows += [[n, *(m[k] for k in KEYS[proto]), m["gini20"]] for n, m in res["anchors"].items()]
        print_table(f"recs protocol {proto.upper()} (mean over {len(SEEDS)} seeds; gini20 = exposure Gini of top-20)",
                    ["model", *KEYS[proto], "gini20"], rows)
    print_table("recs product full retrain on ml-latest-small (fresh process)",
                ["train_s", "train_cpu_s", "peak_mem_mb", "core_items", "fold_in_ms", "fold_in_ms_p95"],
                [[full["train_s"], full["train_cpu_s"], full["peak_mem_mb"], full["core_items"],
                  results["fold_in_ms"], results["fold_in_ms_p95"]]])
    t = results["trainer"]
    print_table("recs_trainer whole path on ml-latest-small (in-memory stores, fresh process)",
                ["wall_s", "cpu_s", "peak_mem_mb", "rows_written", "artifact_mb", "holdout_ndcg10",
                 "holdout_pop_ndcg10", "holdout_members"],
                [[t["wall_s"], t["cpu_s"], t["peak_mem_mb"], t["rows_written"], t["artifact_mb"],
                  t["holdout"]["ndcg10"], t["holdout"]["popularity"]["ndcg10"], t["holdout"]["holdout_members"]]])
    print_table("recs train cost vs catalogue size (all titles in the EASE core)",
                ["items", "plays", "train_s", "train_cpu_s", "peak_mem_mb"],
                [[s["items"], s["plays"], s["train_s"], s["train_cpu_s"], s["peak_mem_mb"]]
                 for s in results["scaling"]])
    return results
