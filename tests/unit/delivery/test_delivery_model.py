"""Audio/subtitle defaults: the language vote, roles per situation, region fallback, resolve."""

from __future__ import annotations

from streamsense.delivery.model import (
    Choice,
    Defaults,
    Pick,
    TitleInfo,
    language_of,
    majorities,
    profile_defaults,
    region_defaults,
    resolve,
    role_of,
)

EN_DUBBED = TitleInfo("en", True)
EN_UNDUBBED = TitleInfo("en", False)
FR_TITLE = TitleInfo("fr", False)


def test_language_vote() -> None:
    # a French speaker: a French dub chosen over English (fr +2), French subtitles on an
    # undubbed English film (fr +2, en +1), a French film as it is (fr +1)
    picks = [
        Pick("en", True, "fr", "off"),
        Pick("en", False, "en", "fr"),
        Pick("fr", False, "fr", "off"),
    ]
    assert language_of([(p, 1) for p in picks]) == "fr"
    # tie (en 1, fr 1): the fallback wins if it is a leader, else the first alphabetically
    tie = [(Pick("en", False, "en", "off"), 1), (Pick("fr", False, "fr", "off"), 1)]
    assert language_of(tie, "fr") == "fr"
    assert language_of(tie, "de") == "en"
    assert language_of([], "de") == "de"


def test_roles() -> None:
    assert role_of(Pick("en", True, "fr", "off"), "fr") == Choice("own", "off")
    assert role_of(Pick("en", True, "en", "fr"), "fr") == Choice("original", "own")
    assert role_of(Pick("ja", False, "en", "en"), "fr") == Choice("en", "en")


def test_majorities_by_situation_with_recency_ties() -> None:
    picks = [
        Pick("en", True, "fr", "off"),  # foreign_dub: own/off
        Pick("en", True, "en", "fr"),  # foreign_dub: original/own
        Pick("en", True, "fr", "off"),  # foreign_dub: own/off  -> 2 vs 1
        Pick("en", False, "en", "fr"),  # foreign: original/own
        Pick("fr", False, "fr", "fr"),  # native: own/own
        Pick("fr", False, "fr", "off"),  # native: own/off (tie 1-1: the later one wins)
        Pick(None, None, "fr", "off"),  # unknown title: no situation
    ]
    found = majorities([(p, 1) for p in picks], "fr")
    assert found == {
        "foreign_dub": (Choice("own", "off"), 3),
        "foreign": (Choice("original", "own"), 1),
        "native": (Choice("own", "off"), 2),
    }


def test_profile_falls_back_to_region_for_unseen_situations() -> None:
    region = region_defaults(
        [
            (Pick("de", False, "de", "off"), 70),
            (Pick("de", False, "de", "de"), 30),
            (Pick("en", True, "de", "off"), 60),
            (Pick("en", True, "en", "de"), 20),
            (Pick("en", False, "en", "de"), 50),
        ]
    )
    assert region.language == "de"
    assert region.choices == {
        "native": Choice("own", "off"),
        "foreign_dub": Choice("own", "off"),
        "foreign": Choice("original", "own"),
    }
    assert region.support == {"native": 100, "foreign_dub": 80, "foreign": 50}
    # a purist who has only watched dubbed English titles in the original, with subtitles
    purist = profile_defaults([Pick("en", True, "en", "de"), Pick("en", True, "en", "de")], region)
    assert purist.language == "de"  # subtitles in German: +2 each, English audio +1 each
    assert purist.choices["foreign_dub"] == Choice("original", "own")
    assert purist.sources == {"native": "region", "foreign_dub": "profile", "foreign": "region"}
    assert purist.choices["native"] == Choice("own", "off")


def test_resolve_per_title() -> None:
    region = region_defaults(
        [(Pick("en", True, "fr", "off"), 5), (Pick("en", False, "en", "fr"), 5)]
    )
    assert region.language == "fr"
    assert resolve(region, EN_DUBBED) == ("fr", "off")
    assert resolve(region, EN_UNDUBBED) == ("en", "fr")
    assert resolve(region, FR_TITLE) == ("fr", "off")  # native: the built-in fallback
    assert resolve(region, None) == ("fr", "off")  # unknown title: own language
    # "own" audio where no dub exists cannot be honoured: the original plays
    own_everywhere = Defaults(
        "fr",
        dict.fromkeys(("native", "foreign_dub", "foreign"), Choice("own", "own")),  # type: ignore[arg-type]
        {},
        {},
    )
    assert resolve(own_everywhere, TitleInfo("ja", False)) == ("ja", "fr")
    assert resolve(own_everywhere, TitleInfo("ja", True)) == ("fr", "fr")
