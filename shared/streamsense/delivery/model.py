"""Audio and subtitle defaults: what a member is likely to pick, learned from what they picked.

A pick only means something next to the title it was made for: a French speaker who chooses
English audio for an English film without a French dub is not saying the same thing as one who
chooses it over an available dub. So every pick is read against the title's original language
and whether it has a dub in the member's language, and a profile's defaults are kept per
*situation*:

- ``native``: the title is in the profile's language;
- ``foreign_dub``: a foreign title with a dub in the profile's language;
- ``foreign``: a foreign title without one.

In each situation the default is the profile's most frequent (audio, subtitles) choice, stored
as roles so it transfers to titles in other languages: audio ``own`` (the profile's language),
``original`` (the title's) or a fixed code; subtitles ``off``, ``own`` or a fixed code. The
profile's language is the one its picks vote for (subtitles turned on in a language, or a dub
chosen over the original, count double; watching a title as it is counts once).

A situation the profile has never been in takes the region's default for it, computed the
same way from every pick in the region (a new member gets the region's defaults entirely).
``resolve`` turns defaults into the concrete audio and subtitle language for one title.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

Situation = Literal["native", "foreign_dub", "foreign"]
SITUATIONS: tuple[Situation, ...] = ("native", "foreign_dub", "foreign")
OFF = "off"
#: Recent picks kept per profile (enough for the majorities; older taste fades out).
PICKS_KEPT = 50


@dataclass(frozen=True)
class TitleInfo:
    language: str  # original audio language (ISO 639)
    dubbed: bool  # dubbed into the service's languages (else original audio + subtitles)


@dataclass(frozen=True)
class Pick:
    """One observed choice: the title's language and dub status (None when the catalogue did
    not know the title), and the audio and subtitles the member played it with."""

    title_language: str | None
    dubbed: bool | None
    audio: str
    subtitles: str


@dataclass(frozen=True)
class Choice:
    audio: str  # "own" | "original" | a language code
    subtitles: str  # "off" | "own" | a language code

    def as_dict(self) -> dict[str, str]:
        return {"audio": self.audio, "subtitles": self.subtitles}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Choice:
        return cls(str(d["audio"]), str(d["subtitles"]))


#: Before any region data exists: own language, no subtitles unless the audio is foreign.
FALLBACK: dict[Situation, Choice] = {
    "native": Choice("own", OFF),
    "foreign_dub": Choice("own", OFF),
    "foreign": Choice("original", "own"),
}


Weighted = Iterable[tuple[Pick, int]]


def language_of(picks: Weighted, fallback: str | None = None) -> str | None:
    """The language the (pick, weight) pairs vote for; ties go to ``fallback`` if it is among
    the leaders, else to the alphabetically first (deterministic)."""
    votes: Counter[str] = Counter()
    for p, w in picks:
        if p.subtitles != OFF:
            votes[p.subtitles] += 2 * w
        if p.title_language is not None and p.audio != p.title_language:
            votes[p.audio] += 2 * w  # a dub chosen over the original
        else:
            votes[p.audio] += w
    if not votes:
        return fallback
    top = max(votes.values())
    leaders = sorted(lang for lang, v in votes.items() if v == top)
    return fallback if fallback in leaders else leaders[0]


def situation(title: TitleInfo, own: str) -> Situation:
    if title.language == own:
        return "native"
    return "foreign_dub" if title.dubbed else "foreign"


def role_of(pick: Pick, own: str) -> Choice:
    audio = (
        "own"
        if pick.audio == own
        else "original"
        if pick.audio == pick.title_language
        else pick.audio
    )
    subs = OFF if pick.subtitles == OFF else "own" if pick.subtitles == own else pick.subtitles
    return Choice(audio, subs)


def majorities(picks: Weighted, own: str) -> dict[Situation, tuple[Choice, int]]:
    """Per situation, the most frequent choice (ties: the one seen last among the leaders, i.e.
    the most recent for a profile's time-ordered picks) and the weight of picks behind it."""
    counts: dict[Situation, Counter[Choice]] = {s: Counter() for s in SITUATIONS}
    last: dict[Choice, int] = {}
    for i, (p, w) in enumerate(picks):
        if p.title_language is None or p.dubbed is None:
            continue
        choice = role_of(p, own)
        counts[situation(TitleInfo(p.title_language, p.dubbed), own)][choice] += w
        last[choice] = i
    out: dict[Situation, tuple[Choice, int]] = {}
    for s, c in counts.items():
        if c:
            top = max(c.values())
            best = max((ch for ch, n in c.items() if n == top), key=lambda ch: last[ch])
            out[s] = (best, sum(c.values()))
    return out


@dataclass(frozen=True)
class Defaults:
    """A profile's (or a region's) defaults: its language and a choice per situation, with
    where each came from (``profile`` or ``region``) and the picks behind it."""

    language: str
    choices: dict[Situation, Choice]
    sources: dict[Situation, str]
    support: dict[Situation, int]

    def as_dict(self) -> dict[str, Any]:
        return {
            "language": self.language,
            **{
                s: {
                    **self.choices[s].as_dict(),
                    "source": self.sources[s],
                    "picks": self.support[s],
                }
                for s in SITUATIONS
            },
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Defaults:
        return cls(
            str(d["language"]),
            {s: Choice.from_dict(d[s]) for s in SITUATIONS},
            {s: str(d[s].get("source", "region")) for s in SITUATIONS},
            {s: int(d[s].get("picks", 0)) for s in SITUATIONS},
        )


def region_defaults(picks: Weighted, main_language: str | None = None) -> Defaults:
    """The region's defaults from all of its (pick, count) pairs (``main_language``: if the
    caller knows the region's language better than the picks' vote)."""
    ps = list(picks)
    own = main_language or language_of(ps) or "en"
    found = majorities(ps, own)
    return Defaults(
        own,
        {s: found[s][0] if s in found else FALLBACK[s] for s in SITUATIONS},
        {s: "region" if s in found else "fallback" for s in SITUATIONS},
        {s: found[s][1] if s in found else 0 for s in SITUATIONS},
    )


def profile_defaults(picks: Iterable[Pick], region: Defaults) -> Defaults:
    """A profile's defaults: its own majorities where it has picks, the region's elsewhere."""
    ps = [(p, 1) for p in picks]
    own = language_of(ps, region.language) or region.language
    found = majorities(ps, own)
    return Defaults(
        own,
        {s: found[s][0] if s in found else region.choices[s] for s in SITUATIONS},
        {s: "profile" if s in found else "region" for s in SITUATIONS},
        {s: found[s][1] if s in found else 0 for s in SITUATIONS},
    )


def resolve(defaults: Defaults, title: TitleInfo | None) -> tuple[str, str]:
    """The audio and subtitle language to start ``title`` with (``off`` for no subtitles).
    A title the catalogue does not know plays in the profile's language."""
    own = defaults.language
    if title is None:
        c = defaults.choices["native"]
        return own, OFF if c.subtitles == OFF else own if c.subtitles == "own" else c.subtitles
    c = defaults.choices[situation(title, own)]
    if c.audio == "own":
        # a dub only exists for dubbed titles; otherwise the original is what there is
        audio = own if (title.dubbed or title.language == own) else title.language
    elif c.audio == "original":
        audio = title.language
    else:
        audio = c.audio
    subs = OFF if c.subtitles == OFF else own if c.subtitles == "own" else c.subtitles
    return audio, subs
