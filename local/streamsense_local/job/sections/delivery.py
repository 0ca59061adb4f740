"""Personalized delivery: how often the audio/subtitle default delivery_prefs serves is what the
member then picks, on the replayed traffic, next to simple baselines.

What comes from the function: every member's record (``member#<account>`` / ``delivery`` in the
``recs`` table: per profile its stored picks, each with time, title, audio and subtitles, and its
current defaults), the region records, and the catalogue it read (the newest
``catalogue/<date>.csv`` in the exports bucket).

The table keeps only each member's *current* defaults, while the score needs the default that was
served *before* each play. So the section replays the stored picks in time order through the
function's own model (``streamsense.delivery.model``: ``profile_defaults`` over the profile's
earlier picks, the region's defaults from the region's earlier picks, re-derived at most every 5
minutes as the function re-publishes them, and ``resolve`` for the title) and scores each play
against what the member picked. That the replay is the function's own derivation is checked:
the defaults re-derived from all of a profile's stored picks must equal the defaults the function
stored, for every situation the profile has picks in (the ``verified`` figures).

Baselines on the same time-ordered plays (the benchmark's, ``streamsense_bench.abr_delivery``):
the region's most frequent (audio, subtitles) pair, the profile's last pick, the profile's most
frequent pair, each falling back to the region's pair for a profile never seen. MovieLens members
are left out of the score: their languages are assigned by the job, not chosen (they are counted).
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from streamsense.delivery.catalogue import CATALOGUE_PREFIX, BadCatalogue, TitleCatalogue
from streamsense.delivery.model import (
    PICKS_KEPT,
    SITUATIONS,
    Defaults,
    profile_defaults,
    resolve,
    situation,
)
from streamsense.delivery.service import _count_key, fallback_defaults, profile_picks, region_doc
from streamsense_bench.abr_delivery import Baselines, Scores

from streamsense_local.job.sections import JobContext, Section, Table

if TYPE_CHECKING:
    from streamsense_sim import Simulator

    from streamsense_local.stack import LocalStack

#: The function re-publishes a region's defaults at most this often (DeliveryPrefs.refresh_s).
REGION_REFRESH_MS = 300_000
PRODUCT = "streamsense (situation defaults)"
REGION_ONLY = "streamsense region defaults only"


def catalogue_export(sim: Simulator) -> tuple[str, bytes]:
    """The simulator's title catalogue as the service's catalogue export: the key under the
    exports bucket (``catalogue/<start date>.csv``) and the CSV body (title_id,language,dubbed)."""
    cat = sim.catalogue
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["title_id", "language", "dubbed"])
    for tid, lang, dubbed in zip(cat.title_ids, cat.language, cat.dubbed.tolist(), strict=True):
        writer.writerow([tid, lang, 1 if dubbed else 0])
    return f"{CATALOGUE_PREFIX}{sim.config.start.isoformat()}.csv", out.getvalue().encode()


@dataclass(frozen=True)
class Play:
    at_ms: int
    account: str
    profile: str
    region: str
    title: str
    pick: tuple[str, str]  # (audio, subtitles) as the member played it
    position: int  # index in the profile's stored picks
    scored: bool  # False: it only feeds the region's defaults (a MovieLens member's play)


@dataclass
class _Region:
    """A region's picks so far (the function's count keys) and the defaults derived from them."""

    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    defaults: Defaults | None = None
    derived_at: int | None = None
    changed: bool = False

    def current(self, region: str, now_ms: int) -> Defaults:
        due = self.derived_at is None or now_ms - self.derived_at >= REGION_REFRESH_MS
        if self.counts and self.changed and due:
            doc = region_doc(region, self.counts, datetime.fromtimestamp(now_ms / 1000, UTC))
            self.defaults = Defaults.from_dict(doc["defaults"])
            self.derived_at, self.changed = now_ms, False
        return self.defaults or fallback_defaults()


def scan_items(stack: LocalStack, table: str, filter_expression: str, values: dict[str, str]) -> list[dict[str, Any]]:
    """A filtered scan (the recs table also holds every member's recommendations)."""
    from boto3.dynamodb.types import TypeDeserializer
    from streamsense.storage import from_dynamo_value

    client = stack.client("dynamodb")
    de = TypeDeserializer()
    kwargs: dict[str, Any] = {
        "TableName": stack.physical("table", table),
        "FilterExpression": filter_expression,
        "ExpressionAttributeValues": {k: {"S": v} for k, v in values.items()},
    }
    items: list[dict[str, Any]] = []
    while True:
        resp = client.scan(**kwargs)
        items.extend({k: from_dynamo_value(de.deserialize(v)) for k, v in raw.items()} for raw in resp.get("Items", []))
        if not resp.get("LastEvaluatedKey"):
            return sorted(items, key=lambda i: (str(i["pk"]), str(i["sk"])))
        kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]


