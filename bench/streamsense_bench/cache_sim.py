"""Benchmark 3b (benchmarks.md section 3b): replay the simulator's long-tailed request trace
through the product's fill logic and through libCacheSim's policies, per edge site.

Setup, the same for every method:
- each site is its own cache; its capacity is ``pct`` of the bytes of all distinct titles in
  the trace (1%, 5%, 10%), the same for every site;
- the first ``warmup_days`` are history only (every cache runs through them, nobody is
  scored); hit ratios count the requests after that;
- reactive policies (libCacheSim's LRU, LFU, ARC, S3-FIFO, WTinyLFU, LRB) and Belady (on an
  oracleGeneral trace per site: next-access field = 1-based index of the next request to the
  object in that site's trace, -1 for none) run in libCacheSim's C core (``process_trace``).

The product: at each fill-window boundary the forecaster has observed every earlier window's
requests (counts per site and title), forecasts the next window's requests per site and title,
and ``streamsense.caching.hints.select`` fills ``1 - reactive_share`` of the site's bytes
(density order, hysteresis against churn); the remaining ``reactive_share`` is an LRU (libCacheSim)
fed with the requests the filled part misses. A request hits if its title is in the window's
fill or the LRU has it.

Accounting: bytes filled = bytes of titles added at a boundary (not held the window before) +
bytes the reactive part admits on misses; for libCacheSim's policies, every miss is fetched
and admitted, so bytes filled = missed bytes. Useful fill = filled bytes of titles requested
in that window. Churn = bytes filled per day / capacity.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import libcachesim as lcs
import numpy as np
from streamsense.caching.forecast import DemandForecaster, ForecastConfig
from streamsense.caching.hints import select
from streamsense.caching.service import PRODUCT_FORECAST, HintsConfig
from streamsense.caching.store import DEFAULT_WINDOW_S
from streamsense_sim.cdn_trace import DAY_S, Trace

CAPACITIES = {"1pct": 0.01, "5pct": 0.05, "10pct": 0.10}
POLICIES: dict[str, Callable[[int], Any]] = {
    "LRU": lambda c: lcs.LRU(c),
    "LFU": lambda c: lcs.LFU(c),
    "ARC": lambda c: lcs.ARC(c),
    "S3-FIFO": lambda c: lcs.S3FIFO(c),
    "WTinyLFU": lambda c: lcs.WTinyLFU(c),
    "WTinyLFU-w10": lambda c: lcs.WTinyLFU(c, window_size=0.1),
    "LRB": lambda c: lcs.LRB(c, objective="object-miss-ratio"),
    "Belady": lambda c: lcs.Belady(c),
}
#: libCacheSim sizes its sketches from the cache size as if it counted objects, and overflows
#: on byte counts of this magnitude: objects and capacities go to it in MB (every size in the
#: trace is a whole number of MB, so nothing is rounded).
SIZE_UNIT = 1_000_000
ORACLE_DTYPE = np.dtype([("t", "<u4"), ("id", "<u8"), ("sz", "<u4"), ("nx", "<i8")])


@dataclass(frozen=True)
class FillConfig:
    """The product's fill logic as the cache_hints function runs it (same forecaster settings,
    same churn margin and reactive share: ``streamsense.caching.service``)."""

    window_s: int = DEFAULT_WINDOW_S
    reactive_share: float = HintsConfig().reactive_share
    keep_margin: float = HintsConfig().keep_margin
    forecast: ForecastConfig = field(default_factory=lambda: PRODUCT_FORECAST)


@dataclass
class Result:
    hits: int
    requests: int
    hit_bytes: int
    request_bytes: int
    filled_bytes: int
    useful_fill_bytes: int | None  # of the prefilled bytes, those requested in their window
    days: float
    capacity: int  # per site
    sites: int
    prefilled_bytes: int = 0

    def metrics(self) -> dict[str, float | None]:
        out: dict[str, float | None] = {
            "hit_ratio": self.hits / self.requests,
            "byte_hit_ratio": self.hit_bytes / self.request_bytes,
            "bytes_filled": float(self.filled_bytes),
            "useful_fill": None if self.useful_fill_bytes is None else self.useful_fill_bytes / max(self.prefilled_bytes, 1),
            "churn": self.filled_bytes / (self.capacity * self.sites) / self.days,
        }
        if self.useful_fill_bytes is not None:
            # The product's fill split: boundary prefills (churn control acts here) vs the
            # reactive share's admissions on misses.
            out["bytes_prefilled"] = float(self.prefilled_bytes)
            out["prefill_churn"] = self.prefilled_bytes / (self.capacity * self.sites) / self.days
        return out


def capacity_bytes(trace: Trace, pct: float) -> int:
    requested = np.unique(trace.title)
    return int(pct * trace.size[requested].sum()) // SIZE_UNIT * SIZE_UNIT


def oracle_files(trace: Trace, folder: Path, warm_s: int) -> list[tuple[Path, int, int, int]]:
    """One oracleGeneral file per site; returns (path, n warm-up requests, n requests, measured bytes)."""
    out = []
    for s in range(trace.params.sites):
        sel = trace.site == s
        t = trace.title[sel].astype(np.int64)
        ts = trace.time_s[sel]
        n = len(t)
        nxt = np.full(n, -1, np.int64)
        # Next access of the same title: stable sort by title, neighbours within a title.
        order = np.lexsort((np.arange(n), t))
        same = t[order][1:] == t[order][:-1]
        nxt[order[:-1][same]] = order[1:][same] + 1  # 1-based
        rec = np.zeros(n, ORACLE_DTYPE)
        rec["t"] = ts
        rec["id"] = t + 1
        rec["sz"] = trace.size[t] // SIZE_UNIT
        rec["nx"] = nxt
        path = folder / f"site{s}.oracleGeneral"
        rec.tofile(path)
        warm_end = int(np.searchsorted(ts, warm_s, side="left"))
        out.append((path, warm_end, n, int(trace.size[t[warm_end:]].sum())))
    return out


def run_policy(name: str, files: Sequence[tuple[Path, int, int, int]], capacity: int, days: float) -> Result:
    hits = hit_bytes = reqs = req_bytes = 0
    for path, warm, n, mbytes in files:
        reader = lcs.TraceReader(str(path), lcs.TraceType.ORACLE_GENERAL_TRACE)
        cache = POLICIES[name](capacity // SIZE_UNIT)
        if warm:
            cache.process_trace(reader, 0, warm)
        measured = n - warm
        if measured <= 0:
            continue
        miss, byte_miss = cache.process_trace(reader, warm, -1)
        hits += round((1 - miss) * measured)
        hit_bytes += round((1 - byte_miss) * mbytes)
        reqs += measured
        req_bytes += mbytes
    return Result(hits, reqs, hit_bytes, req_bytes, req_bytes - hit_bytes, None, days, capacity, len(files))


def window_demand(trace: Trace, window_s: int) -> np.ndarray:
    """Requests per (window, site, title), float32 [W, S, T]."""
    n_win = int(np.ceil(trace.params.days * DAY_S / window_s))
    w = (trace.time_s // window_s).astype(np.int64)
    flat = (w * trace.params.sites + trace.site) * trace.n_titles + trace.title
    counts = np.bincount(flat, minlength=n_win * trace.params.sites * trace.n_titles)
    return counts.reshape(n_win, trace.params.sites, trace.n_titles).astype(np.float32)


def release_windows(trace: Trace, window_s: int) -> np.ndarray:
    rel = np.full(trace.n_titles, -1, np.int64)
    rel[trace.calendar.titles] = np.maximum(trace.calendar.release_s // window_s, 0)
    return rel


class ProductFill:
    """The product's fill logic over a trace, for several capacities in one pass of forecasts."""

    def __init__(self, trace: Trace, config: FillConfig, warm_s: int) -> None:
        self.trace = trace
        self.cfg = config
        self.warm_s = warm_s
        self.demand = window_demand(trace, config.window_s)
        self.release = release_windows(trace, config.window_s)

    def forecasts(self, progress: Callable[[int, int], None] | None = None) -> list[np.ndarray]:
        """Predicted requests [S, T] for every window from the first boundary after warm-up
        (``progress(window, n_windows)`` after each forecast)."""
        S, T = self.trace.params.sites, self.trace.n_titles
        fc = DemandForecaster([f"site{s}" for s in range(S)], [str(t) for t in range(T)], self.cfg.forecast, release=self.release)
        first = self.warm_s // self.cfg.window_s
        out = []
        for w in range(self.demand.shape[0]):
            if w >= first:
                f = fc.forecast()
                pred = np.zeros((S, T), np.float32)
                for s in range(S):
                    pred[s, f.ranked[s]] = f.scores[s]
                out.append(pred)
                if progress is not None:
                    progress(w, self.demand.shape[0])
            fc.observe(self.demand[w], np.ones(S, bool))
        self.fits = fc.fits
        return out

    def simulate(self, preds: list[np.ndarray], capacity: int) -> Result:
        tr, cfg = self.trace, self.cfg
        S = tr.params.sites
        static_cap = int(capacity * (1 - cfg.reactive_share))
        reactive_cap = capacity - static_cap
        first = self.warm_s // cfg.window_s
        held = np.zeros((S, tr.n_titles), bool)
        lru = [lcs.LRU(reactive_cap // SIZE_UNIT) if reactive_cap >= SIZE_UNIT else None for _ in range(S)]
        req = lcs.Request()
        hits = hit_bytes = reqs = req_bytes = filled = useful = prefilled = 0
        win = tr.time_s // cfg.window_s
        bounds = np.searchsorted(win, np.arange(first, first + len(preds) + 1))
        for k, pred in enumerate(preds):
            a, b = bounds[k], bounds[k + 1]
            sites, titles = tr.site[a:b], tr.title[a:b]
            sizes = tr.size[titles]
            new_held = np.zeros_like(held)
            for s in range(S):
                cand = np.flatnonzero(pred[s] > 0)
                sel = select(pred[s, cand], tr.size[cand], static_cap, previous=held[s, cand], keep_margin=cfg.keep_margin)
                new_held[s, cand[sel.titles]] = True
            added = new_held & ~held
            requested = np.zeros_like(held)
            requested[sites, titles] = True
            filled += int((added * tr.size[None, :]).sum())
            prefilled += int((added * tr.size[None, :]).sum())
            useful += int(((added & requested) * tr.size[None, :]).sum())
            held = new_held
            hit = held[sites, titles]
            # The misses go to the site's reactive LRU, in time order.
            for i in np.flatnonzero(~hit):
                c = lru[int(sites[i])]
                if c is None:
                    continue
                req.obj_id = int(titles[i]) + 1
                req.obj_size = int(sizes[i]) // SIZE_UNIT
                req.clock_time = int(tr.time_s[a + i])
                if c.get(req):
                    hit[i] = True
                elif sizes[i] <= reactive_cap:
                    filled += int(sizes[i])
            hits += int(hit.sum())
            hit_bytes += int(sizes[hit].sum())
            reqs += int(b - a)
            req_bytes += int(sizes.sum())
        days = (tr.params.days * DAY_S - self.warm_s) / DAY_S
        return Result(hits, reqs, hit_bytes, req_bytes, filled, useful, days, capacity, S, prefilled)


def run_3b(
    trace: Trace,
    config: FillConfig,
    warm_days: int = 7,
    policies: Sequence[str] = tuple(POLICIES),
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    say = log or (lambda _: None)
    warm_s = warm_days * DAY_S
    days = trace.params.days - warm_days
    out: dict[str, Any] = {}
    timings: dict[str, float] = {}
    product = ProductFill(trace, config, warm_s)
    t0 = time.perf_counter()
    n_win = product.demand.shape[0]
    step = max(1, n_win // 8)
    preds = product.forecasts(lambda w, n: say(f"3b forecast window {w + 1}/{n}") if (w + 1) % step == 0 or w + 1 == n else None)
    timings["product_forecasts_s"] = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(prefix="cache3b-") as tmp:
        files = oracle_files(trace, Path(tmp), warm_s)
        for key, pct in CAPACITIES.items():
            cap = capacity_bytes(trace, pct)
            row: dict[str, Any] = {"capacity_bytes": cap, "anchors": {}}
            t0 = time.perf_counter()
            row["product"] = product.simulate(preds, cap).metrics()
            timings[f"product_{key}_s"] = time.perf_counter() - t0
            for name in policies:
                t0 = time.perf_counter()
                row["anchors"][name] = run_policy(name, files, cap, days).metrics()
                timings[f"{name}_{key}_s"] = time.perf_counter() - t0
            say(f"3b {key}: product and {len(policies)} libCacheSim policies done")
            lru = row["anchors"]["LRU"]["hit_ratio"]
            bel = row["anchors"]["Belady"]["hit_ratio"]
            row["product"]["gap_closed"] = (row["product"]["hit_ratio"] - lru) / (bel - lru) if bel > lru else None
            out[key] = row
    out["timings"] = timings
    out["fits"] = getattr(product, "fits", 0)
    return out
