"""The report's predictive-caching section and `query site` on a tiny local-stack run: the job's
operators' step (site and title tables), hand-made plays in two regions through cache_hints
(Kinesis -> Lambda -> DynamoDB + S3), its schedule ticked at each 6 h fill-window boundary as
the job does, then collect() and the site query. Every hit count is recomputed here from the
known plays and the hints read back through the store's read API; LRU's from a plain LRU."""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from streamsense.caching.hints import HintEntry
from streamsense.caching.store import hints_for, latest_hints, load_sites, load_titles, window_id
from streamsense.storage import DynamoTable
from streamsense_local.job.inputs import next_monday
from streamsense_local.job.queries import cache as queries
from streamsense_local.job.sections import JobContext
from streamsense_local.job.sections import cache as section
from streamsense_local.stack import LocalStack

from infra.system import SYSTEM, System

CACHE_SYSTEM = System(
    name="cache-e2e",
    streams=tuple(s for s in SYSTEM.streams if s.name == "playback"),
    tables=tuple(t for t in SYSTEM.tables if t.name == "cache"),
    buckets=tuple(b for b in SYSTEM.buckets if b.name == "hints"),
    queues=tuple(q for q in SYSTEM.queues if q.name in {"quarantine", "failures"}),
    functions=(SYSTEM.function("cache_hints"),),
)
pytestmark = pytest.mark.xdist_group("cache_section_stack")
W = 6 * 3600
# In the future, as the job's replay is (the runtime's clock only moves forward).
START = next_monday(datetime.now(UTC)) + timedelta(weeks=3)
# Titles: runtime (s); "g" launches in window 2 (on the calendar); "s" is short (fits the
# sites' reactive share); "z" is in no catalogue (cache_hints' default size).
RUNTIME = {"a": 3600, "b": 5400, "c": 6000, "d": 4200, "e": 7200, "f": 3000, "g": 6600, "s": 600}
CITIES = {"DE": (3320, 52.52, 13.40), "FR": (3215, 48.86, 2.35), "AT": (8447, 48.21, 16.37)}
# (window, minute, region, title): window 0 is history only, 1 and 2 are scored; window 3's
# hints are published but the replay has no plays there. AT never plays a title twice.
PLAYS = [
    (0, 10, "DE", "a"), (0, 20, "DE", "a"), (0, 30, "DE", "b"), (0, 40, "DE", "a"), (0, 50, "DE", "b"),
    (0, 60, "DE", "c"), (0, 70, "DE", "s"), (0, 80, "FR", "d"), (0, 90, "FR", "d"), (0, 100, "FR", "a"),
    (0, 110, "FR", "s"), (0, 115, "AT", "c"),
    (1, 5, "DE", "a"), (1, 15, "DE", "s"), (1, 25, "DE", "e"), (1, 35, "DE", "a"), (1, 45, "DE", "b"),
    (1, 55, "DE", "s"), (1, 65, "FR", "d"), (1, 75, "FR", "f"), (1, 85, "FR", "z"), (1, 95, "FR", "d"),
    (1, 100, "AT", "f"),
    (2, 5, "DE", "c"), (2, 15, "DE", "e"), (2, 25, "DE", "a"), (2, 35, "DE", "g"), (2, 45, "DE", "s"),
    (2, 55, "FR", "d"), (2, 65, "FR", "g"), (2, 75, "FR", "a"), (2, 85, "FR", "d"), (2, 95, "FR", "s"),
]  # fmt: skip


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _start(i: int, when: datetime, region: str, title: str, session: str | None = None) -> dict[str, Any]:
    asn, lat, lon = CITIES[region]
    return {
        "type": "playback_start", "version": 1, "event_id": f"start-{i}", "occurred_at": _iso(when), "account_id": f"acc-{i % 7}",
        "payload": {
            "session_id": session or f"sess-{i}", "profile_id": f"acc-{i % 7}-p1", "title_id": title,
            "device": {"device_id": f"dev-{i % 7}", "device_type": "tv"},
            "network": {"ip": "198.51.100.23", "asn": asn, "country": region, "lat": lat, "lon": lon},
            "network_type": "wifi", "startup_ms": 1200, "audio_language": "de", "subtitle_language": "off",
        },
    }  # fmt: skip


