"""delivery_prefs against the local stack: the sample picks become per-profile defaults next to
the recommendations, a language switch overrides a session's pick, a replay changes nothing,
and without a catalogue the function keeps recording picks and says so.

``CATALOGUE_SYSTEM`` grants the function read access to ``catalogue/`` in the exports bucket,
the declaration the function needs in infra/system.py to use title metadata."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from streamsense.delivery.model import TitleInfo, resolve
from streamsense.delivery.service import defaults_for
from streamsense_local.samples import Sample, run_sample
from streamsense_local.stack import LocalStack

from infra.system import SYSTEM, Access, System

EVENTS = Path(__file__).resolve().parents[2] / "events"
_fn = SYSTEM.function("delivery_prefs")
WITH_CATALOGUE = dataclasses.replace(
    _fn, access=(*_fn.access, Access("exports", "read", prefix="catalogue/"))
)


def _system(fn: Any) -> System:
    return System(
        name="delivery-it",
        streams=tuple(s for s in SYSTEM.streams if s.name == "playback"),
        tables=tuple(t for t in SYSTEM.tables if t.name == "recs"),
        buckets=tuple(b for b in SYSTEM.buckets if b.name == "exports"),
        queues=tuple(q for q in SYSTEM.queues if q.name in {"quarantine", "failures"}),
        functions=(fn,),
    )


pytestmark = pytest.mark.xdist_group("delivery_stack")


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack.start(_system(WITH_CATALOGUE)) as s:
        yield s


@pytest.fixture
def fresh(stack: LocalStack) -> LocalStack:
    stack.reset()
    stack.processes["delivery_prefs"].stop()  # a cold container re-reads the catalogue
    return stack


def _sample(name: str) -> Sample:
    return Sample("delivery_prefs", EVENTS / "delivery_prefs" / f"{name}.json")


def _items(stack: LocalStack) -> dict[tuple[str, str], dict[str, Any]]:
    return {(i["pk"], i["sk"]): i for i in stack.scan("recs")}


def test_picks_become_defaults_per_profile_and_situation(fresh: LocalStack) -> None:
    run = run_sample(fresh, _sample("language-picks"))
    inv = run.invocation
    assert inv.ok and inv.response == {"batchItemFailures": []}
    assert "CatalogueUnavailable" not in inv.metrics
    assert (
        inv.metrics["DeliverySelections"] == 6
    )  # 5 starts + 1 switch; the plain heartbeat is not one
    items = _items(fresh)
    fan = items[("member#acc-fr-1", "delivery")]
    p1 = fan["profiles"]["acc-fr-1-p1"]["defaults"]
    assert p1["language"] == "fr"
    assert {
        s: (p1[s]["audio"], p1[s]["subtitles"], p1[s]["source"])
        for s in ("native", "foreign_dub", "foreign")
    } == {
        "native": ("own", "off", "profile"),
        "foreign_dub": ("own", "off", "profile"),
        "foreign": ("original", "own", "profile"),
    }
    purist = fan["profiles"]["acc-fr-1-p2"]["defaults"]
    assert (purist["foreign_dub"]["audio"], purist["foreign_dub"]["subtitles"]) == (
        "original",
        "own",
    )
    switched = items[("member#acc-fr-2", "delivery")]["profiles"]["acc-fr-2-p1"]["picks"]
    assert [p[2:] for p in switched] == [["t-en-dub", "en", "fr"]]
    region = items[("region#FR", "delivery")]
    assert region["picks"] == 5 and region["shards"] == ["shardId-000000000000"]
    # what players get: the purist's dubbed English film plays in English with French subtitles,
    # a new French member's in French
    dune = TitleInfo("en", True)
    assert resolve(defaults_for(fan, "acc-fr-1-p2", region), dune) == ("en", "fr")
    assert resolve(defaults_for(None, "new", region), dune) == ("fr", "off")


def test_a_replay_changes_nothing(fresh: LocalStack) -> None:
    sample = _sample("language-picks")
    run_sample(fresh, sample)
    before = _items(fresh)
    again = fresh.invoke("delivery_prefs", sample.event())
    assert again.ok and again.metrics.get("DeliveryMembersWritten", 0) == 0
    assert again.metrics["DeliveryReplaysSkipped"] == 5
    assert _items(fresh) == before


def test_without_a_catalogue_picks_are_still_recorded(fresh: LocalStack) -> None:
    sample = _sample("language-picks")
    inv = fresh.invoke("delivery_prefs", sample.event())  # no setup: the catalogue is missing
    assert inv.ok and inv.metrics["CatalogueUnavailable"] == 1
    fan = _items(fresh)[("member#acc-fr-1", "delivery")]
    assert len(fan["profiles"]["acc-fr-1-p1"]["picks"]) == 3
    assert fan["profiles"]["acc-fr-1-p1"]["defaults"]["language"] == "fr"
