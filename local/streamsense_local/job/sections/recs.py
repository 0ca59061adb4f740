"""Recommendations: the lists recs_trainer and recs_realtime wrote, scored against what the
replayed MovieLens members went on to watch, next to anchors computed here on the same export.

What the functions wrote (the only source of product figures):
- the lists recs_trainer wrote for the members about to be replayed (``member#<m>`` / ``recs``
  rows), captured by ``after_trainers`` between the trainer step and the replay (run.py keeps
  the result in ``ctx.truth["recs_before"]``): a section runs after the replay, when
  recs_realtime has rewritten those rows; other members' rows are still the trainer's;
- the replayed members' rows as recs_realtime left them at each day boundary
  (``after_window``, kept in ``ctx.truth["recs_windows"]``; optional) and at the end;
- the model version recs_trainer published (models bucket: ``recs/current.json`` -> manifest)
  and the export it trained on (exports bucket), read with the trainer's own reader.

Ground truth: ``ctx.truth["movielens"]["new_plays"]``, each replayed member's newest titles in
the order they were replayed. Each list is scored against the titles the member played after
it was written (binary relevance): hit rate, recall (hits / min(k, titles), as benchmarks.md's
protocol A), NDCG and MRR at 20, plus NDCG@10 and MRR@25 (protocol B's keys). Coverage and
exposure Gini of the top 20 over a fixed sample of 61 export members (protocol B's test-set
size). Already-watched titles are checked against the export and the replay, not against the
history the functions store.

Anchors (labelled as such, computed here, never from the product's code): popularity (plays in
the export), ItemKNN cosine k=100 and EASE lambda=100 as ``streamsense_bench.recs_anchors``
defines them, on the export's binary member x title matrix. Two reformulations keep the section
to seconds: EASE in its dual (Woodbury) form, an m x m solve over the export's m members instead
of an n x n inverse over its n titles (the same weights: tests/e2e/test_section_recs.py checks
them against ``recs_anchors.ease_weights``), and ItemKNN's similarities built one block of titles
at a time in float32 from the sparse matrix (the same k largest neighbours per title; ties at
the k-th similarity may resolve differently, as they may between any two runs of the bench's).
Ranking ties are broken by title id (scores rounded to 1e-9 first, so floating noise around
exact zeros does not order them).
"""
from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
from scipy.linalg import cho_factor, cho_solve
from streamsense.recs import artifact
from streamsense.recs.data import GLOBAL_REGION
from streamsense.recs.exports import read_plays
from streamsense.recs.service import decode_history, member_key
from streamsense.storage import DynamoTable

from streamsense_local.job.sections import JobContext, Section, Table

if TYPE_CHECKING:
    from streamsense_local.stack import LocalStack

K = 20  # the list length the headline scores (a home-page row)
DEPTH = 25  # ranks kept per list: enough for MRR@25
EASE_LAMBDA = 100.0
KNN_NEIGHBOURS = 100
ANCHORS = ("ease_lambda100", "itemknn_cosine_k100", "popularity")
ANCHOR_LABEL = {
    "ease_lambda100": "anchor: EASE lambda=100",
    "itemknn_cosine_k100": "anchor: ItemKNN cosine k=100",
    "popularity": "anchor: popularity",
}
METRICS = ("hit20", "recall20", "ndcg20", "mrr20", "ndcg10", "mrr25")
#: Members in the coverage sample: protocol B's test set size (10 % of ml-latest-small's 610).
COVERAGE_MEMBERS = 61


# ---- reading what the functions wrote -----------------------------------------------------


def _table(stack: LocalStack) -> DynamoTable:
    return DynamoTable(stack.physical("table", "recs"), client=stack.client("dynamodb"))


def _view(item: Mapping[str, Any]) -> dict[str, Any]:
    """A member's row as the section keeps it: the list (title, reason, because) and the
    history (title -> unix seconds) exactly as stored."""
    return {
        "top": [[str(r["title"]), str(r.get("reason", "")), r.get("because")] for r in item.get("top") or []],
        "history": decode_history(str(item.get("history") or "")),
        "region": str(item.get("region") or GLOBAL_REGION),
        "model_version": str(item.get("model_version") or ""),
        "stale": bool(item.get("stale", False)),
        "updated_at": str(item.get("updated_at") or ""),
    }


def _read_members(table: DynamoTable, members: Iterable[str]) -> dict[str, dict[str, Any]]:
    keys = [member_key(m) for m in sorted(set(members))]
    found = table.get_many(keys)
    return {k[0].removeprefix("member#"): _view(found[k]) for k in keys if k in found}


def _read_trending(table: DynamoTable, regions: Iterable[str]) -> dict[str, list[str]]:
    keys = [(f"region#{r}", "recs#trending") for r in sorted(set(regions) | {GLOBAL_REGION})]
    found = table.get_many(keys)
    return {k[0].removeprefix("region#"): [str(x["title"]) for x in found[k]["items"]] for k in keys if k in found}


def _movielens(truth: Mapping[str, Any]) -> Mapping[str, Any]:
    ml = truth.get("movielens") or {}
    return ml if ml.get("export_key") else {}


def after_trainers(stack: LocalStack, truth: Mapping[str, Any]) -> dict[str, Any]:
    """The lists recs_trainer wrote for the members whose plays are about to be replayed,
    before any of them is: run.py calls this once the exports are delivered (``stack.drain()``
    after the S3 puts) and keeps the result in ``ctx.truth["recs_before"]``. ``truth`` is the
    replays' truth by source (``movielens``). Reads those members' rows and the trending rows
    (members new to the export have no row yet)."""
    ml = _movielens(truth)
    if not ml:
        return {}
    table = _table(stack)
    members = _read_members(table, (ml.get("new_plays") or {}).keys())
    return {"members": members, "trending": _read_trending(table, [v["region"] for v in members.values()])}