def load_catalogue(stack: LocalStack) -> tuple[TitleCatalogue, str | None]:
    """The catalogue delivery_prefs reads: the newest key under catalogue/ in the exports bucket
    (empty when there is none or it cannot be read, as the function then has none either)."""
    if not any(b.name == "exports" for b in stack.system.buckets):
        return TitleCatalogue.empty(), None
    keys = sorted(k for k in stack.objects("exports") if k.startswith(CATALOGUE_PREFIX))
    if not keys:
        return TitleCatalogue.empty(), None
    try:
        return TitleCatalogue.from_csv(stack.get_object("exports", keys[-1])), keys[-1]
    except BadCatalogue:
        return TitleCatalogue.empty(), keys[-1]


def _plays(members: list[dict[str, Any]], excluded: set[str]) -> tuple[list[Play], int, int]:
    """Every stored pick in time order; (plays, picks of excluded members (in the list, they fed
    the function's region defaults, but not scored), scored profiles at the stored-picks cap)."""
    plays: list[Play] = []
    skipped = 0
    capped = 0
    for m in members:
        account = str(m["pk"]).removeprefix("member#")
        for pid, prof in sorted((m.get("profiles") or {}).items()):
            picks = prof.get("picks") or []
            if account in excluded:
                skipped += len(picks)
            else:
                capped += len(picks) >= PICKS_KEPT
            for i, (_h, at, title, audio, subs) in enumerate(picks):
                plays.append(Play(int(at), account, pid, str(m.get("region") or ""), str(title), (str(audio), str(subs)), i, account not in excluded))
    plays.sort(key=lambda p: (p.at_ms, p.account, p.profile, p.position))
    return plays, skipped, capped


def _verify(
    members: list[dict[str, Any]], regions: dict[str, Defaults], catalogue: TitleCatalogue, excluded: set[str]
) -> tuple[int, int]:
    """(situations checked, equal): the defaults re-derived from each profile's stored picks vs
    the ones the function stored, wherever the profile's own picks decide them (the region's
    stored defaults only break language ties there)."""
    checked = equal = 0
    for m in members:
        if str(m["pk"]).removeprefix("member#") in excluded:
            continue
        region = regions.get(str(m.get("region") or "")) or fallback_defaults()
        for prof in (m.get("profiles") or {}).values():
            if "defaults" not in prof:
                continue
            stored = Defaults.from_dict(prof["defaults"])
            again = profile_defaults(profile_picks(prof.get("picks") or [], catalogue), region)
            for s in SITUATIONS:
                if stored.sources[s] == "profile":
                    checked += 1
                    equal += again.choices[s] == stored.choices[s] and again.language == stored.language
    return checked, equal


def _score(plays: list[Play], catalogue: TitleCatalogue) -> tuple[dict[str, Scores], dict[str, Scores]]:
    """Prequential scores: each play against the defaults derived from what came before it."""
    methods: dict[str, Scores] = defaultdict(Scores)
    by_situation: dict[str, Scores] = defaultdict(Scores)
    regions: dict[str, _Region] = defaultdict(_Region)
    history: dict[tuple[str, str], list[list[Any]]] = defaultdict(list)
    baselines = Baselines()
    for p in plays:
        key = (p.account, p.profile)
        prior = history[key]
        warm = bool(prior)
        if p.scored:
            title = catalogue.get(p.title)
            region = regions[p.region].current(p.region, p.at_ms)
            served = profile_defaults(profile_picks(prior, catalogue), region) if warm else region
            guess = resolve(served, title)
            methods[PRODUCT].add(warm, guess, p.pick)
            methods[REGION_ONLY].add(warm, resolve(region, title), p.pick)
            for name, g in baselines.predict(f"{p.account}|{p.profile}", p.region).items():
                methods[name].add(warm, g, p.pick)
            sit = situation(title, served.language) if title else "unknown title"
            by_situation[sit].add(warm, guess, p.pick)
        # then the play lands: the function stores the pick and counts it for the region
        prior.append(["", p.at_ms, p.title, p.pick[0], p.pick[1]])
        r = regions[p.region]
        r.counts[_count_key(catalogue, p.title, p.pick[0], p.pick[1])] += 1
        r.changed = True
        baselines.learn(f"{p.account}|{p.profile}", p.region, p.pick)
    return dict(methods), dict(by_situation)


