"""The delivery_prefs function's one domain call: playback events in, each member's audio and
subtitle defaults (per profile, per situation) and each region's defaults out, in the ``recs``
table next to the recommendations.

Layout (``recs`` table):
- ``member#<account id>`` / ``delivery``: per profile its recent picks (session hash, time,
  title, audio, subtitles; the newest 50) and its derived defaults; ``region``; TTL.
- ``region#<R>`` / ``delivery#counts#<shard>``: counts of (title language, dubbed, audio,
  subtitles) over the region's playback starts from one Kinesis shard, and ``seq``, the highest
  sequence number applied (single writer per shard: a replayed record is skipped).
- ``region#<R>`` / ``delivery``: the region's defaults (merged over shards), re-published at
  most every ``refresh_s`` seconds; what a new member gets.

Idempotence: a member's pick is keyed by its session and overwritten only by a later selection
(a heartbeat that reports a language switch), so replays and re-sends change nothing; region
counts use the shard watermark. The account id is the service's own opaque member token (no
email, IP, card or device id is stored here).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from streamsense.delivery.catalogue import TitleCatalogue
from streamsense.delivery.model import (
    FALLBACK,
    PICKS_KEPT,
    SITUATIONS,
    Defaults,
    Pick,
    profile_defaults,
    region_defaults,
)
from streamsense.events import Event, PlaybackHeartbeat, PlaybackStart
from streamsense.observability import count
from streamsense.pipeline import BatchResult, Parsed
from streamsense.storage import Item, Key, Table

MEMBER_SK = "delivery"
REGION_SK = "delivery"
COUNTS_SK = "delivery#counts#"
MEMBER_TTL = timedelta(days=180)
REGION_TTL = timedelta(days=90)
DELIVERY_TYPES = frozenset({"playback_start", "playback_heartbeat"})


def member_key(account_id: str) -> Key:
    return (f"member#{account_id}", MEMBER_SK)


def region_key(region: str) -> Key:
    return (f"region#{region}", REGION_SK)


def counts_key(region: str, shard: str) -> Key:
    return (f"region#{region}", f"{COUNTS_SK}{shard}")


def _session_hash(session_id: str) -> str:
    return hashlib.blake2b(session_id.encode(), digest_size=6).hexdigest()


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def fallback_defaults(language: str = "en") -> Defaults:
    return Defaults(
        language,
        dict(FALLBACK),
        dict.fromkeys(SITUATIONS, "fallback"),
        dict.fromkeys(SITUATIONS, 0),
    )


@dataclass(frozen=True)
class Selection:
    """A member's audio/subtitle selection: at playback start, or a switch mid-session (a
    heartbeat carrying the new languages)."""

    account: str
    profile: str
    session: str
    region: str
    title: str
    at_ms: int
    audio: str | None
    subtitles: str | None
    is_start: bool
    shard: str
    sequence: int


def selections(events: Iterable[tuple[Event, Mapping[str, Any]]]) -> list[Selection]:
    out = []
    for e, source in events:
        audio: str | None
        subs: str | None
        if isinstance(e, PlaybackStart):
            p = e.payload
            audio, subs, start = p.audio_language, p.subtitle_language, True
        elif isinstance(e, PlaybackHeartbeat) and (
            e.payload.audio_language is not None or e.payload.subtitle_language is not None
        ):
            p2 = e.payload
            audio, subs, start = p2.audio_language, p2.subtitle_language, False
        else:
            continue
        pl = e.payload
        out.append(
            Selection(
                e.account_id,
                pl.profile_id,
                pl.session_id,
                pl.network.country,
                pl.title_id,
                int(e.occurred_at.timestamp() * 1000),
                audio,
                subs,
                start,
                str(source.get("shard", "")),
                int(source.get("sequence_number", 0)),
            )
        )
    return out


def _count_key(catalogue: TitleCatalogue, title: str, audio: str, subs: str) -> str:
    info = catalogue.get(title)
    if info is None:
        return f"?|?|{audio}|{subs}"
    return f"{info.language}|{int(info.dubbed)}|{audio}|{subs}"


def _pick_from_count_key(key: str) -> Pick:
    lang, dub, audio, subs = key.split("|")
    return Pick(None if lang == "?" else lang, None if dub == "?" else dub == "1", audio, subs)


def region_doc(region: str, counts: Mapping[str, int], now: datetime) -> dict[str, Any]:
    weighted = [(_pick_from_count_key(k), n) for k, n in sorted(counts.items())]
    d = region_defaults(weighted)
    return {
        "region": region,
        "defaults": d.as_dict(),
        "picks": sum(counts.values()),
        "generated_at": _iso(now),
    }


def profile_picks(stored: Sequence[Sequence[Any]], catalogue: TitleCatalogue) -> list[Pick]:
    picks = []
    for _h, _at, title, audio, subs in stored:
        info = catalogue.get(str(title))
        picks.append(
            Pick(
                info.language if info else None,
                info.dubbed if info else None,
                str(audio),
                str(subs),
            )
        )
    return picks


@dataclass
class DeliveryReport:
    selections: int = 0
    members_written: int = 0
    regions_published: int = 0
    replayed: int = 0
    regions: set[str] = field(default_factory=set)


class DeliveryPrefs:
    def __init__(
        self,
        table: Table,
        catalogue: TitleCatalogue | None = None,
        *,
        refresh_s: float = 300.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.table = table
        self.catalogue = catalogue or TitleCatalogue.empty()
        self.refresh_s = refresh_s
        self.clock = clock

    def apply(self, records: Sequence[Parsed[Event]]) -> BatchResult:
        report = self.update(selections((p.value, p.source) for p in records))
        count("DeliverySelections", report.selections)
        count("DeliveryMembersWritten", report.members_written)
        count("DeliveryRegionsPublished", report.regions_published)
        count("DeliveryReplaysSkipped", report.replayed)
        return BatchResult()

    def update(self, sels: Sequence[Selection]) -> DeliveryReport:
        now = self.clock()
        report = DeliveryReport(selections=len(sels))
        if not sels:
            return report
        accounts = sorted({s.account for s in sels})
        regions = sorted({s.region for s in sels})
        found = self.table.get_many(
            [member_key(a) for a in accounts]
            + [region_key(r) for r in regions]
            + sorted({counts_key(s.region, s.shard) for s in sels if s.is_start})
        )

        # 1. region counts (playback starts only: a switch is the same member again)
        by_counts: dict[Key, list[Selection]] = defaultdict(list)
        for s in sels:
            if s.is_start and s.audio and s.subtitles:
                by_counts[counts_key(s.region, s.shard)].append(s)
        count_items: list[Item] = []
        region_expires = int((now + REGION_TTL).timestamp())
        for key, group in by_counts.items():
            old = found.get(key)
            watermark = int(old["seq"]) if old else -1
            fresh = [s for s in group if s.sequence > watermark]
            report.replayed += len(group) - len(fresh)
            if not fresh:
                continue
            counts: dict[str, int] = dict(old["counts"]) if old else {}
            for s in fresh:
                k = _count_key(self.catalogue, s.title, s.audio or "", s.subtitles or "")
                counts[k] = counts.get(k, 0) + 1
            count_items.append(
                {
                    "pk": key[0],
                    "sk": key[1],
                    "counts": counts,
                    "seq": str(max(watermark, *(s.sequence for s in fresh))),
                    "expires_at": region_expires,
                }
            )
        self.table.put_many(count_items)

        # 2. region defaults, re-published when stale or when a new shard contributed: the
        # doc lists the shards whose counts it merged, so a refresh is one BatchGetItem
        written_shards: dict[str, set[str]] = defaultdict(set)
        for key in by_counts:
            written_shards[key[0].removeprefix("region#")].add(key[1].removeprefix(COUNTS_SK))
        stale: dict[str, set[str] | None] = {}
        for r in regions:
            doc = found.get(region_key(r))
            if doc is None:
                stale[r] = None  # never published: find its shards with a Query
                continue
            age = now - datetime.fromisoformat(doc["generated_at"].replace("Z", "+00:00"))
            known = set(doc.get("shards") or [])
            if age.total_seconds() >= self.refresh_s or not written_shards[r] <= known:
                stale[r] = known | written_shards[r]
        by_region: dict[str, list[Item]] = defaultdict(list)
        wanted = [
            counts_key(r, sh) for r, shards in stale.items() if shards for sh in sorted(shards)
        ]
        for (pk, _), item in self.table.get_many(wanted).items():
            by_region[pk.removeprefix("region#")].append(item)
        for r, shards in stale.items():
            if shards is None:
                by_region[r] = self.table.query(f"region#{r}", COUNTS_SK)
        region_defs: dict[str, Defaults] = {}
        docs: list[Item] = []
        for r in regions:
            doc = found.get(region_key(r))
            if r in stale and by_region.get(r):
                merged: dict[str, int] = defaultdict(int)
                for item in by_region[r]:
                    for k, n in item["counts"].items():
                        merged[k] += int(n)
                merged_shards = sorted(item["sk"].removeprefix(COUNTS_SK) for item in by_region[r])
                doc = region_doc(r, merged, now) | {"shards": merged_shards}
                docs.append(
                    {"pk": region_key(r)[0], "sk": REGION_SK, **doc, "expires_at": region_expires}
                )
            region_defs[r] = Defaults.from_dict(doc["defaults"]) if doc else fallback_defaults()
        self.table.put_many(docs)
        report.regions_published = len(docs)
        report.regions = set(regions)

        # 3. members: merge selections into the picks, re-derive the touched profiles
        by_account: dict[str, list[Selection]] = defaultdict(list)
        for s in sels:
            by_account[s.account].append(s)
        member_items: list[Item] = []
        member_expires = int((now + MEMBER_TTL).timestamp())
        for account in accounts:
            old = found.get(member_key(account)) or {}
            profiles: dict[str, Any] = {k: dict(v) for k, v in (old.get("profiles") or {}).items()}
            changed = False
            region = str(old.get("region") or by_account[account][-1].region)
            for s in sorted(by_account[account], key=lambda s: (s.at_ms, s.sequence)):
                prof = profiles.setdefault(s.profile, {"picks": []})
                picks: list[list[Any]] = [list(p) for p in prof["picks"]]
                h = _session_hash(s.session)
                at = next((i for i, p in enumerate(picks) if p[0] == h), None)
                if at is None:
                    if s.audio is None or s.subtitles is None:
                        continue  # a partial switch for a session whose start we have not seen
                    if len(picks) >= PICKS_KEPT and s.at_ms < min(int(p[1]) for p in picks):
                        continue  # older than everything kept: a late replay of a dropped pick
                    picks.append([h, s.at_ms, s.title, s.audio, s.subtitles])
                elif s.at_ms > int(picks[at][1]):
                    prev = picks[at]
                    picks[at] = [h, s.at_ms, s.title, s.audio or prev[3], s.subtitles or prev[4]]
                else:
                    continue
                picks.sort(key=lambda p: (int(p[1]), str(p[0])))
                prof["picks"] = picks[-PICKS_KEPT:]
                prof["touched"] = True
                changed = True
                if s.is_start:
                    region = s.region
            if not changed:
                continue
            for pid, prof in profiles.items():
                if prof.pop("touched", False):
                    defaults = profile_defaults(
                        profile_picks(prof["picks"], self.catalogue),
                        region_defs.get(region) or fallback_defaults(),
                    )
                    prof["defaults"] = defaults.as_dict()
                    profiles[pid] = prof
            member_items.append(
                {
                    "pk": member_key(account)[0],
                    "sk": MEMBER_SK,
                    "region": region,
                    "profiles": profiles,
                    "updated_at": _iso(now),
                    "expires_at": member_expires,
                }
            )
        self.table.put_many(member_items)
        report.members_written = len(member_items)
        return report


def defaults_for(
    member: Mapping[str, Any] | None, profile: str, region: Mapping[str, Any] | None
) -> Defaults:
    """What a player starting a title for ``profile`` uses: the profile's own defaults, else
    its region's (a new member or profile), else the built-in fallback."""
    if member:
        prof = (member.get("profiles") or {}).get(profile)
        if prof and "defaults" in prof:
            return Defaults.from_dict(prof["defaults"])
    if region and "defaults" in region:
        return Defaults.from_dict(region["defaults"])
    return fallback_defaults()