def after_window(stack: LocalStack, truth: Mapping[str, Any], end: float) -> dict[str, Any]:
    """The replayed members' lists as recs_realtime left them at a day boundary ``end`` (unix
    seconds): run.py calls this after each day's events are drained and appends the result to
    ``ctx.truth["recs_windows"]``. A few dozen rows: one BatchGetItem per 100 members."""
    ml = _movielens(truth)
    if not ml:
        return {"at": end, "members": {}}
    return {"at": end, "members": _read_members(_table(stack), (ml.get("new_plays") or {}).keys())}


def _published(stack: LocalStack) -> tuple[dict[str, Any] | None, int]:
    """The manifest serving points at (``recs/current.json``) and how many versions exist."""
    keys = [k for k in stack.objects("models") if k.startswith(artifact.PREFIX) and k.endswith("/manifest.json")]
    try:
        pointer = json.loads(stack.get_object("models", artifact.CURRENT_KEY))
        manifest = json.loads(stack.get_object("models", pointer["manifest_key"]))
    except Exception:  # no version published (or an unreadable pointer): reported as such
        return None, len(keys)
    return manifest, len(keys)


# ---- the export and the anchors -----------------------------------------------------------


@dataclass
class Export:
    """The export as the binary member x title matrix the anchors train on."""

    members: list[str]
    titles: np.ndarray  # str, sorted: ties are broken by this order
    x: sp.csr_matrix  # float64 0/1, members x titles

    def __post_init__(self) -> None:
        self.row = {m: i for i, m in enumerate(self.members)}
        self.col = {str(t): j for j, t in enumerate(self.titles)}

    @classmethod
    def from_body(cls, body: bytes, key: str) -> Export:
        plays, _ = read_plays(body, key)  # the trainer's reader: same rows kept, same rows quarantined
        members, rows = np.unique(plays.member.astype(str), return_inverse=True)
        titles, cols = np.unique(plays.title.astype(str), return_inverse=True)
        x = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(members), len(titles)))
        x.sum_duplicates()
        x.data[:] = 1.0
        return cls([str(m) for m in members], titles, x)

    def history(self, member: str) -> list[str]:
        """The titles a member played in the export (empty for a member it never saw)."""
        r = self.row.get(member)
        if r is None:
            return []
        return [str(self.titles[j]) for j in self.x.indices[self.x.indptr[r]:self.x.indptr[r + 1]]]

    def inputs(self, histories: Sequence[Iterable[str]]) -> sp.csr_matrix:
        """Binary input rows over the export's titles (titles it has never seen are dropped:
        no anchor can use them)."""
        rows, cols = [], []
        for r, hist in enumerate(histories):
            for t in set(hist):
                j = self.col.get(str(t))
                if j is not None:
                    rows.append(r)
                    cols.append(j)
        return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(histories), len(self.titles)))


Scorer = Callable[[sp.csr_matrix], np.ndarray]


def fit_popularity(x: sp.csr_matrix) -> Scorer:
    pop = np.asarray(x.sum(axis=0)).ravel()
    return lambda inp: np.tile(pop, (inp.shape[0], 1))


def fit_itemknn(x: sp.csr_matrix, k_neighbors: int = KNN_NEIGHBOURS, block: int = 1024) -> Scorer:
    """recs_anchors.fit_itemknn: cosine between titles' member columns, each title's k most
    similar titles kept; built one block of source titles at a time, in float32 (a sparse x
    dense product: the export matrix is ~2 % full)."""
    norms = np.sqrt(np.asarray(x.sum(axis=0)).ravel())
    norms[norms == 0] = 1.0
    xn_sparse = sp.csr_matrix(x @ sp.diags(1.0 / norms), dtype=np.float32)
    xn = xn_sparse.toarray()
    xt = xn_sparse.T.tocsr()
    n = xn.shape[1]
    keep = min(k_neighbors, n)
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    for s in range(0, n, block):
        sim = np.asarray(xt[s:s + block] @ xn)
        sim[np.arange(sim.shape[0]), np.arange(s, s + sim.shape[0])] = 0.0
        # The bench's selection (ties at the k-th value resolved the same way).
        part = np.argpartition(-sim, keep, axis=1)[:, :keep] if n > keep else np.broadcast_to(np.arange(n), sim.shape)
        rows.append(np.repeat(np.arange(s, s + sim.shape[0]), part.shape[1]))
        cols.append(part.ravel())
        vals.append(np.take_along_axis(sim, part, axis=1).ravel().astype(np.float64))
    s_mat = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    s_mat.eliminate_zeros()
    return lambda inp: np.asarray((inp @ s_mat).toarray())


def fit_ease_dual(x: sp.csr_matrix, lam: float = EASE_LAMBDA) -> Scorer:
    """EASE (Steck 2019), B = I - P diag(P)^-1 with P = (X^T X + lam I)^-1, through Woodbury:
    P = (I - X^T (X X^T + lam I)^-1 X) / lam. Scoring z: z B = z - (z P) / diag(P)."""
    dense = x.toarray()
    gram_users = (x @ x.T).toarray()
    gram_users[np.diag_indices_from(gram_users)] += lam
    factor = cho_factor(gram_users, lower=True)
    kx = cho_solve(factor, dense)  # (X X^T + lam I)^-1 X
    diag_p = (1.0 - np.einsum("ij,ij->j", dense, kx)) / lam

    def score(inp: sp.csr_matrix) -> np.ndarray:
        zp = (inp.toarray() - (inp @ dense.T) @ kx) / lam
        return np.asarray(inp.toarray() - zp / diag_p)

    return score


