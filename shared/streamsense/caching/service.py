"""The cache_hints function's domain calls: ``apply`` (a batch of playback events -> plays per
region and window) and ``publish`` (at a fill-window boundary: forecast the window's demand and
publish each site's hints to DynamoDB and S3). Storage behind ``streamsense.storage``.

``publish`` is idempotent and safe to call on every schedule tick: the window it fills is the
one starting at the last boundary; if that window's hints already exist for every site it does
nothing (EventBridge delivers at least once, and the schedule can tick more often than the
window turns over).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from streamsense.caching.aggregate import aggregate, as_play_records, window_plays
from streamsense.caching.forecast import DemandForecaster, FittedModel, ForecastConfig
from streamsense.caching.hints import HintEntry, Site, plan_site, select
from streamsense.caching.store import (
    DEFAULT_WINDOW_S,
    HINTS_SCHEMA,
    TitleInfo,
    expires,
    hint_items,
    hints_for,
    hints_object_key,
    history_key,
    latest_hints,
    load_sites,
    load_titles,
    parse_window_id,
    title_bucket,
    window_id,
    window_start,
)
from streamsense.events import Event
from streamsense.observability import count, logger
from streamsense.pipeline import BatchResult, Parsed
from streamsense.storage import ObjectStore, Table

HISTORY_TTL = timedelta(days=15)
HINTS_TTL = timedelta(days=30)

#: The product's forecaster for sub-day fill windows (chosen on benchmark 3b's validation trace).
PRODUCT_FORECAST = ForecastConfig(
    objective="volume",
    scorer="gbm",
    candidate_window=8,
    own_window=28,
    period=4,
    ewma_halflives=(4.0, 28.0),
    negative_rate=0.1,
    min_train_windows=4,
    retrain_every=8,
    max_train_windows=28,
    max_iter=200,
    learning_rate=0.05,
    max_depth=6,
    min_samples_leaf=100,
    l2_regularization=100.0,
    max_window_rows=20_000,  # ~2.4 MB of features per window: 10,000 titles x 100 sites fits in 1 GB
)


@dataclass(frozen=True)
class HintsConfig:
    window_s: int = DEFAULT_WINDOW_S
    history_windows: int = 28  # windows of history the forecaster replays (7 days of 6 h)
    rollup_windows: int = 2  # closed windows re-summed at each publish (late plays)
    keep_margin: float = 0.3  # churn control: a held title is swapped only for a 30% better one
    reactive_share: float = 0.1  # bytes left to the site's own reactive cache
    default_title_bytes: int = 2_000_000_000  # titles missing from the title table
    forecast: ForecastConfig = field(default_factory=lambda: PRODUCT_FORECAST)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class PublishReport:
    window: str
    sites: int = 0
    skipped: bool = False
    entries: int = 0
    titles: int = 0
    regions: int = 0
    history_windows: int = 0


class CacheHints:
    def __init__(
        self,
        table: Table,
        bucket: ObjectStore | None,
        config: HintsConfig | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.table = table
        self.bucket = bucket
        self.config = config or HintsConfig()
        self.clock = clock
        # The forecaster's model and the window it was fitted for: kept by the warm container
        # (the Kinesis batches keep it warm between schedule ticks).
        self.model: tuple[datetime, FittedModel] | None = None
        self.fits = 0

    # ---- Kinesis --------------------------------------------------------------------------

    def apply(self, records: Sequence[Parsed[Event]]) -> BatchResult:
        report = aggregate(self.table, as_play_records((p.value, p.source) for p in records), self.config.window_s)
        regions = {r for r, _ in report.touched}
        if regions:
            self.table.put_many([{"pk": "region", "sk": r} for r in sorted(regions)])
        count("PlaysApplied", report.applied)
        count("PlaysReplayedSkipped", report.replayed)
        count("PlaysDuplicatesSkipped", report.duplicates)
        return BatchResult()

    # ---- schedule -------------------------------------------------------------------------

    def publish(self, at: datetime | None = None, force: bool = False) -> PublishReport:
        cfg = self.config
        now = at or self.clock()
        start = window_start(now, cfg.window_s)
        wid = window_id(start)
        report = PublishReport(wid)
        sites = load_sites(self.table)
        if not sites:
            logger.warning("no sites in the site table: nothing to publish")
            return report
        if not force and all(hints_for(self.table, s.site_id, wid) for s in sites):
            report.skipped = True
            return report
        regions = sorted({s.region for s in sites} | {str(i["sk"]) for i in self.table.query("region")})
        self._rollup(regions, start)
        windows = [window_id(start - timedelta(seconds=cfg.window_s * k)) for k in range(cfg.history_windows, 0, -1)]
        plays = self._history(regions, windows)
        titles_info = load_titles(self.table)
        inputs = build_inputs(regions, windows, plays, titles_info, start, cfg)
        report.regions, report.history_windows, report.titles = len(regions), len(windows), len(inputs.titles)
        previous = {s.site_id: latest_hints(self.table, s.site_id)[1] for s in sites}
        # A warm container refits every ``forecast.retrain_every`` windows (as benchmark 3b's
        # replay does) and scores with the kept model in between; a cold one fits first.
        model = None
        if self.model is not None:
            age = (start - self.model[0]).total_seconds()
            model = self.model[1] if 0 <= age < cfg.window_s * cfg.forecast.retrain_every else None
        planned, fitted = compute_hints(
            inputs, sites, {k: [e.title_id for e in v] for k, v in previous.items()}, cfg, model=model
        )
        if fitted is not None and fitted is not model:
            self.model = (start, fitted)
            self.fits += 1
            count("ForecasterFits", 1)
        elif fitted is not None:
            count("ForecasterReused", 1)
        for site in sites:
            entries = planned[site.site_id]
            self._write(site, wid, start, entries, previous[site.site_id], now)
            report.sites += 1
            report.entries += len(entries)
        count("HintSitesPublished", report.sites)
        count("HintEntriesPublished", report.entries)
        return report

    def _rollup(self, regions: Sequence[str], start: datetime) -> None:
        """Sum the per-shard plays of the last closed windows into one history item each."""
        cfg = self.config
        items = []
        for k in range(1, cfg.rollup_windows + 1):
            wid = window_id(start - timedelta(seconds=cfg.window_s * k))
            for region in regions:
                plays = window_plays(self.table, region, wid)
                by_bucket: dict[int, dict[str, int]] = {}
                for title, n in plays.items():
                    by_bucket.setdefault(title_bucket(title), {})[title] = n
                for bucket, counts in sorted(by_bucket.items()):
                    pk, sk = history_key(region, wid, bucket)
                    items.append({"pk": pk, "sk": sk, "plays": counts, "expires_at": expires(parse_window_id(wid), HISTORY_TTL)})
        if items:
            self.table.put_many(items)

    def _history(self, regions: Sequence[str], windows: Sequence[str]) -> dict[tuple[str, str], dict[str, int]]:
        wanted = set(windows)
        out: dict[tuple[str, str], dict[str, int]] = {}
        for region in regions:
            for item in self.table.query(f"hist#{region}"):
                wid = str(item["sk"]).split("#")[0]
                if wid in wanted:
                    counts = out.setdefault((region, wid), {})
                    counts.update({str(t): int(n) for t, n in item.get("plays", {}).items()})
        return out

    def _write(
        self, site: Site, wid: str, start: datetime, entries: Sequence[HintEntry], previous: Sequence[HintEntry], now: datetime
    ) -> None:
        used = sum(e.bytes for e in entries)
        chosen = {e.title_id for e in entries}
        doc: dict[str, Any] = {
            "schema": HINTS_SCHEMA,
            "site": site.site_id,
            "region": site.region,
            "window": wid,
            "window_end": window_id(start + timedelta(seconds=self.config.window_s)),
            "capacity_bytes": site.capacity_bytes,
            "fill_budget_bytes": int(site.capacity_bytes * (1 - self.config.reactive_share)),
            "used_bytes": used,
            "entries": [e.as_dict() for e in entries],
            "dropped": sorted(e.title_id for e in previous if e.title_id not in chosen),
            "forecaster": {"scorer": self.config.forecast.scorer, "objective": self.config.forecast.objective},
            "generated_at": now.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        }
        # S3 first: a table item that points at a document always finds it.
        if self.bucket is not None:
            self.bucket.put(hints_object_key(site.site_id, wid), json.dumps(doc, sort_keys=True).encode(), content_type="application/json")
        self.table.put_many(hint_items(site, wid, entries, used, now, HINTS_TTL))


@dataclass
class HintInputs:
    """Everything ``compute_hints`` needs, as arrays (what publish loads from the table)."""

    regions: list[str]
    titles: list[str]
    demand: np.ndarray  # [W, R, T] plays per window, region, title
    observed: np.ndarray  # [W, R] bool
    release: np.ndarray  # [T] window index of release on the calendar (-1: not on it)
    sizes: np.ndarray  # [T] bytes
    size_known: np.ndarray  # [T] bool: from the title table (else the default size)


def build_inputs(
    regions: Sequence[str],
    windows: Sequence[str],
    plays: Mapping[tuple[str, str], Mapping[str, int]],
    titles_info: Mapping[str, TitleInfo],
    start: datetime,
    cfg: HintsConfig,
) -> HintInputs:
    horizon_end = start + timedelta(seconds=cfg.window_s)
    first = start - timedelta(seconds=cfg.window_s * len(windows))
    upcoming = {t for t, info in titles_info.items() if info.release_at is not None and first <= info.release_at < horizon_end}
    titles = sorted({t for counts in plays.values() for t in counts} | upcoming)
    ti = {t: i for i, t in enumerate(titles)}
    wi = {w: i for i, w in enumerate(windows)}
    ri = {r: i for i, r in enumerate(regions)}
    R, T, W = len(regions), len(titles), len(windows)
    demand = np.zeros((W, R, T), np.float32)
    observed = np.zeros((W, R), bool)
    for (region, wid), counts in plays.items():
        w, r = wi[wid], ri[region]
        observed[w, r] = True
        for t, n in counts.items():
            demand[w, r, ti[t]] = n
    # Once plays exist at all, a region-window without any is a quiet one, not a missing one;
    # before the first play anywhere the history simply had not started.
    if observed.any():
        observed[int(np.argmax(observed.any(axis=1))) :] = True
    release = np.full(T, -1, np.int64)
    for t in upcoming:
        rel = titles_info[t].release_at
        assert rel is not None
        release[ti[t]] = int((rel - first).total_seconds() // cfg.window_s)
    known = np.array([t in titles_info for t in titles], bool)
    sizes = np.array([titles_info[t].bytes if t in titles_info else cfg.default_title_bytes for t in titles], np.int64)
    return HintInputs(list(regions), titles, demand, observed, release, sizes, known)


def compute_hints(
    inputs: HintInputs,
    sites: Sequence[Site],
    previous: Mapping[str, Sequence[str]],
    cfg: HintsConfig,
    model: FittedModel | None = None,
) -> tuple[dict[str, list[HintEntry]], FittedModel | None]:
    """Forecast the next window from the history and plan every site: replay the windows into
    the forecaster (it fits its model on them, unless ``model`` is given: fitted on an earlier
    history), score, convert shares into requests with the region's traffic at the same time
    yesterday, then fill each site's budget. Returns the plans and the model scored with."""
    W, R, _ = inputs.demand.shape
    fc_cfg = cfg.forecast
    if fc_cfg.min_train_windows + 1 > W:
        fc_cfg = replace(fc_cfg, scorer="trend")
    fc = DemandForecaster(inputs.regions, inputs.titles, fc_cfg, release=inputs.release)
    reuse = model if model is not None and model.config == fc_cfg else None
    for w in range(W):
        fc.observe(inputs.demand[w], inputs.observed[w], refit=False, label=reuse is None)
    if reuse is not None:
        fc.use(reuse)
    else:
        fc.fit()  # one fit on the whole replayed history: only the last forecast is made here
    forecast = fc.forecast()
    totals = inputs.demand.sum(axis=2)  # [W, R]
    period = fc_cfg.period or 1
    if period <= W and inputs.observed[W - period].any():
        expected_total = totals[W - period]
    else:
        expected_total = totals.mean(axis=0) if W else np.zeros(R)
    out: dict[str, list[HintEntry]] = {}
    for site in sites:
        if site.region not in inputs.regions:
            out[site.site_id] = []
            continue
        r = inputs.regions.index(site.region)
        ranked, scores = forecast.ranked[r], forecast.scores[r]
        keep = scores > 0
        ranked, scores = ranked[keep], scores[keep]
        ids = [inputs.titles[int(t)] for t in ranked]
        demand = scores * max(float(expected_total[r]), 1.0)
        # Explanations only for what can fit (the ranked list may be the whole catalogue).
        budget = Site(site.site_id, site.region, int(site.capacity_bytes * (1 - cfg.reactive_share)))
        sel = select(demand, inputs.sizes[ranked], budget.capacity_bytes, previous=np.isin(ids, list(previous.get(site.site_id, ()))), keep_margin=cfg.keep_margin, title_keys=ids)
        chosen = ranked[sel.titles]
        reasons = {}
        for t, why in zip(chosen, fc.explain_many(r, chosen), strict=True):
            tid = inputs.titles[int(t)]
            detail = why.detail if inputs.size_known[t] else f"{why.detail}; size unknown, default used"
            reasons[tid] = (why.kind, why.source, detail)
        out[site.site_id] = plan_site(
            budget,
            [ids[i] for i in sel.titles],
            demand[sel.titles],
            inputs.sizes[chosen],
            previous=list(previous.get(site.site_id, ())),
            reasons=reasons,
            keep_margin=cfg.keep_margin,
        )
    return out, (reuse if reuse is not None else fc.fitted())