def events() -> list[dict[str, Any]]:
    out = [_start(i, START + timedelta(seconds=w * W + m * 60), r, t) for i, (w, m, r, t) in enumerate(PLAYS)]
    # A producer re-send of play 0 (same session, new event id) and a start without its title:
    # the function counts the first once and quarantines the second; the truth does the same.
    out.append({**_start(100, START + timedelta(minutes=12), "DE", "a", session="sess-0")})
    bad = _start(101, START + timedelta(minutes=14), "DE", "a")
    del bad["payload"]["title_id"]
    out.append(bad)
    return sorted(out, key=lambda e: e["occurred_at"])


def catalogue() -> SimpleNamespace:
    ids = [t for t in RUNTIME]
    release = [int((START + timedelta(hours=13)).timestamp() * 1000) if t == "g" else int((START - timedelta(days=400)).timestamp() * 1000) for t in ids]
    return SimpleNamespace(
        title_ids=tuple(ids),
        duration_s=np.array([float(RUNTIME[t]) for t in ids]),
        boost=np.array([5.0 if t == "g" else 0.0 for t in ids]),
        release_ms=np.array(release, np.int64),
    )


def records() -> list[tuple[float, bytes, str]]:
    return [(datetime.fromisoformat(e["occurred_at"].replace("Z", "+00:00")).timestamp(), json.dumps(e).encode(), e["account_id"]) for e in events()]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalStack, dict[str, Any]]]:
    mp = pytest.MonkeyPatch()
    mp.setattr(section, "CAPACITY_SHARE", 0.4)  # 40% of the played titles' bytes: a few titles per site
    with LocalStack.start(CACHE_SYSTEM, record_history=False) as st:
        st.clock.advance_to(START.timestamp() - 3600)
        truth = section.setup(st, catalogue(), [records()])
        evs = events()
        for w in range(3):  # ticks at +6 h, +12 h, +18 h: hints for windows 1, 2 and 3
            batch = [e for e in evs if START + timedelta(seconds=w * W) <= datetime.fromisoformat(e["occurred_at"].replace("Z", "+00:00")) < START + timedelta(seconds=(w + 1) * W)]
            if batch:
                st.put_events(batch)
                st.drain()
            st.clock.advance_to((START + timedelta(seconds=(w + 1) * W)).timestamp())
            st.tick("cache_hints")
            st.drain()
        assert st.receive_all("failures") == []
        quarantined = [json.loads(b) for b in st.receive_all("quarantine")]
        assert [(q["function"], q["reason"]) for q in quarantined] == [("cache_hints", "invalid_fields")]
        yield st, truth
    mp.undo()


def _table(stack: LocalStack) -> DynamoTable:
    return DynamoTable(stack.physical("table", "cache"), client=stack.client("dynamodb"))