def fit_anchors(export: Export) -> dict[str, Scorer]:
    return {
        "ease_lambda100": fit_ease_dual(export.x),
        "itemknn_cosine_k100": fit_itemknn(export.x),
        "popularity": fit_popularity(export.x),
    }


def top_titles(scores: np.ndarray, inp: sp.csr_matrix, titles: np.ndarray, depth: int = DEPTH) -> list[list[str]]:
    """Per row the ``depth`` best titles, input titles excluded, ties by title order."""
    scores = np.round(np.asarray(scores, dtype=np.float64), 9)
    out: list[list[str]] = []
    for r in range(scores.shape[0]):
        s = scores[r]
        s[inp.indices[inp.indptr[r]:inp.indptr[r + 1]]] = -np.inf
        finite = np.flatnonzero(np.isfinite(s))
        if len(finite) > depth:
            cut = np.partition(s[finite], len(finite) - depth)[len(finite) - depth]
            finite = finite[s[finite] >= cut]
        order = finite[np.lexsort((finite, -s[finite]))][:depth]
        out.append([str(titles[j]) for j in order])
    return out


def anchor_lists(anchors: Mapping[str, Scorer], export: Export, histories: Sequence[Iterable[str]],
                 chunk: int = 256) -> dict[str, list[list[str]]]:
    out: dict[str, list[list[str]]] = {name: [] for name in anchors}
    for s in range(0, len(histories), chunk):
        inp = export.inputs(histories[s:s + chunk])
        for name, score in anchors.items():
            out[name] += top_titles(score(inp), inp, export.titles)
    return out


# ---- metrics ------------------------------------------------------------------------------


def scores(ranked: Sequence[str], future: set[str]) -> dict[str, float]:
    """One member's list against the titles they played afterwards (binary relevance)."""
    hits = [1.0 if t in future else 0.0 for t in ranked[:DEPTH]]
    hits += [0.0] * (DEPTH - len(hits))
    disc = 1.0 / np.log2(np.arange(2, DEPTH + 2))

    def ndcg(k: int) -> float:
        return float(np.dot(hits[:k], disc[:k]) / disc[: min(k, len(future))].sum())

    first = next((i for i, h in enumerate(hits) if h), None)
    return {
        "hit20": float(any(hits[:K])),
        "recall20": sum(hits[:K]) / min(K, len(future)),
        "ndcg20": ndcg(K),
        "mrr20": 1.0 / (first + 1) if first is not None and first < K else 0.0,
        "ndcg10": ndcg(10),
        "mrr25": 1.0 / (first + 1) if first is not None else 0.0,
    }


def _mean(rows: Sequence[Mapping[str, float]], key: str) -> float:
    return float(np.mean([r[key] for r in rows])) if rows else math.nan


def _se(values: Sequence[float]) -> float:
    return float(np.std(values, ddof=1) / math.sqrt(len(values))) if len(values) > 1 else math.nan


def coverage_and_gini(lists: Sequence[Sequence[str]], n_titles: int, k: int = K) -> tuple[float, float]:
    """Share of the catalogue in at least one top-k list, and the Gini coefficient of how often
    each catalogue title is shown (recs_protocol.exposure_gini's formula; titles never shown
    count as zeros)."""
    counts = Counter(t for lst in lists for t in lst[:k])
    if not counts or n_titles <= 0:
        return 0.0, 0.0
    n = max(n_titles, len(counts))
    c = np.zeros(n, dtype=np.float64)
    c[: len(counts)] = sorted(counts.values())
    c.sort()
    cum = np.cumsum(c)
    return len(counts) / n, float((n + 1 - 2 * (cum.sum() / cum[-1])) / n)


def _r(v: float, nd: int = 4) -> float:
    return round(v, nd) if math.isfinite(v) else v


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")


# ---- the section --------------------------------------------------------------------------


def coverage_sample(members: Iterable[str], size: int = COVERAGE_MEMBERS) -> list[str]:
    """A fixed sample of the export's members (the ``size`` smallest sha256 of their ids):
    independent of which members the replay touches, the same in every run."""
    return sorted(members, key=lambda m: hashlib.sha256(m.encode()).hexdigest())[:size]


# ---- the section --------------------------------------------------------------------------


