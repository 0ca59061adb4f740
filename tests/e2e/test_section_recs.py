"""The report's recommendations section and the recs queries on a tiny local-stack run: the
sample viewing-history export through recs_trainer (S3 -> Lambda -> DynamoDB/S3), the lists
captured before the replay, a few plays over two days through recs_realtime (Kinesis -> Lambda),
the lists captured at each day boundary, then collect() joined with the replayed plays.

The export (events/recs_trainer/viewing-history.setup): three taste groups of six members,
sci-fi (dune, arrival, blade), animation (up, coco, inside), crime (heat, ronin, drive); the
last member of each group has only watched the first two titles. Plays per title: 6 for the
first two of each group, 5 for the third. The catalogue adds four titles nobody played
(interstellar, soul, sicario, foundation). Replayed: prof-05 (dune, arrival) plays blade;
prof-25 (heat, ronin) plays drive, then dune the next day; prof-new (not in the export) plays
heat, then ronin; it is a second profile of account acc-new (the others' account ids are their
profile ids, as a MovieLens member's are). Every expected figure below is worked out from these
lists."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
from streamsense_bench.recs_anchors import ease_weights
from streamsense_local.job.queries import recs as queries
from streamsense_local.job.sections import JobContext
from streamsense_local.job.sections import recs as section
from streamsense_local.stack import LocalStack

from infra.system import SYSTEM, System

RECS_SYSTEM = System(
    name="recs-e2e",
    streams=tuple(s for s in SYSTEM.streams if s.name == "playback"),
    tables=tuple(t for t in SYSTEM.tables if t.name == "recs"),
    buckets=tuple(b for b in SYSTEM.buckets if b.name in {"exports", "models"}),
    queues=tuple(q for q in SYSTEM.queues if q.name in {"quarantine", "failures"}),
    functions=(SYSTEM.function("recs_trainer"), SYSTEM.function("recs_realtime"), SYSTEM.function("delivery_prefs")),
)
pytestmark = pytest.mark.xdist_group("recs_section_stack")
SETUP = Path(__file__).resolve().parents[2] / "events/recs_trainer/viewing-history.setup/buckets/exports/viewing-history"
KEY = "viewing-history/2024-12-01/plays.csv"
DAY1 = datetime(2024, 12, 3, tzinfo=UTC)
PLAYS = [(0, "prof-05", "t-blade"), (0, "prof-25", "t-drive"), (0, "prof-new", "t-heat"),
         (1, "prof-25", "t-dune"), (1, "prof-new", "t-ronin")]
NEW_PLAYS = {"prof-05": ["t-blade"], "prof-25": ["t-drive", "t-dune"], "prof-new": ["t-heat", "t-ronin"]}
IDCG2 = 1 + 1 / math.log2(3)  # two relevant titles


def dcg(*ranks: int) -> float:
    return sum(1 / math.log2(r + 1) for r in ranks)


def start(i: int, profile: str, title: str, at: datetime) -> dict[str, Any]:
    return {
        "type": "playback_start", "version": 1, "event_id": f"pb-{i}", "occurred_at": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "account_id": "acc-new" if profile == "prof-new" else profile,
        "payload": {
            "session_id": f"s-{i}", "profile_id": profile, "title_id": title,
            "device": {"device_id": "dev-1", "device_type": "tv"},
            "network": {"ip": "203.0.113.7", "asn": 64500, "country": "US", "city": "Austin", "lat": 30.27, "lon": -97.74},
            "network_type": "wifi", "startup_ms": 900, "audio_language": "en", "subtitle_language": "off",
        },
    }


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalStack, JobContext, Any]]:
    out = tmp_path_factory.mktemp("recs-report")
    with LocalStack.start(RECS_SYSTEM) as stack:
        stack.clock.advance_to(DAY1.timestamp() - 3600)
        stack.put_object("exports", "viewing-history/catalog/titles.csv", (SETUP / "catalog/titles.csv").read_bytes())
        stack.put_object("exports", KEY, (SETUP / "2024-12-01/plays part 1.csv").read_bytes())
        stack.drain()
        truth: dict[str, Any] = {"movielens": {"export_key": KEY, "export_rows": 51, "new_plays": NEW_PLAYS}}
        before = section.after_trainers(stack, truth)
        windows = []
        for day in (0, 1):
            stack.clock.advance_to(DAY1.timestamp() + day * 86400 + 3600)
            stack.put_events([start(i, p, t, DAY1 + timedelta(days=day, hours=20 + i))
                              for i, (d, p, t) in enumerate(PLAYS) if d == day])
            stack.drain()
            end = DAY1.timestamp() + (day + 1) * 86400
            stack.clock.advance_to(end)
            windows.append(section.after_window(stack, truth, end))
        truth |= {"recs_before": before, "recs_windows": windows}
        ctx = JobContext(stack=stack, out=out, truth=truth, data_dir=None, quick=True)
        yield stack, ctx, section.collect(ctx)


def titles(view: dict[str, Any]) -> list[str]:
    return [t for t, _, _ in view["top"]]


def test_lists_captured_before_the_replay(run: tuple) -> None:
    _, ctx, _ = run
    before = ctx.truth["recs_before"]
    assert sorted(before["members"]) == ["prof-05", "prof-25"]  # prof-new has no row yet
    assert titles(before["members"]["prof-05"])[:1] == ["t-blade"]
    # dune (watched next) is 6th: the crime pick, then trending and a new crime title.
    assert titles(before["members"]["prof-25"])[:6] == ["t-drive", "t-coco", "t-sicario", "t-up", "t-arrival", "t-dune"]
    assert before["trending"]["ALL"][:2] == ["t-ronin", "t-heat"]
    day1 = ctx.truth["recs_windows"][0]["members"]
    assert titles(day1["prof-25"])[:5] == ["t-coco", "t-up", "t-sicario", "t-arrival", "t-dune"]
    assert titles(day1["prof-new"])[:1] == ["t-ronin"]


def test_quality_against_the_anchors(run: tuple) -> None:
    _, _, sec = run
    h = sec.headline
    assert (h["evaluated_members"], h["evaluated_future_plays"], h["replayed_members_new_to_export"]) == (2, 3, 1)
    # product: prof-05 blade at 1; prof-25 drive at 1, dune at 6
    assert h["hit20"] == 1.0 and h["recall20"] == 1.0 and h["mrr20"] == 1.0
    assert h["ndcg20"] == round((1 + dcg(1, 6) / IDCG2) / 2, 4)
    # EASE and ItemKNN: blade is prof-05's only positive score; prof-25's only positive is drive,
    # then zeros in title order (arrival, blade, coco, dune): dune at 5.
    for name in ("ease_lambda100", "itemknn_cosine_k100"):
        assert h[f"anchor_{name}_ndcg20"] == round((1 + dcg(1, 5) / IDCG2) / 2, 4)
        assert h[f"anchor_{name}_mrr20"] == 1.0
    # popularity (6 plays: coco heat ronin up / arrival coco dune up; then 5: blade drive inside):
    # prof-05 blade at 5; prof-25 dune at 3, drive at 6.
    assert h["anchor_popularity_ndcg20"] == round((dcg(5) + dcg(3, 6) / IDCG2) / 2, 4)
    assert h["anchor_popularity_mrr20"] == round((1 / 5 + 1 / 3) / 2, 4)
    # cold start: prof-new's heat and ronin are 2nd and 1st on the trending row; 4th and 5th by
    # plain popularity (arrival coco dune heat ronin up).
    assert h["cold_start_trending_ndcg20"] == 1.0
    assert h["cold_start_anchor_popularity_ndcg20"] == round(dcg(4, 5) / IDCG2, 4)


def test_coverage_and_exposure(run: tuple) -> None:
    stack, _, sec = run
    h = sec.headline

    def gini(counts: list[int], n: int) -> float:  # mean absolute difference / (2 mean)
        x = np.array(counts + [0] * (n - len(counts)), dtype=float)
        return float(np.abs(x[:, None] - x[None, :]).sum() / (2 * n * n * x.mean()))

    # Anchors show every export title the member has not watched: 18 members minus its watchers.
    anchor_counts = [18 - w for w in (6, 6, 5, 6, 6, 5, 6, 6, 5)]
    assert h["coverage_members"] == 18 and h["model_titles"] == 13
    for name in ("ease_lambda100", "itemknn_cosine_k100", "popularity"):
        assert h[f"anchor_{name}_coverage20"] == round(9 / 13, 4)
        assert h[f"anchor_{name}_exposure_gini20"] == round(gini(anchor_counts, 13), 4)
    # The product's lists for the members the replay did not touch are still in the table.
    rows = {i["pk"]: i for i in stack.scan("recs") if i["sk"] == "recs"}
    lists = [[r["title"] for r in rows[f"member#{m}"]["top"][:20]] for m in
             [f"prof-{k:02d}" for k in (*range(6), *range(10, 16), *range(20, 26))] if m not in NEW_PLAYS]
    lists += [titles(v)[:20] for v in run[1].truth["recs_before"]["members"].values()]
    counts = Counter(t for lst in lists for t in lst)
    assert len(counts) == 13 and h["coverage20"] == 1.0  # the four unplayed titles reach members as 'new and similar'
    assert h["exposure_gini20"] == round(gini(list(counts.values()), 13), 4)


def test_what_realtime_did(run: tuple) -> None:
    _, ctx, sec = run
    h = sec.headline
    assert (h["realtime_members_with_list"], h["realtime_plays_folded_share"], h["realtime_stale_lists"]) == (3, 1.0, 0)
    assert h["realtime_lists_on_current_model"] == 3 and h["realtime_members_list_changed_share"] == 1.0
    assert (h["realtime_list_writes"], h["realtime_batches_without_model"]) == (5, 0)  # 3 members on day 1, 2 on day 2
    assert (h["realtime_watched_picks"], h["realtime_watched_picks_removed"]) == (3, 3)  # blade, drive, dune
    assert (h["realtime_watched_titles_in_lists"], h["trainer_watched_titles_in_lists"]) == (0, 0)
    final = ctx.truth["recs_windows"][1]["members"]
    before = ctx.truth["recs_before"]["members"]
    kept = [len(set(titles(final[m])[:20]) & set(titles(before[m])[:20])) / len(titles(before[m])[:20]) for m in ("prof-05", "prof-25")]
    assert h["realtime_top20_kept_share"] == round(float(np.mean(kept)), 4)
    # prof-25's list now leads with sci-fi because of dune; prof-new's with the crime title after its latest play.
    assert [(t, r, b) for t, r, b in final["prof-25"]["top"][:2]] == [
        ("t-arrival", "because_you_watched", "t-dune"), ("t-blade", "because_you_watched", "t-dune")]
    assert final["prof-new"]["top"][0] == ["t-drive", "because_you_watched", "t-ronin"]


def test_fold_in_over_the_replay(run: tuple) -> None:
    _, _, sec = run
    h = sec.headline
    # End of day 1: prof-25 (drive folded, dune to come) and prof-new (heat folded, ronin to come).
    assert h["foldin_member_days"] == 2
    # recs_realtime: dune 5th for prof-25, ronin 1st for prof-new; recs_trainer's list without
    # drive has dune 5th too, and the trending row without heat has ronin 1st.
    assert h["foldin_ndcg20"] == h["foldin_trainer_list_ndcg20"] == round((dcg(5) + 1) / 2, 4)
    # EASE given heat/ronin/drive: all zero, dune 4th (arrival blade coco dune); given heat: ronin 1st.
    assert h["foldin_anchor_ease_lambda100_ndcg20"] == round((dcg(4) + 1) / 2, 4)
    # popularity without heat ronin drive: dune 3rd; without heat: ronin 4th (arrival coco dune ronin).
    assert h["foldin_anchor_popularity_ndcg20"] == round((dcg(3) + dcg(4)) / 2, 4)
    (daily,) = [t for t in sec.tables if t.title.startswith("Fold-in by day")]
    assert [r[:2] for r in daily.rows] == [["2024-12-04 00:00", 2]]
    assert sec.plots and sec.plots[0].exists()


def test_model_headline(run: tuple) -> None:
    stack, _, sec = run
    h = sec.headline
    manifest_key = next(k for k in stack.objects("models") if k.endswith("manifest.json"))
    manifest = json.loads(stack.get_object("models", manifest_key))
    assert h["model_version"] == manifest["version"] and h["model_versions_published"] == 1
    assert (h["model_plays"], h["model_titles"], h["model_core_titles"]) == (51, 13, 9)
    assert (h["export_members"], h["export_titles"], h["replayed_plays"]) == (18, 9, 5)
    assert h["trainer_holdout_ndcg10"] == round(manifest["metrics"]["ndcg10"], 4)


def test_without_the_capture_the_quality_part_is_left_out(run: tuple) -> None:
    stack, ctx, _ = run
    bare = JobContext(stack=stack, out=ctx.out, truth={"movielens": ctx.truth["movielens"]}, data_dir=None, quick=True)
    sec = section.collect(bare)
    assert sec is not None and "ndcg20" not in sec.headline and "foldin_ndcg20" not in sec.headline
    assert sec.headline["realtime_plays_folded_share"] == 1.0 and sec.headline["coverage_members"] == 16
    assert any("after_trainers" in n for n in sec.notes)
    assert section.after_trainers(stack, {}) == {} and section.after_window(stack, {}, 1.0) == {"at": 1.0, "members": {}}


def test_member_query(run: tuple) -> None:
    stack, _, _ = run
    out = queries.member(stack, "prof-25", top=3)
    assert (out["found"], out["region"], out["stale"], out["titles_in_history"]) == (True, "US", False, 4)
    assert [p["title"] for p in out["recent_plays"]] == ["t-dune", "t-drive", "t-ronin", "t-heat"]
    assert out["recent_plays"][0] == {"title": "t-dune", "name": "Dune (2021)", "at": "2024-12-04T23:00:00Z"}
    assert [(r["rank"], r["title"], r["reason"], r["because_name"]) for r in out["recommendations"]] == [
        (1, "t-arrival", "because_you_watched", "Dune (2021)"), (2, "t-blade", "because_you_watched", "Dune (2021)"),
        (3, "t-sicario", "new_and_similar", "Heat (1995)")]
    assert out["recommendations"][2]["text"] == "New and similar to Heat (1995)"
    assert out["model_version"] == out["model_version_serving"]
    delivery = out["delivery"]
    assert (delivery["account_id"], delivery["region"], delivery["profile_known"]) == ("prof-25", "US", True)
    assert delivery["defaults"]["language"] == "en"
    # a profile of a shared account: the member row names the account delivery_prefs keyed
    second = queries.member(stack, "prof-new", top=1)["delivery"]
    assert (second["account_id"], second["profile_known"], second["defaults"]["language"]) == ("acc-new", True, "en")
    cold = queries.member(stack, "nobody", top=2)
    assert (cold["found"], cold["cold_start_source"], cold["delivery"]) == (False, "region#ALL", None)
    assert [r["title"] for r in cold["recommendations"]] == ["t-ronin", "t-heat"]


def test_title_and_region_queries(run: tuple) -> None:
    stack, _, _ = run
    dune = queries.title(stack, "t-dune", top=5)
    assert dune["found"] and dune["name"] == "Dune (2021)"
    assert [s["title"] for s in dune["similar"]] == ["t-arrival", "t-blade"]  # its only co-watched titles
    new = queries.title(stack, "t-foundation", top=3)  # no plays: similar by genre (Sci-Fi, Drama)
    # arrival and interstellar share its genres exactly (cosine 1): the tie goes to the first id.
    assert new["found"] and [s["title"] for s in new["similar"][:2]] == ["t-arrival", "t-interstellar"]
    assert queries.title(stack, "t-nope") == {"title_id": "t-nope", "name": None,
                                               "model_version_serving": dune["model_version_serving"],
                                               "found": False, "in_catalogue": False}
    us = queries.region(stack, "US", top=2)
    assert (us["found"], us["source_region"]) == (True, "US")
    assert [r["title"] for r in us["trending"]] == ["t-ronin", "t-heat"]
    fr = queries.region(stack, "fr", top=1)  # no row of its own: not found, served the global row
    assert (fr["region"], fr["found"], fr["source_region"], fr["trending"][0]["title"]) == ("FR", False, "ALL", "t-ronin")
    assert (queries.region(stack, "all")["found"], queries.region(stack, "ALL")["source_region"]) == (True, "ALL")
    for malformed in ("USA", "12", ""):
        with pytest.raises(ValueError, match="ISO country code of two letters"):
            queries.region(stack, malformed)


def test_ease_dual_matches_the_bench_weights() -> None:
    rng = np.random.default_rng(0)
    x = sp.csr_matrix((rng.random((40, 25)) < 0.3).astype(np.float64))
    b = ease_weights(x, 100.0).astype(np.float64)
    inp = sp.csr_matrix((rng.random((6, 25)) < 0.3).astype(np.float64))
    assert np.allclose(section.fit_ease_dual(x, 100.0)(inp), inp @ b, atol=1e-5)


def test_itemknn_keeps_the_bench_neighbours() -> None:
    rng = np.random.default_rng(1)
    x = sp.csr_matrix((rng.random((50, 30)) < 0.3).astype(np.float64))
    dense = x.toarray()
    norms = np.sqrt(dense.sum(axis=0))
    norms[norms == 0] = 1.0
    sim = (dense / norms).T @ (dense / norms)
    np.fill_diagonal(sim, 0.0)
    inp = sp.csr_matrix(np.eye(30))  # one title per row: the row's kept neighbours
    full = section.fit_itemknn(x, k_neighbors=30, block=7)(inp)
    assert np.allclose(full, sim, atol=1e-6)
    pruned = section.fit_itemknn(x, k_neighbors=5, block=7)(inp)
    for row, ref in zip(pruned, sim, strict=True):
        assert np.allclose(np.sort(row[row != 0])[::-1], np.sort(ref)[::-1][:5][np.sort(ref)[::-1][:5] != 0], atol=1e-6)


def test_top_titles_break_ties_by_title() -> None:
    inp = sp.csr_matrix(np.array([[0.0, 1.0, 0.0, 0.0]]))
    ranked = section.top_titles(np.array([[1e-12, 5.0, -1e-12, 2.0]]), inp, np.array(["a", "b", "c", "d"]), depth=3)
    assert ranked == [["d", "a", "c"]]
    assert section.scores(["x", "y", "z"], {"y", "q"}) == pytest.approx({
        "hit20": 1.0, "recall20": 0.5, "ndcg20": dcg(2) / IDCG2, "mrr20": 0.5, "ndcg10": dcg(2) / IDCG2, "mrr25": 0.5})
    assert section.coverage_and_gini([["a", "b"], ["a"]], 4) == pytest.approx((0.5, 0.5 + 1 / 12))
