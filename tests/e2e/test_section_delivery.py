"""The report's delivery section and the delivery queries on a tiny local-stack run: hand-made
playback starts through delivery_prefs (Kinesis -> Lambda -> DynamoDB, catalogue from S3), then
collect() and the queries, with every score worked out by hand below."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from streamsense_bench.abr_telemetry import shard_of
from streamsense_local.job.queries import delivery as queries
from streamsense_local.job.sections import JobContext, Section
from streamsense_local.job.sections import delivery as section
from streamsense_local.stack import LocalStack

from infra.system import SYSTEM, System

DELIVERY_SYSTEM = System(
    name="delivery-e2e",
    streams=tuple(s for s in SYSTEM.streams if s.name == "playback"),
    tables=tuple(t for t in SYSTEM.tables if t.name == "recs"),
    buckets=tuple(b for b in SYSTEM.buckets if b.name == "exports"),
    queues=tuple(q for q in SYSTEM.queues if q.name in {"quarantine", "failures"}),
    functions=(SYSTEM.function("delivery_prefs"),),
)
pytestmark = pytest.mark.xdist_group("delivery_section_stack")
START = datetime(2024, 12, 2, 20, 0, tzinfo=UTC)
CATALOGUE = b"title_id,language,dubbed\nm-en,en,0\nm-en-dub,en,1\nm-fr,fr,0\n"

# French members, 10 minutes apart: (account, title, audio, subtitles). acc-fr-2 dubs when it can
# and reads French subtitles otherwise, acc-fr-3 is a purist, acc-fr-5 joins last; ml-1 is a
# MovieLens member (its language is the job's, not a choice: it feeds the region, is not scored).
PLAYS = [
    ("acc-fr-2", "m-en-dub", "fr", "off"),  # E1
    ("ml-1", "m-fr", "fr", "off"),  # E2
    ("acc-fr-3", "m-en-dub", "en", "fr"),  # E3
    ("acc-fr-2", "m-en", "en", "fr"),  # E4
    ("acc-fr-3", "m-en-dub", "en", "fr"),  # E5
    ("acc-fr-2", "m-en-dub", "fr", "off"),  # E6
    ("acc-fr-2", "m-fr", "fr", "off"),  # E7
    ("acc-fr-5", "m-en-dub", "fr", "off"),  # E8
]


def events() -> list[dict[str, Any]]:
    out = []
    for i, (account, title, audio, subs) in enumerate(PLAYS):
        out.append(
            {
                "type": "playback_start",
                "version": 1,
                "event_id": f"start-{i}",
                "occurred_at": (START + timedelta(minutes=10 * i)).isoformat().replace("+00:00", "Z"),
                "account_id": account,
                "payload": {
                    "session_id": f"sess-{i}",
                    "profile_id": f"{account}-p0",
                    "title_id": title,
                    "device": {"device_id": f"dev-{account}", "device_type": "web"},
                    "network": {"ip": "192.0.2.10", "asn": 3215, "country": "FR", "lat": 48.85, "lon": 2.35},
                    "network_type": "wifi",
                    "startup_ms": 900,
                    "audio_language": audio,
                    "subtitle_language": subs,
                },
            }
        )
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalStack, Section]]:
    # One shard holds every member: one writer, so the region record is deterministic.
    assert {shard_of(a, 2) for a, *_ in PLAYS} == {0}
    with LocalStack.start(DELIVERY_SYSTEM) as stack:
        stack.put_object("exports", "catalogue/2024-12-01.csv", CATALOGUE)
        assert stack.put_events(events()) == {"playback": len(PLAYS)}
        stack.drain()
        assert stack.receive_all("quarantine") == [] and stack.receive_all("failures") == []
        ctx = JobContext(
            stack=stack,
            out=tmp_path_factory.mktemp("report"),
            truth={"movielens": {"new_plays": {"ml-1": ["m-fr"]}}, "simulator": {}},
            data_dir=None,
            quick=True,
        )
        result = section.collect(ctx)
        assert result is not None
        yield stack, result


def test_headline(run: tuple[LocalStack, Section]) -> None:
    _, result = run
    h = result.headline
    assert (h["members"], h["profiles"], h["regions"], h["plays_scored"], h["plays_left_out_movielens"], h["catalogue_titles"]) == (3, 3, 1, 7, 1, 3)
    # By hand, each play against the defaults derived from the plays before it (region FR):
    # E1 nothing known: built-in fallback (en, off) vs (fr, off): audio wrong.
    # E3 cold: region (E1, ml-1) speaks fr, foreign_dub -> (own, off) = (fr, off) vs (en, fr): both wrong.
    # E4 acc-fr-2 warm: foreign without a dub, profile has none -> region's fallback (original, own) = (en, fr): right.
    # E5 acc-fr-3 warm: its foreign_dub (original, own) = (en, fr): right.
    # E6 acc-fr-2: its foreign_dub (own, off) = (fr, off): right.  E7: native via region (own, off): right.
    # E8 cold: region foreign_dub ties 2-2, the role seen last in the region's sorted counts wins: (own, off): right.
    assert (h["default_right_both"], h["default_right_audio"], h["default_right_subtitles"]) == (round(5 / 7, 4), round(5 / 7, 4), round(6 / 7, 4))
    assert (h["default_right_warm"], h["default_right_cold"], h["plays_warm"], h["plays_cold"]) == (1.0, round(1 / 3, 4), 4, 3)
    # Region defaults alone: right on E4, E7, E8 (E5: region says (fr, off); E6: region now says (en, fr)).
    assert h["default_right_region_defaults_only"] == round(3 / 7, 4)
    # Baselines: region majority right on E7, E8; last pick on E5, E7, E8; profile majority on E5-E8.
    assert h["baseline_region_majority_both"] == round(2 / 7, 4)
    assert h["baseline_profile_last_pick_both"] == round(3 / 7, 4)
    assert h["baseline_profile_majority_both"] == round(4 / 7, 4)
    # Stored defaults decided by the profiles' own picks: acc-fr-2 all three situations, acc-fr-3
    # and acc-fr-5 foreign_dub.
    assert h["defaults_verified"] == "5/5"


def test_tables_and_plot(run: tuple[LocalStack, Section]) -> None:
    _, result = run
    methods, situations = result.tables
    assert [r[0] for r in methods.rows] == [
        "streamsense (situation defaults)",
        "streamsense region defaults only",
        "region_majority (baseline)",
        "profile_last_pick (baseline)",
        "profile_majority (baseline)",
    ]
    # by situation in the served defaults' language: E1 native (the fallback speaks en, wrong), E7
    # native (right), E4 foreign (right), E3 (wrong), E5, E6, E8 foreign_dub
    assert [(r[0], r[1], r[2]) for r in situations.rows] == [("foreign", 1, 1.0), ("foreign_dub", 4, 0.75), ("native", 2, 0.5)]
    assert len(result.plots) == 1 and Path(result.plots[0]).stat().st_size > 10_000
    assert any("catalogue/2024-12-01.csv (3 titles, 0 rows rejected)" in n for n in result.notes)


def test_catalogue_export() -> None:
    class Cat:
        title_ids = ("1", "2")
        language = ("en", "fr")

        class dubbed:  # a stand-in for the numpy bool array
            @staticmethod
            def tolist() -> list[bool]:
                return [True, False]

    class Sim:
        catalogue = Cat()

        class config:
            start = datetime(2027, 1, 11).date()

    key, body = section.catalogue_export(Sim())  # type: ignore[arg-type]
    assert key == "catalogue/2027-01-11.csv"
    assert body == b"title_id,language,dubbed\n1,en,1\n2,fr,0\n"


def test_queries(run: tuple[LocalStack, Section]) -> None:
    stack, _ = run
    m = queries.member(stack, "acc-fr-2", title_id="m-en")
    p = m["profiles"]["acc-fr-2-p0"]
    assert (m["found"], m["region"], p["language"], p["picks_stored"]) == (True, "FR", "fr", 4)
    assert p["foreign_dub"] == {"audio": "own", "subtitles": "off", "source": "profile", "picks": 2}
    assert p["foreign"] == {"audio": "original", "subtitles": "own", "source": "profile", "picks": 1}
    assert p["native"] == {"audio": "own", "subtitles": "off", "source": "profile", "picks": 1}
    assert p["last_pick"] == {"at_ms": int((START + timedelta(minutes=60)).timestamp() * 1000), "title_id": "m-fr", "audio": "fr", "subtitles": "off"}
    assert m["for_title"] == {
        "title_id": "m-en",
        "catalogue": "catalogue/2024-12-01.csv",
        "language": "en",
        "dubbed": False,
        "profiles": {"acc-fr-2-p0": {"situation": "foreign", "audio": "en", "subtitles": "fr"}},
    }
    assert queries.member(stack, "acc-fr-3")["profiles"]["acc-fr-3-p0"]["native"]["source"] == "region"
    assert queries.member(stack, "nobody") == {"account_id": "nobody", "found": False}
    r = queries.region(stack, "fr")
    assert (r["found"], r["picks"], r["defaults"]["language"]) == (True, 8, "fr")
    # foreign_dub: (own, off) x3 (E1, E6, E8) beats (original, own) x2; foreign: E4's (original, own)
    assert {s: (r["defaults"][s]["audio"], r["defaults"][s]["subtitles"], r["defaults"][s]["picks"]) for s in ("native", "foreign_dub", "foreign")} == {
        "native": ("own", "off", 2),
        "foreign_dub": ("own", "off", 5),
        "foreign": ("original", "own", 1),
    }
    assert queries.region(stack, "de") == {"region": "DE", "found": False}
