"""delivery_prefs' domain call against the in-memory recs table: exact records, idempotent
replays, language switches, a cold member getting the region's defaults, the catalogue."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest
from streamsense.delivery.catalogue import BadCatalogue, CatalogueCache, TitleCatalogue
from streamsense.delivery.model import TitleInfo, resolve
from streamsense.delivery.service import (
    DeliveryPrefs,
    Selection,
    counts_key,
    defaults_for,
    member_key,
    region_key,
)
from streamsense.storage import MemoryObjectStore, MemoryTable

NOW = datetime(2024, 6, 10, 12, 0, tzinfo=UTC)
CATALOGUE = TitleCatalogue(
    {
        "t-en-dub": TitleInfo("en", True),
        "t-en": TitleInfo("en", False),
        "t-fr": TitleInfo("fr", False),
    }
)
SHARD = "shardId-000000000000"


def sel(
    account: str,
    profile: str,
    session: str,
    title: str,
    audio: str | None,
    subs: str | None,
    *,
    at_s: int = 0,
    region: str = "FR",
    start: bool = True,
    seq: int = 0,
) -> Selection:
    at_ms = int((NOW + timedelta(seconds=at_s)).timestamp() * 1000)
    return Selection(
        account, profile, session, region, title, at_ms, audio, subs, start, SHARD, seq
    )


def service(table: MemoryTable) -> DeliveryPrefs:
    return DeliveryPrefs(table, CATALOGUE, clock=lambda: NOW)


def french_history() -> list[Selection]:
    return [
        sel("a1", "p1", "s1", "t-en-dub", "fr", "off", at_s=1, seq=10),
        sel("a1", "p1", "s2", "t-en", "en", "fr", at_s=2, seq=20),
        sel("a1", "p1", "s3", "t-fr", "fr", "off", at_s=3, seq=30),
        sel("a2", "p1", "s4", "t-en-dub", "en", "fr", at_s=4, seq=40),  # a purist
    ]


def test_member_record_and_region_defaults() -> None:
    table = MemoryTable()
    report = service(table).update(french_history())
    assert (report.selections, report.members_written, report.regions_published) == (4, 2, 1)
    member = table.items[member_key("a1")]
    assert member["region"] == "FR"
    prof = member["profiles"]["p1"]
    assert [p[2:] for p in prof["picks"]] == [
        ["t-en-dub", "fr", "off"],
        ["t-en", "en", "fr"],
        ["t-fr", "fr", "off"],
    ]
    assert prof["defaults"] == {
        "language": "fr",
        "native": {"audio": "own", "subtitles": "off", "source": "profile", "picks": 1},
        "foreign_dub": {"audio": "own", "subtitles": "off", "source": "profile", "picks": 1},
        "foreign": {"audio": "original", "subtitles": "own", "source": "profile", "picks": 1},
    }
    counts = table.items[counts_key("FR", SHARD)]["counts"]
    assert counts == {"en|1|fr|off": 1, "en|0|en|fr": 1, "fr|0|fr|off": 1, "en|1|en|fr": 1}
    region = table.items[region_key("FR")]
    assert region["picks"] == 4 and region["shards"] == [SHARD]
    # foreign_dub in the region is a 1-1 tie between own/off ("en|1|fr|off") and original/own
    # ("en|1|en|fr"): counts are read in key order and the later leader wins
    assert region["defaults"] == {
        "language": "fr",
        "native": {"audio": "own", "subtitles": "off", "source": "region", "picks": 1},
        "foreign_dub": {"audio": "own", "subtitles": "off", "source": "region", "picks": 2},
        "foreign": {"audio": "original", "subtitles": "own", "source": "region", "picks": 1},
    }


def test_replaying_a_batch_changes_nothing() -> None:
    table = MemoryTable()
    batch = french_history()
    service(table).update(batch)
    once = copy.deepcopy(table.items)
    report = service(table).update(batch)
    assert table.items == once
    assert report.members_written == 0 and report.replayed == 4


def test_a_language_switch_replaces_the_sessions_pick() -> None:
    table = MemoryTable()
    svc = service(table)
    svc.update([sel("a1", "p1", "s1", "t-en-dub", "fr", "off", at_s=1, seq=10)])
    # ten seconds in, the member switches to the original audio with French subtitles
    svc.update([sel("a1", "p1", "s1", "t-en-dub", "en", "fr", at_s=11, start=False, seq=20)])
    picks = table.items[member_key("a1")]["profiles"]["p1"]["picks"]
    assert [p[2:] for p in picks] == [["t-en-dub", "en", "fr"]]
    # an older (re-sent) start does not undo the switch; a partial switch keeps the rest
    svc.update([sel("a1", "p1", "s1", "t-en-dub", "fr", "off", at_s=1, seq=30)])
    svc.update([sel("a1", "p1", "s1", "t-en-dub", None, "off", at_s=20, start=False, seq=40)])
    picks = table.items[member_key("a1")]["profiles"]["p1"]["picks"]
    assert [p[2:] for p in picks] == [["t-en-dub", "en", "off"]]


def test_a_cold_member_gets_the_regions_defaults() -> None:
    table = MemoryTable()
    history = [
        sel(
            f"a{i}",
            "p1",
            f"s{i}",
            "t-en-dub" if i % 2 else "t-en",
            "fr" if i % 2 else "en",
            "off" if i % 2 else "fr",
            seq=i,
        )
        for i in range(1, 11)
    ]
    service(table).update(history)
    fresh = defaults_for(table.items.get(member_key("new")), "p1", table.items[region_key("FR")])
    assert fresh.language == "fr"
    assert fresh.sources["foreign_dub"] == "region"
    assert resolve(fresh, CATALOGUE.get("t-en-dub")) == ("fr", "off")
    assert resolve(fresh, CATALOGUE.get("t-en")) == ("en", "fr")
    nothing = defaults_for(None, "p1", None)
    assert nothing.language == "en" and nothing.sources["native"] == "fallback"


def test_catalogue_from_the_simulators_csv() -> None:
    body = (
        b"title_id,name,genres,language,duration_s,year,release_ms,dubbed\n"
        b"1,Toy Story (1995),Animation,en,4860,1995,1,1\n"
        b"2,Amelie (2001),Comedy,fr,7320,2001,1,0\n"
        b"3,Broken,Drama,english,100,2000,1,0\n"
        b",No id,Drama,en,100,2000,1,0\n"
    )
    cat = TitleCatalogue.from_csv(body)
    assert cat.titles == {"1": TitleInfo("en", True), "2": TitleInfo("fr", False)}
    assert cat.rejected_rows == 2
    with pytest.raises(BadCatalogue):
        TitleCatalogue.from_csv(b"movieId,title,genres\n1,Toy Story,Animation\n")


def test_catalogue_cache_keeps_the_last_good_one() -> None:
    store = MemoryObjectStore()
    t = {"now": 0.0}
    cache = CatalogueCache(store, ttl_s=60, clock=lambda: t["now"])
    assert len(cache.get()) == 0 and cache.error == "no catalogue under catalogue/"
    t["now"] = 61
    store.put("catalogue/2024-06-01.csv", b"title_id,language,dubbed\nt1,en,1\n")
    assert cache.get().get("t1") == TitleInfo("en", True) and cache.error is None
    store.put("catalogue/2024-06-08.csv", b"movieId,title\n1,x\n")  # a broken drop
    assert cache.get().get("t1") == TitleInfo("en", True)  # within the TTL: not re-read
    t["now"] = 200
    assert cache.get().get("t1") == TitleInfo("en", True)  # re-read, rejected, last good kept
    assert cache.error is not None and "BadCatalogue" in cache.error
    assert CatalogueCache(None).get().titles == {}
