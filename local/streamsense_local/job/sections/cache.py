"""Predictive caching: the fill hints cache_hints published for each edge site and fill window,
scored against the plays that actually happened in that window in the site's region, next to
libCacheSim's policies on the same per-site request sequence at the same capacity.

What comes from the functions: every hint (ordered titles, bytes, kept flag), read from the
``cache`` table through the read API (``streamsense.caching.store.hints_for``), checked against
the JSON document cache_hints wrote to the ``hints`` bucket for the same site and window
(``dropped`` titles and the fill budget come from there); the sites and title sizes are the
``site`` and ``title`` items the function read.

What the section adds, labelled as such (benchmarks.md section 3b's accounting, and the
benchmark's own libCacheSim drivers from ``streamsense_bench.cache_sim``):
- the truth: every valid ``playback_start`` the job replayed (one play per session, in the window
  of its event time, in the region of ``payload.network.country``), kept by ``setup`` in
  ``ctx.truth["cache"]``;
- "hints + reactive LRU": what a site running the hints would serve, the hinted titles plus
  an LRU (libCacheSim) on the bytes the hints leave free (``capacity - fill_budget``), fed the
  requests the hinted titles miss: the benchmark's product row;
- LRU, LFU, ARC, S3-FIFO, WTinyLFU (1% and 10% window), LRB and Belady (oracleGeneral trace,
  next access = 1-based index of the site's next request for the title) per site, at the
  site's capacity, over the site's whole request sequence: the requests before the first hinted
  window warm them up (cache_hints saw the same plays as history), the rest are scored.

``setup`` is the operators' part, called by the job before the replay: an edge site
(``edge-<region>``) per region with at least ``MIN_SITE_SHARE`` of the replay's plays, each
holding ``CAPACITY_SHARE`` of the bytes of the distinct titles played in those regions (as
benchmark 3b sizes its sites), and the catalogue's title sizes and launch calendar in the
``title`` items. Plays in regions without a site are not scored.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from streamsense.caching.hints import HintEntry, Site
from streamsense.caching.store import (
    DEFAULT_WINDOW_S,
    TitleInfo,
    hints_for,
    hints_object_key,
    hints_pk,
    load_sites,
    load_titles,
    parse_window_id,
    site_item,
    title_item,
)
from streamsense.events import BadEvent, PlaybackStart, parse_event
from streamsense.storage import DynamoTable, MemoryTable

from streamsense_local.job.sections import JobContext, Section, Table

if TYPE_CHECKING:
    from streamsense_local.stack import LocalStack

#: Each site holds this share of the bytes of the distinct titles the replay plays (benchmark
#: 3b's middle capacity, "5pct", sized the same way), so the two figures sit side by side.
CAPACITY_SHARE = 0.05
#: An edge site in each region with at least this share of the replay's plays (operators put
#: appliances where the traffic is; each site costs cache_hints a plan and two writes per window).
MIN_SITE_SHARE = 0.01
BENCH_CAPACITY = "5pct"
#: A title object is every rendition of the service's encoding ladder for its runtime (the
#: ladder qoe_hints' startup hints choose from): kbps.
LADDER_KBPS = (300, 750, 1200, 1850, 2850, 4300)
MB = 1_000_000  # libCacheSim counts in MB (streamsense_bench.cache_sim.SIZE_UNIT); sizes are whole MB
HINTS = "cache hints"
HINTS_LRU = "cache hints + reactive LRU"
BENCH_RESULT = Path(__file__).resolve().parents[4] / "bench-results" / "cache.json"

Play = tuple[float, str, str]  # (event time, unix s; region; title id)


def site_id(region: str) -> str:
    return f"edge-{region.lower()}"


# ---- the operators' part, before the replay -----------------------------------------------------


def plays_of(streams: Iterable[Iterable[tuple[float, bytes, str]]]) -> tuple[list[Play], dict[str, int]]:
    """Every play the job replays, as cache_hints counts one: a valid ``playback_start``, once
    per session (a producer re-send is the same play), at its event time, in its edge's region.
    Returns the plays in time order and how many starts were invalid or re-sent."""
    seen: set[str] = set()
    plays: list[Play] = []
    skipped: Counter[str] = Counter()
    for stream in streams:
        for _, raw, _ in stream:
            if b"playback_start" not in raw:
                continue
            try:
                event = parse_event(raw)
            except BadEvent:
                skipped["invalid"] += 1
                continue
            if not isinstance(event, PlaybackStart):
                continue
            p = event.payload
            if p.session_id in seen:
                skipped["resent"] += 1
                continue
            seen.add(p.session_id)
            plays.append((event.occurred_at.timestamp(), p.network.country, p.title_id))
    plays.sort()
    return plays, {"invalid": skipped["invalid"], "resent": skipped["resent"]}


def title_bytes(duration_s: float) -> int:
    """Whole MB (libCacheSim's unit) of every ladder rendition of a title this long."""
    return math.ceil(duration_s * sum(LADDER_KBPS) * 1000 / 8 / MB) * MB


def title_infos(catalogue: Any) -> list[TitleInfo]:
    """The simulator's catalogue (``streamsense_sim.catalogue.Catalogue``) as the catalogue sync
    writes it: size per title, and the release time of the titles on the launch calendar (the
    new releases: the service knows when they launch, not how popular they will be)."""
    out = []
    for i, tid in enumerate(catalogue.title_ids):
        release = None
        if float(catalogue.boost[i]) > 0:
            release = datetime.fromtimestamp(int(catalogue.release_ms[i]) / 1000, UTC)
        out.append(TitleInfo(str(tid), title_bytes(float(catalogue.duration_s[i])), release))
    return out


def site_capacity(plays: Sequence[Play], sizes: Mapping[str, int], default_bytes: int) -> int:
    """CAPACITY_SHARE of the bytes of the distinct titles played, in whole MB."""
    total = sum(sizes.get(t, default_bytes) for t in {p[2] for p in plays})
    return int(CAPACITY_SHARE * total) // MB * MB


def _default_bytes() -> int:
    from streamsense.caching.service import HintsConfig

    return HintsConfig().default_title_bytes


def _reactive_share() -> float:
    from streamsense.caching.service import HintsConfig

    return HintsConfig().reactive_share


def setup(stack: LocalStack, catalogue: Any | None, streams: Iterable[Iterable[tuple[float, bytes, str]]]) -> dict[str, Any]:
    """Write the site table (one site per region the replay plays in) and the title table (the
    catalogue's sizes and launch calendar) that cache_hints reads, before the replay; return
    the truth the section scores against (``ctx.truth["cache"]``)."""
    plays, skipped = plays_of(streams)
    titles = title_infos(catalogue) if catalogue is not None else []
    default = _default_bytes()
    per_region = Counter(p[1] for p in plays)
    regions = sorted(r for r, n in per_region.items() if n >= MIN_SITE_SHARE * len(plays))
    sited = [p for p in plays if p[1] in set(regions)]
    capacity = site_capacity(sited, {t.title_id: t.bytes for t in titles}, default)
    sites = [Site(site_id(r), r, capacity) for r in regions]
    if any(t.name == "cache" for t in stack.system.tables):
        table = DynamoTable(stack.physical("table", "cache"), client=stack.client("dynamodb"))
        table.put_many([site_item(s) for s in sites] + [title_item(t) for t in titles])
    return {
        "plays": plays,
        "skipped_starts": skipped,
        "capacity_share": CAPACITY_SHARE,
        "min_site_share": MIN_SITE_SHARE,
        "regions": len(per_region),
        "sites": [s.site_id for s in sites],
        "catalogue_titles": len(titles),
        "calendar_titles": sum(t.release_at is not None for t in titles),
    }


# ---- what cache_hints wrote ----------------------------------------------------------------


@dataclass
class Published:
    site: Site
    window: str
    start: float
    end: float
    entries: list[HintEntry]
    budget: int  # the fill budget (capacity minus the share left to the site's reactive cache)
    dropped: int | None  # titles held last window and not any more (S3 document)
    s3: str  # "agrees", "differs" or "missing"


def _hint_items(stack: LocalStack, sites: Sequence[Site]) -> MemoryTable:
    """Every page of every site's hints, in one query per site, into an in-memory table the
    read API (``hints_for``) is then called on."""
    table = DynamoTable(stack.physical("table", "cache"), client=stack.client("dynamodb"))
    mem = MemoryTable("cache-hints")
    for site in sites:
        mem.put_many(table.query(hints_pk(site.site_id)))
    return mem


def _documents(stack: LocalStack, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
    def get(key: str) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(stack.get_object("hints", key))
        return doc

    with ThreadPoolExecutor(max_workers=4) as pool:  # moto's server is threaded
        return dict(zip(keys, pool.map(get, keys), strict=True))


def published(
    stack: LocalStack, sites: Sequence[Site], windows: set[str] | None = None, mem: MemoryTable | None = None
) -> tuple[list[Published], int]:
    """The hints of every site and window (only ``windows`` if given), with their S3 check;
    also returns how many (site, window) hints exist in all. ``mem``: the hint items, if
    already read (``_hint_items``)."""
    mem = mem if mem is not None else _hint_items(stack, sites)
    found = sorted({(str(i["pk"]).removeprefix("hints#"), str(i["window"])) for i in mem.items.values()})
    wanted = [(s, w) for s, w in found if windows is None or w in windows]
    objects = stack.objects("hints") if any(b.name == "hints" for b in stack.system.buckets) else {}
    keys = [hints_object_key(s, w) for s, w in wanted if hints_object_key(s, w) in objects]
    docs = _documents(stack, keys)
    by_id = {s.site_id: s for s in sites}
    out = []
    for sid, wid in wanted:
        site = by_id[sid]
        entries = hints_for(mem, sid, wid)
        doc = docs.get(hints_object_key(sid, wid))
        start = parse_window_id(wid).timestamp()
        if doc is None:
            out.append(Published(site, wid, start, start + DEFAULT_WINDOW_S, entries, site.capacity_bytes, None, "missing"))
            continue
        same = [(e["title_id"], int(e["bytes"]), bool(e["kept"])) for e in doc["entries"]] == [(e.title_id, e.bytes, e.kept) for e in entries]
        out.append(
            Published(
                site, wid, start, parse_window_id(str(doc["window_end"])).timestamp(), entries,
                int(doc.get("fill_budget_bytes", site.capacity_bytes)), len(doc.get("dropped", [])), "agrees" if same else "differs",
            )
        )
    return out, len(found)


# ---- scoring ---------------------------------------------------------------------------------


@dataclass
class Tally:
    """Counts of one method over some requests (benchmarks.md 3b's accounting)."""

    hits: int = 0
    requests: int = 0
    hit_bytes: int = 0
    request_bytes: int = 0
    filled: int = 0  # bytes brought into the cache
    prefilled: int = 0  # of which filled at a window boundary (the hints)
    useful: int = 0  # prefilled bytes of titles requested in their window
    dropped: int = 0  # titles the hints stopped holding

    def add(self, other: Tally) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def ratio(self) -> float | None:
        return round(self.hits / self.requests, 4) if self.requests else None

    def byte_ratio(self) -> float | None:
        return round(self.hit_bytes / self.request_bytes, 4) if self.request_bytes else None


@dataclass
class Scores:
    windows: list[str]  # scored windows, in time order
    window_s: int
    sites: list[Site]
    per_window: dict[str, dict[str, Tally]] = field(default_factory=dict)  # method -> window -> tally
    per_site: dict[str, dict[str, Tally]] = field(default_factory=dict)  # method -> site -> tally
    unscored_requests: int = 0  # before the first hinted window: history, warm-up
    missing_hints: int = 0  # (site, scored window) pairs cache_hints published nothing for

    def total(self, method: str) -> Tally:
        t = Tally()
        for w in self.per_window.get(method, {}).values():
            t.add(w)
        return t

    def tally(self, method: str, window: str, site: str) -> tuple[Tally, Tally]:
        w = self.per_window.setdefault(method, {}).setdefault(window, Tally())
        s = self.per_site.setdefault(method, {}).setdefault(site, Tally())
        return w, s


def _count(tallies: Iterable[Tally], *, hit: bool, size: int) -> None:
    for t in tallies:
        t.requests += 1
        t.request_bytes += size
        if hit:
            t.hits += 1
            t.hit_bytes += size


def score_hints(pubs: Sequence[Published], plays: Sequence[Play], sizes: Mapping[str, int], default_bytes: int, scores: Scores) -> None:
    """The hinted titles alone, and the hinted titles plus the site's reactive LRU on the rest of
    its capacity, over each site's requests of each scored window."""
    import libcachesim as lcs

    by_region: dict[str, list[Play]] = defaultdict(list)
    for p in plays:
        by_region[p[1]].append(p)
    times = {r: np.array([p[0] for p in ps]) for r, ps in by_region.items()}
    found = {(p.site.site_id, p.window): p for p in pubs}
    lru: dict[str, Any] = {}
    ids: dict[str, int] = {}
    req = lcs.Request()
    for wid in scores.windows:
        for site in scores.sites:
            pub = found.get((site.site_id, wid))
            if pub is None:
                # No hints published for this site and window: nothing was prefilled, and its
                # requests still count (as misses of the hints) so every method has the same ones.
                start = parse_window_id(wid).timestamp()
                budget = int(site.capacity_bytes * (1 - _reactive_share()))
                pub = Published(site, wid, start, start + scores.window_s, [], budget, 0, "missing")
                scores.missing_hints += 1
            _score_site_window(pub, by_region, times, sizes, default_bytes, scores, lru, ids, req)


def _score_site_window(
    pub: Published,
    by_region: Mapping[str, list[Play]],
    times: Mapping[str, np.ndarray],
    sizes: Mapping[str, int],
    default_bytes: int,
    scores: Scores,
    lru: dict[str, Any],
    ids: dict[str, int],
    req: Any,
) -> None:
    import libcachesim as lcs

    site = pub.site
    held = {e.title_id for e in pub.entries}
    ps = by_region.get(site.region, [])
    a, b = (np.searchsorted(times[site.region], [pub.start, pub.end], side="left") if ps else (0, 0))
    window_plays = ps[int(a) : int(b)]
    requested = {p[2] for p in window_plays}
    hw, hs = scores.tally(HINTS, pub.window, site.site_id)
    lw, ls = scores.tally(HINTS_LRU, pub.window, site.site_id)
    added = [e for e in pub.entries if not e.kept]
    for t in (hw, hs, lw, ls):
        t.filled += sum(e.bytes for e in added)
        t.prefilled += sum(e.bytes for e in added)
        t.useful += sum(e.bytes for e in added if e.title_id in requested)
        t.dropped += pub.dropped or 0
    reactive = site.capacity_bytes - pub.budget
    if site.site_id not in lru:
        lru[site.site_id] = lcs.LRU(reactive // MB) if reactive >= MB else None
    cache = lru[site.site_id]
    for t_s, _, title in window_plays:
        size = sizes.get(title, default_bytes)
        hit = title in held
        _count((hw, hs), hit=hit, size=size)
        if not hit and cache is not None and size <= reactive:
            # the benchmark's reactive part: misses of the hinted titles go to the LRU (a
            # title bigger than the LRU can never be in it: a miss, not fetched into it)
            req.obj_id = ids.setdefault(title, len(ids) + 1)
            req.obj_size = size // MB
            req.clock_time = int(t_s)
            if cache.get(req):
                hit = True
            else:
                lw.filled += size
                ls.filled += size
        _count((lw, ls), hit=hit, size=size)


def repeats(plays: Sequence[Play], scores: Scores) -> dict[str, int]:
    """Per scored window, the requests for a title already requested at the same site earlier in
    the replay: what an infinite cache that fetches on demand would hit (any policy's ceiling)."""
    regions = {s.region for s in scores.sites}
    scored = set(scores.windows)
    seen: dict[str, set[str]] = defaultdict(set)
    out = dict.fromkeys(scores.windows, 0)
    for t, region, title in plays:
        if region not in regions:
            continue
        epoch = int(t)
        w = datetime.fromtimestamp(epoch - epoch % scores.window_s, UTC).strftime("%Y-%m-%dT%H:%MZ")
        if w in scored and title in seen[region]:
            out[w] += 1
        seen[region].add(title)
    return out


def _oracle_file(path: Path, plays: Sequence[Play], sizes: Mapping[str, int], default_bytes: int, t0: float) -> None:
    """One site's requests as libCacheSim's oracleGeneral trace (the benchmark's record type)."""
    from streamsense_bench.cache_sim import ORACLE_DTYPE

    titles = sorted({p[2] for p in plays})
    index = {t: i + 1 for i, t in enumerate(titles)}
    obj = np.array([index[p[2]] for p in plays], np.int64)
    n = len(obj)
    nxt = np.full(n, -1, np.int64)
    order = np.lexsort((np.arange(n), obj))
    same = obj[order][1:] == obj[order][:-1]
    nxt[order[:-1][same]] = order[1:][same] + 1  # 1-based index of the next request for it
    rec = np.zeros(n, ORACLE_DTYPE)
    rec["t"] = np.array([int(p[0] - t0) for p in plays], np.int64)
    rec["id"] = obj
    rec["sz"] = np.array([sizes.get(p[2], default_bytes) // MB for p in plays], np.int64)
    rec["nx"] = nxt
    rec.tofile(path)


def _misses(scores: Scores, method: str, window: str, site: str, n: int, range_mb: int, hits: int = 0, hit_mb: int = 0) -> None:
    for t in scores.tally(method, window, site):
        t.hits += hits
        t.requests += n
        t.hit_bytes += hit_mb * MB
        t.request_bytes += range_mb * MB
        t.filled += (range_mb - hit_mb) * MB  # every miss is fetched and admitted


def score_policies(plays: Sequence[Play], sizes: Mapping[str, int], default_bytes: int, scores: Scores) -> list[str]:
    """libCacheSim's policies (the benchmark's ``POLICIES``, in its C core) per site at the site's
    capacity, over the site's whole request sequence; only the scored windows' requests count.
    Per-window hit counts come from processing the trace window by window on the same cache."""
    import libcachesim as lcs
    from streamsense_bench.cache_sim import POLICIES

    win_of = {parse_window_id(w).timestamp(): w for w in scores.windows}
    by_region: dict[str, list[Play]] = defaultdict(list)
    for p in plays:
        by_region[p[1]].append(p)
    t0 = plays[0][0] if plays else 0.0
    first = min(win_of) if win_of else 0.0
    with tempfile.TemporaryDirectory(prefix="cache-section-") as tmp:
        for site in scores.sites:
            ps = by_region.get(site.region, [])
            if not ps or site.capacity_bytes < MB:
                continue
            path = Path(tmp) / f"{site.site_id}.oracleGeneral"
            _oracle_file(path, ps, sizes, default_bytes, t0)
            # contiguous runs of requests: (first index, count, scored window or None)
            runs: list[tuple[int, int, str | None]] = []
            for i, p in enumerate(ps):
                epoch = int(p[0])  # the function's windowing: floor of the event time
                w = win_of.get(float(epoch - epoch % scores.window_s)) if p[0] >= first else None
                if runs and runs[-1][2] == w and runs[-1][0] + runs[-1][1] == i:
                    runs[-1] = (runs[-1][0], runs[-1][1] + 1, w)
                else:
                    runs.append((i, 1, w))
            mb = np.array([sizes.get(p[2], default_bytes) // MB for p in ps], np.int64)
            scores.unscored_requests += sum(n for _, n, w in runs if w is None)
            seen: set[str] = set()
            reused = False
            for a, n, w in runs:
                for p in ps[a : a + n]:
                    reused = reused or (w is not None and p[2] in seen)
                    seen.add(p[2])
            if not reused:
                # No scored request is for a title the site saw before: every cache that fetches
                # on demand misses them all (exactly), so skip building 8 caches (~0.1 s each).
                for name in POLICIES:
                    for a, n, w in runs:
                        if w is not None:
                            _misses(scores, name, w, site.site_id, n, int(mb[a : a + n].sum()))
                continue
            for name in POLICIES:
                reader = lcs.TraceReader(str(path), lcs.TraceType.ORACLE_GENERAL_TRACE)
                cache = POLICIES[name](site.capacity_bytes // MB)
                for a, n, w in runs:
                    miss, byte_miss = cache.process_trace(reader, a, n)
                    if w is None:
                        continue
                    range_mb = int(mb[a : a + n].sum())
                    _misses(scores, name, w, site.site_id, n, range_mb, round((1 - miss) * n), round((1 - byte_miss) * range_mb))
    return list(POLICIES)


# ---- the report -------------------------------------------------------------------------------


def _gap(hr: float | None, lru: float | None, belady: float | None) -> float | None:
    if hr is None or lru is None or belady is None or belady <= lru:
        return None
    return round((hr - lru) / (belady - lru), 4)


def _bench() -> dict[str, Any] | None:
    """Benchmark 3b at the same capacity share, from its last run (bench-results/cache.json)."""
    try:
        row = json.loads(BENCH_RESULT.read_text())["sim"][BENCH_CAPACITY]
        return {"product": row["product"], "anchors": row["anchors"], "capacity_bytes": row.get("capacity_bytes")}
    except (OSError, KeyError, ValueError, TypeError):
        return None


def _method_rows(scores: Scores, methods: Sequence[str], days: float, capacity: int) -> list[list[Any]]:
    lru, belady = scores.total("LRU").ratio(), scores.total("Belady").ratio()
    rows = []
    for m in methods:
        t = scores.total(m)
        useful = round(t.useful / t.prefilled, 4) if m in (HINTS, HINTS_LRU) and t.prefilled else None
        churn = round(t.filled / capacity / days, 4) if capacity and days else None
        rows.append([m, t.requests, t.hits, t.ratio(), t.byte_ratio(), round(t.filled / 1e9, 1), useful, churn, _gap(t.ratio(), lru, belady)])
    return rows


def _plot(ctx: JobContext, scores: Scores, methods: Sequence[str], reuse: float | None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    totals = {m: scores.total(m) for m in methods}
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1.1, 1]})
    order = sorted(methods, key=lambda m: -(totals[m].ratio() or 0.0))
    y = np.arange(len(order))
    colors = ["tab:red" if m in (HINTS, HINTS_LRU) else "grey" if m == "Belady" else "tab:blue" for m in order]
    ax1.barh(y - 0.2, [totals[m].ratio() or 0.0 for m in order], 0.4, color=colors, label="request hit ratio")
    ax1.barh(y + 0.2, [totals[m].byte_ratio() or 0.0 for m in order], 0.4, color=colors, alpha=0.45, label="byte hit ratio")
    if reuse is not None:
        ax1.axvline(reuse, color="black", linestyle=":", linewidth=1, label="reuse: ceiling of demand-fetched caches")
    ax1.set_yticks(y, order, fontsize=8)
    ax1.invert_yaxis()
    ax1.set_xlabel("hit ratio over the hinted windows (all sites)")
    ax1.set_title("Cache hints vs libCacheSim, same capacity", fontsize=10)
    ax1.legend(fontsize=7, loc="lower right")
    x = [datetime.fromtimestamp(parse_window_id(w).timestamp(), UTC) for w in scores.windows]
    top = 0.0
    for m, style in ((HINTS, "-o"), (HINTS_LRU, "-s"), ("LRU", "--"), ("ARC", "--"), ("S3-FIFO", "--"), ("Belady", ":")):
        if m in totals:
            per = scores.per_window.get(m, {})
            ys = [r if w in per and (r := per[w].ratio()) is not None else np.nan for w in scores.windows]
            top = max([top, *(v for v in ys if not np.isnan(v))])
            ax2.plot(x, ys, style, label=m, markersize=3)
    ax2.set_ylabel("request hit ratio")
    ax2.set_title(f"per fill window ({scores.window_s // 3600} h, all sites)", fontsize=10)
    ax2.tick_params(axis="x", labelsize=7, rotation=30)
    ax2.set_ylim(0, min(1.0, max(0.05, top * 1.25)))
    ax2.legend(fontsize=7, loc="upper left", ncol=2)
    path = ctx.plot_path("cache_hit_ratio")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def collect(ctx: JobContext) -> Section | None:
    stack = ctx.stack
    if not any(t.name == "cache" for t in stack.system.tables) or not any(f.name == "cache_hints" for f in stack.system.functions):
        return None
    section = Section("Predictive caching: cache hints against libCacheSim")
    h = section.headline
    truth = ctx.truth.get("cache") or {}
    plays: list[Play] = sorted((float(p[0]), str(p[1]), str(p[2])) for p in truth.get("plays") or [])
    table = DynamoTable(stack.physical("table", "cache"), client=stack.client("dynamodb"))
    sites = load_sites(table)
    titles = load_titles(table)
    sizes = {t: i.bytes for t, i in titles.items()}
    default = _default_bytes()
    h["sites"] = len(sites)
    h["plays"] = len(plays)
    if not sites:
        section.notes.append("No site table (the job's operators' step, sections.cache.setup, did not run): cache_hints published no hints.")
        return section
    last = plays[-1][0] if plays else 0.0
    candidates = _hint_items(stack, sites)
    windows = {str(i["window"]) for i in candidates.items.values() if parse_window_id(str(i["window"])).timestamp() <= last}
    pubs, n_published = published(stack, sites, windows, candidates)
    window_s = Counter(int(p.end - p.start) for p in pubs).most_common(1)[0][0] if pubs else DEFAULT_WINDOW_S
    starts = np.array([p[0] for p in plays])
    scored = sorted(
        {p.window for p in pubs if np.searchsorted(starts, p.start, side="left") < np.searchsorted(starts, p.start + window_s, side="left")}
    )
    pubs = [p for p in pubs if p.window in scored]
    scores = Scores(scored, window_s, sites)
    h["hint_windows_published"] = len({str(i["window"]) for i in candidates.items.values()})
    h["site_windows_published"] = n_published
    h["windows_scored"] = len(scored)
    if not scored:
        section.notes.append(f"No hinted window had plays: {n_published} (site, window) hints published, none inside the replay's plays.")
        return section
    score_hints(pubs, plays, sizes, default, scores)
    methods = [HINTS, HINTS_LRU, *score_policies(plays, sizes, default, scores)]
    capacity = sum(s.capacity_bytes for s in sites)
    days = len(scored) * window_s / 86400
    again = repeats(plays, scores)
    hints, both = scores.total(HINTS), scores.total(HINTS_LRU)
    lru, belady = scores.total("LRU"), scores.total("Belady")
    reactive = [m for m in methods if m not in (HINTS, HINTS_LRU, "Belady")]
    best = max(reactive, key=lambda m: (scores.total(m).ratio() or 0.0, m))
    h.update(
        {
            "site_capacity_gb": round(sites[0].capacity_bytes / 1e9, 1) if len({s.capacity_bytes for s in sites}) == 1 else None,
            "requests_scored": hints.requests,
            "requests_before_first_hinted_window": scores.unscored_requests,
            "requests_seen_before_at_site": sum(again.values()),
            "hints_hit_ratio": hints.ratio(),
            "hints_byte_hit_ratio": hints.byte_ratio(),
            "hints_bytes_filled": hints.filled,
            "hints_useful_fill": round(hints.useful / hints.prefilled, 4) if hints.prefilled else None,
            "hints_churn_per_day": round(hints.filled / capacity / days, 4) if capacity else None,
            "hints_reactive_hit_ratio": both.ratio(),
            "hints_reactive_byte_hit_ratio": both.byte_ratio(),
            "lru_hit_ratio": lru.ratio(),
            "belady_hit_ratio": belady.ratio(),
            "best_policy": best,
            "best_policy_hit_ratio": scores.total(best).ratio(),
            "hints_reactive_gap_closed": _gap(both.ratio(), lru.ratio(), belady.ratio()),
            "hints_reactive_vs_best_policy": round((both.ratio() or 0.0) - (scores.total(best).ratio() or 0.0), 4),
            "s3_documents_agree": sum(p.s3 == "agrees" for p in pubs),
            "s3_documents_differ": sum(p.s3 == "differs" for p in pubs),
            "s3_documents_missing": sum(p.s3 == "missing" for p in pubs),
            "site_windows_without_hints": scores.missing_hints,
        }
    )
    section.tables.append(
        Table(
            f"every method over the {len(scored)} hinted windows with plays, all {len(sites)} sites "
            f"(libCacheSim at each site's capacity; {HINTS_LRU}: the benchmark's product row)",
            ["method", "requests", "hits", "hit ratio", "byte hit ratio", "bytes filled (GB)", "useful fill", "churn (/day)", "LRU-Belady gap closed"],
            _method_rows(scores, methods, days, capacity),
        )
    )
    by_pub: dict[str, list[Published]] = defaultdict(list)
    for p in pubs:
        by_pub[p.window].append(p)
    rows = []
    for w in scored:
        ht, bt = scores.per_window[HINTS][w], scores.per_window[HINTS_LRU][w]
        pw = {m: scores.per_window.get(m, {}).get(w, Tally()) for m in ("LRU", best, "Belady")}
        rows.append([
            w, ht.requests, sum(len(p.entries) for p in by_pub[w]), round(sum(e.bytes for p in by_pub[w] for e in p.entries) / 1e9, 1),
            again[w], ht.hits, ht.ratio(), ht.byte_ratio(), bt.ratio(), pw["LRU"].ratio(), pw[best].ratio(), pw["Belady"].ratio(),
            round(ht.filled / 1e9, 1), round(ht.useful / ht.prefilled, 4) if ht.prefilled else None,
            round(ht.filled / capacity, 4), ht.dropped,
        ])
    section.tables.append(
        Table(
            "per fill window (all sites): hinted titles and bytes as published; seen before = requests for a title "
            "already requested at the site; hits of the hinted titles; filled = bytes of titles not held the window "
            "before; churn = filled / total capacity",
            ["window", "requests", "hinted titles", "hinted GB", "seen before", "hint hits", "hints HR", "hints BHR", "hints+LRU HR",
             "LRU HR", f"{best} HR", "Belady HR", "filled GB", "useful fill", "churn", "dropped titles"],
            rows,
        )
    )
    busiest = sorted(sites, key=lambda s: (-scores.per_site[HINTS].get(s.site_id, Tally()).requests, s.site_id))[:15]
    section.tables.append(
        Table(
            f"the {len(busiest)} busiest sites (requests in the hinted windows)",
            ["site", "region", "requests", "hints HR", "hints+LRU HR", "LRU HR", f"{best} HR", "Belady HR"],
            [[s.site_id, s.region, scores.per_site[HINTS].get(s.site_id, Tally()).requests,
              *[scores.per_site.get(m, {}).get(s.site_id, Tally()).ratio() for m in (HINTS, HINTS_LRU, "LRU", best, "Belady")]]
             for s in busiest],
        )
    )
    _bench_note(section, scores, best)
    skipped = truth.get("skipped_starts") or {}
    site_regions = {s.region for s in sites}
    sited = [p for p in plays if p[1] in site_regions]
    distinct = {p[2] for p in sited}
    section.notes.append(
        f"Sites: the operators' table the job wrote before the replay: an edge site in each region with at least "
        f"{truth.get('min_site_share', MIN_SITE_SHARE):.0%} of the plays ({len(sites)} of {truth.get('regions', '?')} regions, "
        f"{len(sited):,} of {len(plays):,} plays; the other regions' plays are not scored), each holding "
        f"{truth.get('capacity_share', CAPACITY_SHARE):.0%} of the bytes of the {len(distinct):,} distinct titles played "
        f"there ({sites[0].capacity_bytes / 1e9:,.0f} GB; benchmark 3b sizes its sites the same way). Title sizes: runtime "
        f"x the ladder {'/'.join(map(str, LADDER_KBPS))} kbps, whole MB ({len(titles):,} titles in the title table, "
        f"{truth.get('calendar_titles', 0)} on the launch calendar); "
        f"{sum(t not in sizes for t in distinct)} played titles missing from it got cache_hints' default size."
    )
    section.notes.append(
        f"Truth: {len(plays):,} plays (valid playback starts, one per session; {skipped.get('invalid', 0)} invalid and "
        f"{skipped.get('resent', 0)} re-sent starts left out), in the window of their event time and the region of their "
        f"edge. Scored: the {len(scored)} hinted windows with plays ({h['hint_windows_published']} windows published, "
        f"{n_published} site-windows; windows after the last play are not scored); the {scores.unscored_requests:,} "
        "requests before the first hinted window are history for cache_hints and warm-up for libCacheSim's caches."
    )
    agree = h["s3_documents_agree"]
    section.notes.append(
        f"Hints read from the cache table (streamsense.caching.store.hints_for); the S3 document of the same site and "
        f"window lists the same titles, bytes and kept flags for {agree} of {len(pubs)} site-windows"
        + (f" ({h['s3_documents_differ']} differ, {h['s3_documents_missing']} missing)." if agree != len(pubs) else ".")
    )
    section.notes.append(
        f"Reuse: {sum(again.values()):,} of the {hints.requests:,} scored requests ({sum(again.values()) / hints.requests:.1%}) "
        "were for a title already requested at the same site earlier in the replay; no cache that fetches on demand can "
        "hit more, at any capacity (libCacheSim's policies and Belady are bounded by it; a fill ahead of demand is not)."
    )
    lru_t, lrb_t = scores.total("LRU"), scores.total("LRB")
    if "LRB" in methods and (lrb_t.hits, lrb_t.hit_bytes, lrb_t.filled) == (lru_t.hits, lru_t.hit_bytes, lru_t.filled):
        section.notes.append(
            "LRB's figures equal LRU's exactly here: LRB learns its eviction model from the trace it serves, and with "
            "this few requests per site it evicts as LRU does (in benchmark 3b, with ~50,000 requests per site, it "
            "differs from LRU)."
        )
    section.notes.append(
        "Belady is the optimum of a cache that fetches on demand (it sees every future request but admits a title only "
        "when it is requested); a fill ahead of the window holds titles before their first request, so hints can go "
        "past it (a gap closed above 1)."
    )
    section.plots.append(_plot(ctx, scores, methods, sum(again.values()) / hints.requests))
    return section


def _bench_note(section: Section, scores: Scores, best: str) -> None:
    bench = _bench()
    h = section.headline
    if bench is None:
        section.notes.append(
            f"No bench-results/cache.json: run `make bench BENCH=cache` for benchmark 3b's figures at {BENCH_CAPACITY} next to these."
        )
        return
    product, anchors = bench["product"], bench["anchors"]
    h["bench_3b_product_hit_ratio"] = product.get("hit_ratio")
    h["bench_3b_gap_closed"] = product.get("gap_closed")
    rows: list[list[Any]] = [[HINTS_LRU + " (product)", scores.total(HINTS_LRU).ratio(), product.get("hit_ratio"),
                              scores.total(HINTS_LRU).byte_ratio(), product.get("byte_hit_ratio")]]
    for m in ("LRU", best, "Belady"):
        a = anchors.get(m) or {}
        rows.append([m, scores.total(m).ratio(), a.get("hit_ratio"), scores.total(m).byte_ratio(), a.get("byte_hit_ratio")])
    section.tables.append(
        Table(f"this run vs benchmark 3b at {BENCH_CAPACITY} (bench-results/cache.json)",
              ["method", "run hit ratio", "bench hit ratio", "run byte hit ratio", "bench byte hit ratio"], rows)
    )
    per_site_window = scores.total(HINTS_LRU).requests / max(1, len(scores.sites) * len(scores.windows))
    section.notes.append(
        f"The run's figures differ from benchmark 3b's by design. The benchmark replays 21 days of a synthetic CDN trace "
        f"(10 sites, ~2,500 requests per site and day, i.e. ~625 per site and 6 h window, 7 days of history before "
        f"scoring, launches that spike and decay); the run replays the simulator's and MovieLens' plays: "
        f"{per_site_window:.0f} requests per site and window on average, {len(scores.windows) * scores.window_s / 86400:.1f} "
        f"days scored after {scores.unscored_requests:,} requests of history, and MovieLens members who never replay a title "
        "they rated. Sparse demand bounds every method (see the reuse note) and makes the forecast noisy; the comparable "
        "figure is the share of the LRU-to-Belady gap closed. The product row is the same in both (hinted titles plus an "
        "LRU on the rest), sized the same way (the run's capacity share is the benchmark's 5pct)."
    )