def collect(ctx: JobContext) -> Section | None:
    ml = _movielens(ctx.truth)
    manifest, n_versions = _published(ctx.stack)
    if not ml:
        return _without_export(ctx, manifest, n_versions)
    section = Section("Recommendations: the lists recs_trainer and recs_realtime wrote vs what members watched next")
    h: dict[str, Any] = section.headline
    _model(section, manifest, n_versions)

    new_plays: dict[str, list[str]] = {str(k): [str(t) for t in v] for k, v in (ml.get("new_plays") or {}).items()}
    captured = ctx.truth.get("recs_before") or {}
    before: dict[str, dict[str, Any]] = captured.get("members") or {}
    trending: dict[str, list[str]] = captured.get("trending") or {}
    windows = [w for w in ctx.truth.get("recs_windows") or [] if w.get("members")]
    table = _table(ctx.stack)
    final = _read_members(table, new_plays)
    export = Export.from_body(ctx.stack.get_object("exports", str(ml["export_key"])), str(ml["export_key"]))
    anchors = fit_anchors(export)
    n_titles = int(manifest["n_titles"]) if manifest else len(export.titles)
    warm = sorted(m for m in new_plays if m in export.row)
    cold = sorted(m for m in new_plays if m not in export.row)
    h["export_members"] = len(export.members)
    h["export_titles"] = len(export.titles)
    h["replayed_members"] = len(new_plays)
    h["replayed_members_new_to_export"] = len(cold)
    h["replayed_plays"] = sum(len(v) for v in new_plays.values())
    if not before:
        section.notes.append(
            "The lists as recs_trainer wrote them were not captured before the replay (run.py did not call "
            "sections.recs.after_trainers between the trainer step and the replay): quality against the anchors is left out."
        )

    # 1. recs_trainer's lists, before any replayed play, vs the titles each member played next.
    per: dict[str, list[dict[str, float]]] = {}
    evaluated: list[str] = []
    if before:
        missing = [m for m in warm if m not in before]
        h["replayed_export_members_without_list"] = len(missing)
        futures = {m: set(new_plays[m]) - set(export.history(m)) for m in warm if m in before}
        evaluated = [m for m in sorted(futures) if futures[m]]
        h["evaluated_members"] = len(evaluated)
        h["evaluated_future_plays"] = sum(len(futures[m]) for m in evaluated)
        product = {m: [t for t, _, _ in before[m]["top"]] for m in evaluated}
        per["product"] = [scores(product[m], futures[m]) for m in evaluated]
        alists = anchor_lists(anchors, export, [export.history(m) for m in evaluated])
        for name in ANCHORS:
            per[name] = [scores(alists[name][i], futures[m]) for i, m in enumerate(evaluated)]
        for key in METRICS:
            h[key] = _r(_mean(per["product"], key))
        for name in ANCHORS:
            for key in ("hit20", "recall20", "ndcg20", "mrr20"):
                h[f"anchor_{name}_{key}"] = _r(_mean(per[name], key))
        for key in ("ndcg10", "mrr25"):
            h[f"anchor_ease_lambda100_{key}"] = _r(_mean(per["ease_lambda100"], key))
        unseen = {m: {t for t in futures[m] if t not in export.col} for m in evaluated}
        h["evaluated_future_plays_on_titles_outside_export"] = sum(len(v) for v in unseen.values())
        section.tables.append(_quality_table(per))
        section.tables.append(_per_member_table(evaluated, export, futures, product, alists, unseen))
        section.tables.append(_reasons_table(before, evaluated, futures))
        _cold_start(section, cold, new_plays, trending, anchors, export)

    # 2. Coverage and exposure of the lists recs_trainer wrote, on a fixed sample of members.
    covered = _coverage(section, ctx, export, before, anchors, n_titles, manifest, set(new_plays))
    cov = covered[0] if covered else None

    # 3. What recs_realtime did with the replayed plays, and whether any list shows a title the
    # member has watched (checked against the export and the replay, not the stored history).
    _realtime(section, final, before, new_plays, manifest)
    emf = ctx.stack.stats["recs_realtime"].metrics if "recs_realtime" in ctx.stack.stats else {}
    # recs_realtime's own counts over every playback event it saw (the simulator's members too).
    h["realtime_list_writes"] = int(emf.get("MembersUpdated", 0))
    h["realtime_batches_without_model"] = int(emf.get("ModelUnavailable", 0))
    trainer_views = {**(covered[1] if covered else {}), **{m: before[m] for m in evaluated}}
    _watched(section, export, new_plays, trainer_views, final)

    # 4. The lists at each day boundary vs the rest of the replay (fold-in without a retrain).
    fold = _fold_in(windows, before, trending, new_plays, anchors, export) if before else None
    if fold is not None:
        pooled, daily = fold
        h["foldin_member_days"] = len(pooled["realtime"])
        for name, key in (("realtime", "foldin_ndcg20"), ("trainer_list", "foldin_trainer_list_ndcg20"),
                          ("ease_lambda100", "foldin_anchor_ease_lambda100_ndcg20"),
                          ("popularity", "foldin_anchor_popularity_ndcg20")):
            h[key] = _r(_mean(pooled[name], "ndcg20"))
        h["foldin_hit20"] = _r(_mean(pooled["realtime"], "hit20"))
        h["foldin_trainer_list_hit20"] = _r(_mean(pooled["trainer_list"], "hit20"))
        section.tables.append(_fold_table(pooled))
        section.tables.append(Table(
            "Fold-in by day: NDCG@20 of the lists at the end of each replay day against the members' later plays",
            ["day ends (UTC)", "member-days", "recs_realtime's list", "recs_trainer's list, watched removed",
             "anchor: EASE folded in", "anchor: popularity"], daily))
    elif before:
        section.notes.append("No snapshot of the lists was taken at a day boundary inside the replay (a one-day "
                             "replay has none): the fold-in comparison over the replay is left out.")

    if cov is not None:
        section.plots.append(_plot(ctx, per, fold, n_titles, cov))
    section.notes += _notes(ctx, len(evaluated), len(export.titles))
    return section


