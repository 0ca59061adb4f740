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
from streamsense.caching.forecast import DemandForecaster, ForecastConfig
from streamsense.caching.hints import HintEntry, Site, plan_site
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
    negative_rate=0.2,
    min_train_windows=4,
    retrain_every=4,
    max_iter=200,
    learning_rate=0.05,
    max_depth=6,
    min_samples_leaf=100,
    l2_regularization=100.0,
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
        forecast_ctx = self._forecast(regions, windows, plays, titles_info, start)
        report.regions, report.history_windows, report.titles = len(regions), len(windows), len(forecast_ctx.titles)
        for site in sites:
            _, previous = latest_hints(self.table, site.site_id)
            entries = self._site_hints(site, forecast_ctx, titles_info, previous)
            self._write(site, wid, start, entries, previous, now)
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
                if not plays:
                    continue
                pk, sk = history_key(region, wid)
                items.append({"pk": pk, "sk": sk, "plays": plays, "total": sum(plays.values()), "expires_at": expires(start, HISTORY_TTL)})
        if items:
            self.table.put_many(items)

    def _history(self, regions: Sequence[str], windows: Sequence[str]) -> dict[tuple[str, str], dict[str, int]]:
        wanted = set(windows)
        out: dict[tuple[str, str], dict[str, int]] = {}
        for region in regions:
            for item in self.table.query(f"hist#{region}"):
                if item["sk"] in wanted:
                    out[(region, str(item["sk"]))] = {str(t): int(n) for t, n in item.get("plays", {}).items()}
        return out

    def _forecast(
        self,
        regions: Sequence[str],
        windows: Sequence[str],
        plays: Mapping[tuple[str, str], Mapping[str, int]],
        titles_info: Mapping[str, TitleInfo],
        start: datetime,
    ) -> _Context:
        cfg = self.config
        horizon_end = start + timedelta(seconds=cfg.window_s)
        first = start - timedelta(seconds=cfg.window_s * len(windows))
        upcoming = {t for t, info in titles_info.items() if info.release_at is not None and first <= info.release_at < horizon_end}
        titles = sorted({t for counts in plays.values() for t in counts} | upcoming)
        ti = {t: i for i, t in enumerate(titles)}
        R, T, W = len(regions), len(titles), len(windows)
        demand = np.zeros((W, R, T), np.float32)
        observed = np.zeros((W, R), bool)
        for (region, wid), counts in plays.items():
            w, r = windows.index(wid), regions.index(region)
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
        fc_cfg = cfg.forecast
        if fc_cfg.min_train_windows + 1 > W:
            fc_cfg = replace(fc_cfg, scorer="trend")
        fc = DemandForecaster(list(regions), titles, fc_cfg, release=release)
        for w in range(W):
            fc.observe(demand[w], observed[w])
        forecast = fc.forecast()
        # Requests expected per region in the window: same time yesterday if known, else the mean.
        totals = demand.sum(axis=2)  # [W, R]
        period = fc_cfg.period or 1
        if period <= W and observed[W - period].any():
            expected_total = totals[W - period]
        else:
            expected_total = totals.mean(axis=0) if W else np.zeros(R)
        return _Context(regions=list(regions), titles=titles, forecaster=fc, forecast=forecast, expected_total=expected_total)

    def _site_hints(
        self, site: Site, ctx: _Context, titles_info: Mapping[str, TitleInfo], previous: Sequence[HintEntry]
    ) -> list[HintEntry]:
        cfg = self.config
        if site.region not in ctx.regions:
            return []
        r = ctx.regions.index(site.region)
        ranked, scores = ctx.forecast.ranked[r], ctx.forecast.scores[r]
        keep = scores > 0
        ranked, scores = ranked[keep], scores[keep]
        ids = [ctx.titles[int(t)] for t in ranked]
        sizes = np.array([titles_info[t].bytes if t in titles_info else cfg.default_title_bytes for t in ids], np.int64)
        demand = scores * max(float(ctx.expected_total[r]), 1.0)
        reasons_list = ctx.forecaster.explain_many(r, ranked)
        reasons = {}
        for tid, why in zip(ids, reasons_list, strict=True):
            detail = why.detail if tid in titles_info else (why.detail + "; size unknown, default used").lstrip("; ")
            reasons[tid] = (why.kind, why.source, detail)
        budget = Site(site.site_id, site.region, int(site.capacity_bytes * (1 - cfg.reactive_share)))
        return plan_site(budget, ids, demand, sizes, previous=[e.title_id for e in previous], reasons=reasons, keep_margin=cfg.keep_margin)

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
class _Context:
    regions: list[str]
    titles: list[str]
    forecaster: DemandForecaster
    forecast: Any
    expected_total: np.ndarray