def _mb(title: str) -> int:
    return -(-RUNTIME[title] * 11_250 * 1000 // 8 // 1_000_000) * 1_000_000 if title in RUNTIME else 2_000_000_000


def test_setup_writes_the_site_and_title_tables(run: tuple[LocalStack, dict[str, Any]]) -> None:
    stack, truth = run
    assert truth["skipped_starts"] == {"invalid": 1, "resent": 1}
    assert len(truth["plays"]) == len(PLAYS) and truth["calendar_titles"] == 1
    table = _table(stack)
    played = {t for *_, t in PLAYS}
    capacity = int(0.4 * sum(_mb(t) for t in played)) // 1_000_000 * 1_000_000
    assert [(s.site_id, s.region, s.capacity_bytes) for s in load_sites(table)] == [
        ("edge-at", "AT", capacity), ("edge-de", "DE", capacity), ("edge-fr", "FR", capacity)]
    titles = load_titles(table)
    assert {t: i.bytes for t, i in titles.items()} == {t: _mb(t) for t in RUNTIME}
    assert titles["a"].bytes == 5_063_000_000  # 3600 s x 11,250 kbps = 5,062.5 MB, rounded up
    assert titles["g"].release_at == START + timedelta(hours=13) and titles["a"].release_at is None
    assert (truth["regions"], truth["sites"]) == (3, ["edge-at", "edge-de", "edge-fr"])


def test_sites_only_where_the_traffic_is(monkeypatch: pytest.MonkeyPatch) -> None:
    # AT has 2 of the 33 plays (6%): under a 10% threshold it gets no site.
    monkeypatch.setattr(section, "MIN_SITE_SHARE", 0.1)
    monkeypatch.setattr(section, "CAPACITY_SHARE", 0.4)
    no_table = SimpleNamespace(system=SimpleNamespace(tables=()))
    truth = section.setup(no_table, catalogue(), [records()])  # type: ignore[arg-type]
    assert (truth["regions"], truth["sites"], len(truth["plays"])) == (3, ["edge-de", "edge-fr"], 33)


def _hints(stack: LocalStack) -> dict[tuple[str, int], list[HintEntry]]:
    table = _table(stack)
    return {(s, w): hints_for(table, s, window_id(START + timedelta(seconds=w * W))) for s in ("edge-at", "edge-de", "edge-fr") for w in (1, 2, 3)}


class Lru:
    """A byte-capacity LRU: what libCacheSim's LRU does (admit every miss that fits, evict the
    least recently used until it fits)."""

    def __init__(self, capacity: int) -> None:
        self.capacity, self.items = capacity, OrderedDict[str, int]()

    def get(self, title: str, size: int) -> bool:
        if title in self.items:
            self.items.move_to_end(title)
            return True
        if size <= self.capacity:
            while sum(self.items.values()) + size > self.capacity:
                self.items.popitem(last=False)
            self.items[title] = size
        return False


def test_section_scores_the_published_hints_against_the_plays(run: tuple[LocalStack, dict[str, Any]], tmp_path: Path) -> None:
    stack, truth = run
    result = section.collect(JobContext(stack=stack, out=tmp_path, truth={"cache": truth}, data_dir=None, quick=True))
    assert result is not None
    h = result.headline
    hints = _hints(stack)
    assert all(hints[(s, w)] for s in ("edge-de", "edge-fr") for w in (1, 2))  # history -> something to fill
    capacity = load_sites(_table(stack))[0].capacity_bytes
    budget = int(capacity * 0.9)
    assert all(sum(e.bytes for e in entries) <= budget for entries in hints.values())
    # Recompute every figure from the plays and the hints as published.
    region = {"edge-at": "AT", "edge-de": "DE", "edge-fr": "FR"}
    hits = reqs = hit_bytes = req_bytes = filled = useful = 0
    both_hits = 0
    per_window: dict[int, list[int]] = {1: [0, 0], 2: [0, 0]}
    reactive = {s: Lru(capacity - budget) for s in region}
    for w in (1, 2):
        for s, r in region.items():
            plays = [t for (pw, _, pr, t) in PLAYS if pw == w and pr == r]
            held = {e.title_id for e in hints[(s, w)]}
            added = [e for e in hints[(s, w)] if not e.kept]
            filled += sum(e.bytes for e in added)
            useful += sum(e.bytes for e in added if e.title_id in plays)
            for t in plays:
                reqs += 1
                req_bytes += _mb(t)
                per_window[w][1] += 1
                if t in held:
                    hits += 1
                    hit_bytes += _mb(t)
                    per_window[w][0] += 1
                if t in held or reactive[s].get(t, _mb(t)):
                    both_hits += 1
    assert (h["sites"], h["plays"], h["windows_scored"], h["hint_windows_published"], h["site_windows_published"]) == (3, len(PLAYS), 2, 3, 9)
    assert h["requests_scored"] == reqs == 21 and h["requests_before_first_hinted_window"] == 12
    assert h["hints_hit_ratio"] == round(hits / reqs, 4)
    assert h["hints_byte_hit_ratio"] == round(hit_bytes / req_bytes, 4)
    assert h["hints_bytes_filled"] == filled
    assert h["hints_useful_fill"] == round(useful / filled, 4)
    assert h["hints_churn_per_day"] == round(filled / (3 * capacity) / 0.5, 4)
    assert h["hints_reactive_hit_ratio"] == round(both_hits / reqs, 4)
    # LRU at the site's capacity over each site's whole sequence (window 0 warms it up); AT's
    # one scored request is a first request: a miss for every policy (the section's shortcut).
    lru_hits = 0
    for r in region.values():
        cache = Lru(capacity)
        for w, _, pr, t in PLAYS:
            if pr == r and cache.get(t, _mb(t)) and w > 0:
                lru_hits += 1
    assert h["lru_hit_ratio"] == round(lru_hits / reqs, 4)
    assert h["belady_hit_ratio"] >= h["lru_hit_ratio"]
    assert (h["s3_documents_agree"], h["s3_documents_differ"], h["s3_documents_missing"], h["site_windows_without_hints"]) == (6, 0, 0, 0)
    assert result.tables[2].rows[-1][:3] == ["edge-at", "AT", 1] and result.tables[2].rows[-1][5:] == [0.0, 0.0, 0.0]
    methods, windows, _ = result.tables[:3]
    assert [r[0] for r in methods.rows][:3] == ["cache hints", "cache hints + reactive LRU", "LRU"]
    assert methods.rows[0][1:3] == [reqs, hits] and methods.rows[2][1:3] == [reqs, lru_hits]
    assert {m for m, *_ in methods.rows} >= {"LFU", "ARC", "S3-FIFO", "WTinyLFU", "LRB", "Belady"}
    assert all(r[1] == reqs for r in methods.rows)
    # requests for a title the site saw earlier: window 1 DE a, a, b, s, s; FR d, d; window 2 DE c, e, a, s; FR d, a, d, s
    assert h["requests_seen_before_at_site"] == 7 + 8
    assert [(r[0], r[1], r[4], r[5]) for r in windows.rows] == [
        (window_id(START + timedelta(seconds=w * W)), per_window[w][1], seen, per_window[w][0]) for w, seen in ((1, 7), (2, 8))
    ]
    assert len(result.plots) == 1 and result.plots[0].stat().st_size > 10_000


def test_section_without_a_site_table_says_why(tmp_path: Path) -> None:
    with LocalStack.start(CACHE_SYSTEM, record_history=False) as st:
        result = section.collect(JobContext(stack=st, out=tmp_path, truth={}, data_dir=None, quick=True))
    assert result is not None and result.headline == {"sites": 0, "plays": 0}
    assert "No site table" in result.notes[0]


def test_query_site(run: tuple[LocalStack, dict[str, Any]]) -> None:
    stack, _ = run
    table = _table(stack)
    window, entries = latest_hints(table, "edge-fr")
    assert window == window_id(START + timedelta(seconds=3 * W))
    answer = queries.site(stack, " edge-fr ")
    assert (answer["site_id"], answer["region"], answer["found"], answer["window"]) == ("edge-fr", "FR", True, window)
    assert answer["window_end"] == window_id(START + timedelta(seconds=4 * W))
    capacity = load_sites(table)[0].capacity_bytes
    assert answer["capacity_bytes"] == capacity and answer["fill_budget_bytes"] == int(capacity * 0.9)
    assert [(e["rank"], e["title_id"], e["bytes"], e["kept"], e["reason"]) for e in answer["entries"]] == [
        (e.rank, e.title_id, e.bytes, e.kept, e.reason) for e in entries
    ]
    assert answer["used_bytes"] == sum(e.bytes for e in entries)
    assert [w["window"] for w in answer["history"]] == [window_id(START + timedelta(seconds=k * W)) for k in (3, 2, 1)]
    with pytest.raises(ValueError, match=r"^unknown site; the site table has edge-at, edge-de, edge-fr$"):
        queries.site(stack, "edge-xx")


def test_a_site_window_without_hints_counts_its_requests_as_misses(run: tuple[LocalStack, dict[str, Any]], tmp_path: Path) -> None:
    stack, truth = run  # runs last: it removes edge-fr's window-2 hints from the table
    table = _table(stack)
    window = window_id(START + timedelta(seconds=2 * W))
    table.delete_many([(i["pk"], i["sk"]) for i in table.query("hints#edge-fr", f"{window}#")])
    before = _hints(stack)
    assert before[("edge-fr", 2)] == []
    result = section.collect(JobContext(stack=stack, out=tmp_path, truth={"cache": truth}, data_dir=None, quick=True))
    assert result is not None
    h = result.headline
    assert h["site_windows_without_hints"] == 1 and h["requests_scored"] == 21 and h["s3_documents_agree"] == 5
    fr2 = [t for (w, _, r, t) in PLAYS if w == 2 and r == "FR"]
    hits = sum(t in {e.title_id for e in before[(s, w)]} for s, r in (("edge-at", "AT"), ("edge-de", "DE"), ("edge-fr", "FR"))
               for w in (1, 2) for (pw, _, pr, t) in PLAYS if pw == w and pr == r)
    assert len(fr2) == 5 and h["hints_hit_ratio"] == round(hits / 21, 4)