def _model(section: Section, manifest: Mapping[str, Any] | None, n_versions: int) -> None:
    h = section.headline
    h["model_versions_published"] = n_versions
    if manifest is None:
        section.notes.append("recs_trainer published no model version (see the platform section's quarantine table).")
        return
    m = manifest.get("metrics") or {}
    pop = m.get("popularity") or {}
    h.update({
        "model_version": manifest["version"],
        "model_data_start": _iso(manifest["data_window"]["start"]),
        "model_data_end": _iso(manifest["data_window"]["end"]),
        "model_plays": manifest["n_plays"],
        "model_titles": manifest["n_titles"],
        "model_core_titles": manifest["n_core_titles"],
        "model_bytes": manifest["bytes"],
        "trainer_train_s": m.get("train_s"),
        "trainer_holdout_members": m.get("holdout_members", 0),
        "trainer_holdout_ndcg10": _r(m.get("ndcg10", math.nan)),
        "trainer_holdout_mrr25": _r(m.get("mrr25", math.nan)),
        "trainer_holdout_popularity_ndcg10": _r(pop.get("ndcg10", math.nan)),
        "trainer_holdout_popularity_mrr25": _r(pop.get("mrr25", math.nan)),
    })
    src = manifest.get("source") or {}
    rows: list[list[Any]] = [
        ["version (recs/current.json)", manifest["version"]],
        ["versions published", n_versions],
        ["export", f"s3://{src.get('bucket')}/{src.get('key')}"],
        ["data window (UTC)", f"{h['model_data_start']} .. {h['model_data_end']}"],
        ["plays / titles / EASE core titles", f"{manifest['n_plays']:,} / {manifest['n_titles']:,} / {manifest['n_core_titles']:,}"],
        ["artifact bytes, sha256", f"{manifest['bytes']:,}, {str(manifest['sha256'])[:16]}..."],
        ["trained at", manifest.get("trained_at", "")],
        ["train_s (the full retrain inside recs_trainer)", m.get("train_s")],
        ["holdout (oldest 90 % of plays -> the later plays): members", m.get("holdout_members", 0)],
        ["holdout NDCG@10 / MRR@25 / P@10, model", f"{m.get('ndcg10', math.nan):.4f} / {m.get('mrr25', math.nan):.4f} / {m.get('p10', math.nan):.4f}"],
        ["holdout NDCG@10 / MRR@25 / P@10, popularity", f"{pop.get('ndcg10', math.nan):.4f} / {pop.get('mrr25', math.nan):.4f} / {pop.get('p10', math.nan):.4f}"],
        ["params", ", ".join(f"{k}={v}" for k, v in sorted((manifest.get("params") or {}).items()))],
    ]
    section.tables.append(Table("The model version recs_trainer published (its manifest)", ["field", "value"], rows))


def _cell(values: Sequence[Mapping[str, float]], key: str) -> str:
    return f"{_mean(values, key):.4f} ± {_se([v[key] for v in values]):.4f}"


def _quality_table(per: Mapping[str, list[dict[str, float]]]) -> Table:
    rows: list[list[Any]] = []
    for name in ("product", *ANCHORS):
        label = "recs_trainer's lists (product)" if name == "product" else ANCHOR_LABEL[name]
        rows.append([label, len(per[name]), *[_cell(per[name], k) for k in METRICS]])
    diff = [p["ndcg20"] - e["ndcg20"] for p, e in zip(per["product"], per["ease_lambda100"], strict=True)]
    if diff:
        rows.append(["product - EASE, paired", len(diff), "", "", f"{np.mean(diff):+.4f} ± {_se(diff):.4f}", "", "", ""])
    return Table("Before the replay: each member's list against the titles they played next (mean ± standard error over members)",
                 ["list", "members", *METRICS], rows)


def _per_member_table(evaluated: Sequence[str], export: Export, futures: Mapping[str, set[str]],
                      product: Mapping[str, list[str]], alists: Mapping[str, list[list[str]]],
                      unseen: Mapping[str, set[str]]) -> Table:
    def first(ranked: Sequence[str], fut: set[str]) -> str:
        return next((str(i + 1) for i, t in enumerate(ranked[:DEPTH]) if t in fut), "-")

    rows = []
    for i, m in enumerate(evaluated):
        fut = futures[m]
        rows.append([m, len(export.history(m)), len(fut), len(unseen[m]),
                     sum(t in fut for t in product[m][:K]), first(product[m], fut),
                     sum(t in fut for t in alists["ease_lambda100"][i][:K]), first(alists["ease_lambda100"][i], fut),
                     sum(t in fut for t in alists["popularity"][i][:K])])
    return Table("Per member: titles in the export, titles played next, hits in the top 20 and the rank of the first hit (of 25)",
                 ["member", "export titles", "next titles", "of them outside the export", "product hits@20",
                  "product first hit", "EASE hits@20", "EASE first hit", "popularity hits@20"], rows)


def _reasons_table(before: Mapping[str, Mapping[str, Any]], evaluated: Sequence[str], futures: Mapping[str, set[str]]) -> Table:
    shown: Counter[str] = Counter()
    hits: Counter[str] = Counter()
    for m in evaluated:
        for t, reason, _ in before[m]["top"][:K]:
            shown[reason] += 1
            hits[reason] += t in futures[m]
    rows = [[r, shown[r], hits[r], round(hits[r] / shown[r], 4)] for r in sorted(shown)]
    return Table(f"Reasons in recs_trainer's top-{K} lists of the evaluated members, and how often each pick was played next",
                 ["reason", "picks", "played next", "precision"], rows)