def _plot(ctx: JobContext, methods: dict[str, Scores]) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(methods)
    groups = (("all", "every play"), ("warm", "profile seen before"), ("cold", "first play of the profile"))
    fig, ax = plt.subplots(figsize=(10.5, 3.8))
    x = np.arange(len(groups))
    width = 0.8 / len(names)
    colors = ["#4c72b0", "#a6bddb", "#dd8452", "#9e9e9e", "#bdbdbd"]
    for j, name in enumerate(names):
        vals = [getattr(methods[name], g).as_dict()["both"] for g, _ in groups]
        label = name if name.startswith("streamsense") else f"{name} (baseline)"
        ax.bar(x + (j - (len(names) - 1) / 2) * width, vals, width, label=label, color=colors[j % len(colors)])
    ax.set_xticks(x)
    ax.set_xticklabels([f"{label}\n({getattr(methods[PRODUCT], g).n:,} plays)" for g, label in groups], fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("default = what the member picked\n(audio and subtitles)", fontsize=8)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    ax.set_title("Delivery defaults on the replayed traffic (delivery_prefs records, replayed in time order)", fontsize=10)
    fig.tight_layout()
    path = ctx.plot_path("delivery_defaults")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def collect(ctx: JobContext) -> Section | None:
    members = scan_items(ctx.stack, "recs", "begins_with(pk, :m) AND sk = :d", {":m": "member#", ":d": "delivery"})
    regions = scan_items(ctx.stack, "recs", "begins_with(pk, :r) AND sk = :d", {":r": "region#", ":d": "delivery"})
    if not members:
        return None
    section = Section("Delivery defaults (delivery_prefs)")
    catalogue, key = load_catalogue(ctx.stack)
    excluded = set((ctx.truth.get("movielens") or {}).get("new_plays") or {})
    plays, skipped, capped = _plays(members, excluded)
    methods, by_situation = _score(plays, catalogue)
    scored = [p for p in plays if p.scored]
    region_defaults = {str(r["pk"]).removeprefix("region#"): Defaults.from_dict(r["defaults"]) for r in regions if "defaults" in r}
    checked, equal = _verify(members, region_defaults, catalogue, excluded)
    product = methods[PRODUCT].as_dict() if PRODUCT in methods else None
    scored_members = sum(1 for m in members if str(m["pk"]).removeprefix("member#") not in excluded)
    section.headline = {
        "members": scored_members,
        "profiles": len({(p.account, p.profile) for p in scored}),
        "regions": len(regions),
        "plays_scored": len(scored),
        "plays_left_out_movielens": skipped,
        "catalogue_titles": len(catalogue),
    }
    if product is not None:
        section.headline.update(
            {
                "default_right_both": round(product["all"]["both"], 4),
                "default_right_audio": round(product["all"]["audio"], 4),
                "default_right_subtitles": round(product["all"]["subtitles"], 4),
                "default_right_warm": round(product["warm"]["both"], 4),
                "default_right_cold": round(product["cold"]["both"], 4),
                "plays_warm": product["warm"]["n"],
                "plays_cold": product["cold"]["n"],
            }
        )
        section.headline["default_right_region_defaults_only"] = round(methods[REGION_ONLY].all.as_dict()["both"], 4)
        for name, s in methods.items():
            if name not in (PRODUCT, REGION_ONLY):
                section.headline[f"baseline_{name}_both"] = round(s.all.as_dict()["both"], 4)
    section.headline["defaults_verified"] = f"{equal}/{checked}"
    rows = []
    for name, s in methods.items():
        d = s.as_dict()
        label = name if name.startswith("streamsense") else f"{name} (baseline)"
        rows.append([label, round(d["all"]["both"], 4), round(d["all"]["audio"], 4), round(d["all"]["subtitles"], 4),
                     round(d["warm"]["both"], 4), round(d["cold"]["both"], 4)])
    section.tables.append(
        Table(
            f"default = the member's pick, share of {len(scored):,} plays ({product['warm']['n'] if product else 0:,} by "
            f"profiles seen before, {product['cold']['n'] if product else 0:,} first plays)",
            ["defaults", "both right", "audio", "subtitles", "both (warm)", "both (cold)"],
            rows,
        )
    )
    section.tables.append(
        Table(
            "product by situation (the profile's language vs the title's)",
            ["situation", "plays", "both right", "audio", "subtitles"],
            [[sit, s.all.n, round(s.all.as_dict()["both"], 4), round(s.all.as_dict()["audio"], 4),
              round(s.all.as_dict()["subtitles"], 4)] for sit, s in sorted(by_situation.items())],
        )
    )
    if product is not None:
        section.plots.append(_plot(ctx, methods))
    section.notes.append(
        "The table holds each member's current defaults only; the default served before each play is re-derived "
        "by replaying the stored picks in time order through the function's own model (profile picks so far; the "
        "region's defaults from the region's earlier picks, re-derived at most every 5 min as the function "
        f"re-publishes them). Check: the re-derived defaults equal the stored ones in {equal} of {checked} "
        "profile situations."
    )
    if key is None:
        section.notes.append("No catalogue under catalogue/ in the exports bucket: delivery_prefs served language-only defaults (every title unknown).")
    else:
        section.notes.append(f"Title languages and dubs: s3://exports/{key} ({len(catalogue):,} titles, {catalogue.rejected_rows} rows rejected).")
    if excluded:
        section.notes.append(
            f"{skipped:,} picks of MovieLens members left out of the score: the job gives each a fixed language "
            "and no subtitles, so they are not choices (they still feed the region defaults, as in the function)."
        )
    if capped:
        section.notes.append(
            f"{capped} profiles hold the 50 picks the function keeps: their earliest kept picks are scored with "
            "less history than the function had when they were served."
        )
    section.notes.append(
        "A pick's region is the member's stored region (the latest playback start's); plays while travelling "
        "are scored against the home region's defaults. The simulator's members follow a deterministic rule of "
        "the model's structure (own language unless purist and a dub exists; subtitles by habit or when the "
        "audio is foreign), so real members will be noisier."
    )
    return section
