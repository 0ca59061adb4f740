"""Serving rows on the tiny hand-made history (tests/unit/recs/tiny.py): exact top-N with
reasons, filtering, cold start, new titles, fold-in, trending and similar titles."""

from __future__ import annotations

from dataclasses import replace

import pytest
import recs_tiny as tiny
from streamsense.recs.model import RecsParams
from streamsense.recs.serving import MemberState, Recommender, states_from_plays

PARAMS = replace(RecsParams(), min_count=2, lam=1.0)


@pytest.fixture(scope="module")
def rec() -> Recommender:
    r = Recommender.train(tiny.plays(), tiny.catalogue(), PARAMS)
    r.min_region_plays = 5  # the tiny regions have 12 plays each
    return r


@pytest.fixture
def states() -> dict[str, MemberState]:
    return states_from_plays(tiny.plays())


def rows(recs: list) -> list[tuple[str, str, str | None]]:
    return [(r.title, r.reason, r.because) for r in recs]


def test_exact_top_n_with_reasons(rec: Recommender, states: dict[str, MemberState]) -> None:
    top = rec.recommend(states["sf-late"], 5)
    assert rows(top) == [
        ("blade", "because_you_watched", "arrival"),  # what every sci-fi member watched next
        ("soul", "popular", None),  # nothing else personal: backfilled, US trending exhausted
        ("foundation", "new_and_similar", "arrival"),  # new title, Sci-Fi|Drama like Arrival
        ("coco", "popular", None),
        ("up", "popular", None),
    ]
    # blade = EASE part (scaled to 1) + 0.5 x the transition part (scaled to 1).
    assert top[0].score == pytest.approx(1.5, abs=1e-6)
    assert top[0].text == "Because you watched Arrival"
    assert top[2].text == "New and similar to Arrival"


def test_already_watched_titles_are_filtered(rec: Recommender, states: dict[str, MemberState]) -> None:
    for member, state in states.items():
        titles = [r.title for r in rec.recommend(state, 10)]
        assert not set(titles) & set(state.history), member
        assert len(titles) == len(set(titles))


def test_cold_start_gets_regional_trending_then_global(rec: Recommender) -> None:
    assert rows(rec.recommend(MemberState(region="DE"), 4)) == [
        ("soul", "trending_in_region", None), ("coco", "trending_in_region", None),
        ("up", "trending_in_region", None), ("arrival", "popular", None),
    ]
    # An unknown region falls back to the global list.
    assert [r.reason for r in rec.recommend(MemberState(region="FR"), 3)] == ["popular"] * 3
    # Plays of titles the model has never seen leave the member cold.
    assert rows(rec.recommend(MemberState({"unknown-title": tiny.T0}, "US"), 2)) == [
        ("arrival", "trending_in_region", None), ("dune", "trending_in_region", None)]


def test_fold_in_of_a_new_play_changes_the_list(rec: Recommender, states: dict[str, MemberState]) -> None:
    member = states["an-1"]  # has watched every animation title
    before = rec.recommend(member, 3)
    assert [r.reason for r in before] == ["popular"] * 3
    assert member.add("dune", tiny.T0 + 100_000)
    after = rec.recommend(member, 3)
    assert rows(after)[:2] == [("arrival", "because_you_watched", "dune"),
                               ("blade", "because_you_watched", "dune")]
    assert "dune" not in [r.title for r in after]
    # Replaying the same play is a no-op.
    assert not member.add("dune", tiny.T0 + 100_000)


def test_trending_rows_and_similar_titles(rec: Recommender) -> None:
    assert [r.title for r in rec.trending("US", 3)] == ["arrival", "dune", "blade"]
    assert [t for t, _ in rec.similar("dune", 3)] == ["arrival", "blade"]
    # A title with no plays gets content neighbours (same genres).
    assert [t for t, _ in rec.similar("foundation", 1)] == ["arrival"]
    assert rec.similar("nope") == []


def test_batch_equals_one_by_one(rec: Recommender, states: dict[str, MemberState]) -> None:
    members = [states[m] for m in sorted(states)]
    batch = rec.recommend_many(members, 6)
    assert batch == [rec.recommend(m, 6) for m in members]


def test_similar_all_equals_similar_title_by_title(rec: Recommender) -> None:
    every = rec.similar_all(3)
    assert every == {str(t): rec.similar(str(t), 3) for t in rec.titles if rec.similar(str(t), 3)}
    assert sorted(every) == ["arrival", "blade", "coco", "dune", "foundation", "soul", "up"]


def test_titles_older_than_the_scored_history_are_still_filtered(
        rec: Recommender, monkeypatch: pytest.MonkeyPatch) -> None:
    import streamsense.recs.serving as serving
    monkeypatch.setattr(serving, "SCORING_CAP", 2)
    # blade was watched first; only dune and arrival (the 2 newest) are scored from, and they
    # point at blade, yet it was watched, so it must not come back.
    member = MemberState({"blade": tiny.T0 - 1_000, "dune": tiny.T0 + 1, "arrival": tiny.T0 + 2}, "US")
    top = rec.recommend(member, 5)
    assert "blade" not in [r.title for r in top]
    assert rows(top) == [("soul", "popular", None), ("coco", "popular", None),
                         ("foundation", "new_and_similar", "arrival"), ("up", "popular", None)]


def test_a_new_title_the_member_already_played_is_not_offered_again(
        rec: Recommender, states: dict[str, MemberState]) -> None:
    member = states["sf-late"]
    assert member.add("foundation", tiny.T0 + 200_000)  # a play after the training window
    top = rec.recommend(member, 5)
    assert "foundation" not in [r.title for r in top]
    assert [r.reason for r in top].count("new_and_similar") == 0


def test_member_history_keeps_the_newest_titles_up_to_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    import streamsense.recs.serving as serving
    monkeypatch.setattr(serving, "HISTORY_CAP", 3)
    member = MemberState()
    for k, title in enumerate(["a", "b", "c", "d"]):
        assert member.add(title, tiny.T0 + k)
    assert member.history == {"b": tiny.T0 + 1, "c": tiny.T0 + 2, "d": tiny.T0 + 3}