def _cold_start(section: Section, cold: Sequence[str], new_plays: Mapping[str, list[str]], trending: Mapping[str, list[str]],
                anchors: Mapping[str, Scorer], export: Export) -> None:
    """Members the export never saw get the trending row recs_trainer wrote until their first
    play; scored here against all their replayed plays, next to plain popularity."""
    members = [m for m in cold if new_plays[m]]
    row = trending.get(GLOBAL_REGION)
    if not members or not row:
        return
    tr = [scores(row, set(new_plays[m])) for m in members]
    pop = anchor_lists({"popularity": anchors["popularity"]}, export, [[] for _ in members])["popularity"]
    po = [scores(pop[i], set(new_plays[m])) for i, m in enumerate(members)]
    section.headline["cold_start_trending_ndcg20"] = _r(_mean(tr, "ndcg20"))
    section.headline["cold_start_anchor_popularity_ndcg20"] = _r(_mean(po, "ndcg20"))
    section.tables.append(Table(
        "Cold start: replayed members new to the export, the list they get before their first play, against all their plays",
        ["list", "members", *METRICS],
        [["trending row recs_trainer wrote (global)", len(members), *[_cell(tr, k) for k in METRICS]],
         [ANCHOR_LABEL["popularity"], len(members), *[_cell(po, k) for k in METRICS]]]))


def _coverage(section: Section, ctx: JobContext, export: Export, before: Mapping[str, Mapping[str, Any]],
              anchors: Mapping[str, Scorer], n_titles: int, manifest: Mapping[str, Any] | None,
              replayed: set[str]) -> tuple[dict[str, list[list[str]]], dict[str, Mapping[str, Any]]] | None:
    """Coverage@20 and exposure Gini@20 over a fixed sample of the export's members, as many as
    benchmarks.md's protocol B has test members. Members the replay did not touch still hold
    the row recs_trainer wrote; replayed ones come from the capture before the replay."""
    sample = coverage_sample(export.members)
    now = _read_members(_table(ctx.stack), [m for m in sample if m not in replayed])
    trained_at = (manifest or {}).get("trained_at")
    views: dict[str, Mapping[str, Any]] = {}
    for m in sample:
        v = before.get(m) if m in replayed else now.get(m)
        # A row rewritten since the trainer wrote it (not expected for an untouched member) is left out.
        if v is not None and v["top"] and (m in replayed or v["updated_at"] == trained_at):
            views[m] = v
    lists = {m: [t for t, _, _ in v["top"]] for m, v in views.items()}
    if not lists:
        section.notes.append("No list recs_trainer wrote could be read for the coverage sample: coverage is left out.")
        return None
    members = sorted(lists)
    out = {"product": [lists[m] for m in members],
           **anchor_lists(anchors, export, [export.history(m) for m in members])}
    h = section.headline
    h["coverage_members"] = len(members)
    rows = []
    for name in ("product", *ANCHORS):
        c, g = coverage_and_gini(out[name], n_titles)
        key = "" if name == "product" else f"anchor_{name}_"
        h[f"{key}coverage20"], h[f"{key}exposure_gini20"] = _r(c), _r(g)
        rows.append(["recs_trainer's lists (product)" if name == "product" else ANCHOR_LABEL[name], len(members), _r(c), _r(g)])
    section.tables.append(Table(
        f"Coverage and exposure of the top {K}: {len(members)} members of the export (a fixed sample, the size of "
        f"benchmarks.md's protocol B test set), over the model's {n_titles:,} catalogue titles",
        ["list", "members", f"coverage@{K}", f"exposure Gini@{K}"], rows))
    return out, views


def _realtime(section: Section, final: Mapping[str, Mapping[str, Any]], before: Mapping[str, Mapping[str, Any]],
              new_plays: Mapping[str, list[str]], manifest: Mapping[str, Any] | None) -> None:
    h = section.headline
    pairs = [(m, t) for m, ts in new_plays.items() for t in ts]
    folded = sum(1 for m, t in pairs if t in (final.get(m) or {}).get("history", {}))
    h["realtime_members_with_list"] = len(final)
    h["realtime_plays_folded_share"] = _r(folded / len(pairs)) if pairs else math.nan
    h["realtime_stale_lists"] = sum(1 for v in final.values() if v["stale"])
    if manifest is not None:
        h["realtime_lists_on_current_model"] = sum(1 for v in final.values() if v["model_version"] == manifest["version"])
    rows: list[list[Any]] = [
        ["replayed members with a list now", len(final), len(new_plays)],
        ["replayed plays in the members' stored histories", folded, len(pairs)],
        ["lists marked stale (no model when the plays came)", h["realtime_stale_lists"], len(final)],
    ]
    warm = sorted(m for m in new_plays if m in before and m in final)
    if warm:
        changed = [m for m in warm if [t for t, _, _ in final[m]["top"]] != [t for t, _, _ in before[m]["top"]]]
        kept = [len({t for t, _, _ in final[m]["top"][:K]} & {t for t, _, _ in before[m]["top"][:K]}) / max(1, len(before[m]["top"][:K]))
                for m in warm]
        predicted = [(m, t) for m in warm for t, _, _ in before[m]["top"] if t in set(new_plays[m])]
        removed = sum(1 for m, t in predicted if t not in {x for x, _, _ in final[m]["top"]})
        because = [sum(1 for _, r, b in final[m]["top"][:K] if r == "because_you_watched" and b in set(new_plays[m]))
                   / max(1, len(final[m]["top"][:K])) for m in warm]
        h["realtime_members_list_changed_share"] = _r(len(changed) / len(warm))
        h["realtime_top20_kept_share"] = _r(float(np.mean(kept)))
        h["realtime_watched_picks_removed"] = removed
        h["realtime_watched_picks"] = len(predicted)
        h["realtime_top20_because_new_plays_share"] = _r(float(np.mean(because)))
        rows += [
            ["members with a list before the replay whose list changed", len(changed), len(warm)],
            [f"top-{K} titles still there from recs_trainer's list (mean share)", f"{np.mean(kept):.4f}", len(warm)],
            ["picks of recs_trainer's lists the member then watched, gone from the list now", removed, len(predicted)],
            [f"top-{K} picks 'because you watched' a replayed title (mean share)", f"{np.mean(because):.4f}", len(warm)],
        ]
    cold = sorted(m for m in new_plays if m not in before and m in final)
    if before and cold:
        personal = [sum(1 for _, r, _ in final[m]["top"][:K] if r == "because_you_watched") / max(1, len(final[m]["top"][:K]))
                    for m in cold]
        h["realtime_new_members_personal_share"] = _r(float(np.mean(personal)))
        rows.append([f"members new to the export: top-{K} picks now 'because you watched' (mean share)", f"{np.mean(personal):.4f}", len(cold)])
    section.tables.append(Table("What recs_realtime did with the replayed plays (no retrain)", ["", "count / share", "of"], rows))


def _watched(section: Section, export: Export, new_plays: Mapping[str, list[str]],
             trainer: Mapping[str, Mapping[str, Any]], final: Mapping[str, Mapping[str, Any]]) -> None:
    """Titles a list shows that the member has already watched: recs_trainer's lists against
    the export, recs_realtime's against the export and the replayed plays."""
    h = section.headline
    rows: list[list[Any]] = []
    for label, key, views, replay in (("recs_trainer's lists (coverage sample and evaluated members)", "trainer", trainer, False),
                                      ("recs_realtime's lists (replayed members, end of the run)", "realtime", final, True)):
        seen = {m: set(export.history(m)) | (set(new_plays.get(m, ())) if replay else set()) for m in views}
        shown = [(m, t, r) for m, v in views.items() for t, r, _ in v["top"] if t in seen[m]]
        hit_members = {m for m, _, _ in shown}
        why = Counter(r for _, _, r in shown)
        heavy = [m for m in views if len(seen[m]) > len(views[m]["history"])]
        h[f"{key}_lists_checked"] = len(views)
        h[f"{key}_lists_with_watched_titles"] = len(hit_members)
        h[f"{key}_watched_titles_in_lists"] = len(shown)
        rows.append([label, len(views), len(hit_members), len(shown), sum(len(v["top"]) for v in views.values()),
                     ", ".join(f"{r} {n}" for r, n in sorted(why.items())), len(heavy), len(hit_members & set(heavy))])
    section.tables.append(Table(
        "Already-watched titles in the lists (checked against what the member watched: export + replay)",
        ["lists", "checked", "with a watched title", "watched titles shown", "titles shown", "by reason",
         "members whose stored history is shorter than what they watched", "of them with a watched title"], rows))


def _fold_in(windows: Sequence[Mapping[str, Any]], before: Mapping[str, Mapping[str, Any]], trending: Mapping[str, list[str]],
             new_plays: Mapping[str, list[str]], anchors: Mapping[str, Scorer],
             export: Export) -> tuple[dict[str, list[dict[str, float]]], list[list[Any]]] | None:
    """At each day boundary, every replayed member with at least one play folded in and plays
    still to come: the list recs_realtime left, recs_trainer's list (the trending row for
    members new to the export) without the titles watched since, and the anchors given the
    same history, each scored against the member's remaining plays."""
    pooled: dict[str, list[dict[str, float]]] = {k: [] for k in ("realtime", "trainer_list", *ANCHORS)}
    daily: list[list[Any]] = []
    previous: dict[str, set[str]] | None = None
    for w in sorted(windows, key=lambda w: float(w["at"])):
        members = w["members"]
        histories = {m: set(v["history"]) for m, v in members.items()}
        if histories == previous:
            continue  # nothing folded in since the last boundary: the same evaluation again
        previous = histories
        picked = []
        for m in sorted(members):
            plays = set(new_plays.get(m, ()))
            remaining = plays - histories[m] - set(export.history(m))
            if remaining and histories[m] & plays:
                picked.append((m, remaining))
        if not picked:
            continue
        rt = [scores([t for t, _, _ in members[m]["top"]], rem) for m, rem in picked]
        trainer = []
        for m, rem in picked:
            old = [t for t, _, _ in before[m]["top"]] if m in before else trending.get(GLOBAL_REGION, [])
            trainer.append(scores([t for t in old if t not in histories[m]], rem))
        # The anchors' input is everything the member watched by then (export + folded plays).
        al = anchor_lists(anchors, export, [sorted(histories[m] | set(export.history(m))) for m, _ in picked])
        ak = {k: [scores(al[k][i], rem) for i, (_, rem) in enumerate(picked)] for k in ANCHORS}
        pooled["realtime"] += rt
        pooled["trainer_list"] += trainer
        for k in ANCHORS:
            pooled[k] += ak[k]
        daily.append([_iso(float(w["at"])), len(picked), _r(_mean(rt, "ndcg20")), _r(_mean(trainer, "ndcg20")),
                      _r(_mean(ak["ease_lambda100"], "ndcg20")), _r(_mean(ak["popularity"], "ndcg20"))])
    if not pooled["realtime"]:
        return None
    return pooled, daily


def _fold_table(pooled: Mapping[str, list[dict[str, float]]]) -> Table:
    labels = {"realtime": "recs_realtime's lists (product)",
              "trainer_list": "recs_trainer's lists, watched titles removed (product without fold-in)",
              **{k: f"{ANCHOR_LABEL[k]}, folded in" for k in ANCHORS}}
    rows: list[list[Any]] = [[labels[k], len(v), *[_cell(v, m) for m in METRICS]] for k, v in pooled.items()]
    diff = [a["ndcg20"] - b["ndcg20"] for a, b in zip(pooled["realtime"], pooled["trainer_list"], strict=True)]
    rows.append(["recs_realtime - recs_trainer, paired", len(diff), "", "", f"{np.mean(diff):+.4f} ± {_se(diff):.4f}", "", "", ""])
    return Table("During the replay: the lists at each day boundary against each member's remaining plays "
                 "(pooled member-days, mean ± standard error)", ["list", "member-days", *METRICS], rows)


def _plot(ctx: JobContext, per: Mapping[str, list[dict[str, float]]],
          fold: tuple[dict[str, list[dict[str, float]]], list[list[Any]]] | None, n_titles: int,
          cov: Mapping[str, list[list[str]]]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["product", *ANCHORS]
    labels = ["recs_trainer (product)", "EASE λ=100 (anchor)", "ItemKNN k=100 (anchor)", "popularity (anchor)"]
    colors = ["#4c72b0", "#dd8452", "#55a868", "#8c8c8c"]
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.9))
    ax = axes[0]
    if per:
        keys = ["hit20", "recall20", "ndcg20", "mrr20"]
        x = np.arange(len(keys))
        for i, (name, label, color) in enumerate(zip(names, labels, colors, strict=True)):
            err = np.nan_to_num([_se([v[k] for v in per[name]]) for k in keys])
            ax.bar(x + (i - 1.5) * 0.2, [_mean(per[name], k) for k in keys], 0.2, yerr=err, capsize=2, label=label, color=color)
        ax.set_xticks(x, ["HR@20", "R@20", "NDCG@20", "MRR@20"])
        ax.set_title(f"Before the replay: {len(per['product'])} members' next plays (± s.e.)", fontsize=9)
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "lists before the replay not captured", ha="center", va="center")
        ax.set_axis_off()
    ax = axes[1]
    if fold is not None:
        pooled, daily = fold
        days = [r[0][5:10] for r in daily]
        for col, label, color in ((2, "recs_realtime's lists", "#4c72b0"), (3, "recs_trainer's lists (no fold-in)", "#9ab3d5"),
                                  (4, "EASE λ=100 folded in (anchor)", "#dd8452"), (5, "popularity (anchor)", "#8c8c8c")):
            ax.plot(days, [r[col] for r in daily], marker="o", label=label, color=color)
        ax.set_title(f"During the replay: NDCG@20 vs remaining plays ({len(pooled['realtime'])} member-days)", fontsize=9)
        ax.set_xlabel("end of replay day (UTC)")
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "no day-boundary snapshots", ha="center", va="center")
        ax.set_axis_off()
    ax = axes[2]
    for name, label, color in zip(names, labels, colors, strict=True):
        counts = np.sort(np.array(list(Counter(t for lst in cov[name] for t in lst[:K]).values()), dtype=np.float64))[::-1]
        ax.plot(np.arange(1, len(counts) + 1), np.cumsum(counts) / counts.sum(), label=f"{label}: {len(counts)} titles", color=color)
    ax.set_xscale("log")
    ax.set_xlabel("titles, most shown first (log)")
    ax.set_ylabel(f"share of top-{K} slots")
    ax.set_title(f"Exposure: {len(cov['product'])} members' top-{K} ({n_titles:,} titles in the catalogue)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = ctx.plot_path("recs_quality")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _notes(ctx: JobContext, n_eval: int, n_export_titles: int) -> list[str]:
    notes = [
        f"Scored on the {n_eval} export members whose newest plays were replayed (the replay is the newest ratings of "
        "ml-latest-small, which few members made): standard errors are wide and the figures move between the full and "
        "--quick runs. Each member is scored against all the titles they played next (up to hundreds); recall is hits / "
        "min(20, titles), as in benchmarks.md's protocol A.",
        "Not benchmarks.md's protocol B (per-member 90/10 split, ~61 test members, 10 seeds): here one time cutoff splits "
        "all members, the evaluated ones are the few active at the end, and recs_trainer's list is scored as served (top 50 "
        "with new titles at slots 3 and 8 and a trending backfill). Compare the ordering of product and anchors with "
        "`make bench BENCH=recs`, not the decimals.",
        f"The anchors know only the export's {n_export_titles:,} titles; the model's catalogue (movies.csv) also holds the "
        "titles first played during the replay, which recs_trainer can show as 'new and similar'.",
    ]
    if ctx.quick:
        plays = sum(len(v) for v in (_movielens(ctx.truth).get("new_plays") or {}).values())
        notes.append(f"--quick: the replay is only the newest {plays:,} ratings, so the figures are noisier still.")
    return notes


def _without_export(ctx: JobContext, manifest: Mapping[str, Any] | None, n_versions: int) -> Section | None:
    """No MovieLens replay (no team data): what recs_realtime did with the other playback events."""
    rows = [i for i in ctx.stack.scan("recs") if str(i["pk"]).startswith("member#") and i["sk"] == "recs"]
    if not rows and manifest is None:
        return None
    views = [_view(i) for i in rows]
    section = Section("Recommendations: the lists recs_realtime wrote (no viewing-history export replayed)")
    section.headline = {
        "model_versions_published": n_versions,
        "members_with_list": len(views),
        "stale_lists": sum(1 for v in views if v["stale"]),
        "watched_titles_in_lists": sum(1 for v in views for t, _, _ in v["top"] if t in v["history"]),
    }
    section.notes.append("No MovieLens export in this run: no model to score and no anchor. Without a model recs_realtime "
                         "records the plays and marks the lists stale.")
    return section
