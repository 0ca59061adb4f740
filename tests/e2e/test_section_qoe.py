"""The report's QoE section and the QoE queries on a tiny local-stack run: hand-made playback
telemetry through qoe_hints (Kinesis -> Lambda -> DynamoDB), then collect() without team data
(hints only) and with it (players on the held-out trace half, against the anchors), and the
segment queries."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from streamsense.events import PlaybackHeartbeat, PlaybackStart, parse_event
from streamsense.qoe.aggregate import QoeRecord, aggregate
from streamsense.qoe.hints import publish_hints, read_hint
from streamsense.qoe.segments import Segment
from streamsense.storage import MemoryTable
from streamsense_bench.abr_anchors import RobustMPC
from streamsense_bench.abr_player import HintedMPC, PlayerHints
from streamsense_bench.abr_sim import Trace, load_envivio, simulate, summarize, trace_files
from streamsense_bench.abr_telemetry import shard_of
from streamsense_local.job.queries import qoe as queries
from streamsense_local.job.sections import JobContext
from streamsense_local.job.sections import qoe as section
from streamsense_local.stack import LocalStack

from infra.system import SYSTEM, System

QOE_SYSTEM = System(
    name="qoe-e2e",
    streams=tuple(s for s in SYSTEM.streams if s.name == "playback"),
    tables=tuple(t for t in SYSTEM.tables if t.name == "qoe"),
    buckets=(),
    queues=tuple(q for q in SYSTEM.queues if q.name in {"quarantine", "failures"}),
    functions=(SYSTEM.function("qoe_hints"),),
)
pytestmark = pytest.mark.xdist_group("qoe_section_stack")
START = datetime(2024, 12, 2, 20, 0, tzinfo=UTC)
PARIS = {"ip": "192.0.2.10", "asn": 3215, "country": "FR", "lat": 48.85, "lon": 2.35}
OSLO = {"ip": "198.51.100.7", "asn": 2119, "country": "NO", "lat": 59.91, "lon": 10.75}
# (account, network, network type, device, heartbeats as (position s, kbps, rebuffer ms))
SESSIONS = [
    ("acc-fr-2", PARIS, "wifi", "web", [(4, 2000.0, 0), (30, 3000.0, 0), (60, 1500.0, 500), (90, 4500.0, 0), (120, 2500.0, 0)]),
    ("acc-fr-3", PARIS, "wifi", "web", [(4, 5000.0, 0), (30, 6000.0, 0), (60, 4000.0, 0), (90, 7000.0, 0), (120, 3000.0, 0)]),
    ("acc-fr-5", PARIS, "wifi", "web", [(4, 800.0, 0), (30, 1200.0, 0), (60, 900.0, 0), (90, 2000.0, 0), (120, 1100.0, 0)]),
    ("acc-fr-8", PARIS, "wifi", "web", [(4, 3500.0, 0), (30, 2500.0, 0), (60, 3600.0, 0), (90, 2400.0, 0), (120, 3900.0, 0)]),
    ("acc-fr-9", OSLO, "cellular_4g", "mobile", [(4, 9000.0, 0), (30, 12000.0, 0), (60, 6000.0, 0)]),
]


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def events() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, (account, network, net_type, device, beats) in enumerate(SESSIONS):
        t0 = START + timedelta(minutes=10 * i)
        common = {
            "session_id": f"sess-{i}",
            "profile_id": f"{account}-p0",
            "title_id": "m-1",
            "device": {"device_id": f"dev-{account}", "device_type": device},
            "network": network,
            "network_type": net_type,
        }
        out.append(
            {
                "type": "playback_start", "version": 1, "event_id": f"start-{i}", "occurred_at": _iso(t0), "account_id": account,
                "payload": {**common, "startup_ms": 900 + 100 * i, "audio_language": "fr", "subtitle_language": "off"},
            }
        )
        for k, (pos, kbps, rebuf) in enumerate(beats):
            out.append(
                {
                    "type": "playback_heartbeat", "version": 1, "event_id": f"hb-{i}-{k}", "occurred_at": _iso(t0 + timedelta(seconds=pos + 1)),
                    "account_id": account,
                    "payload": {**common, "position_s": float(pos), "qoe": {"throughput_kbps": kbps, "bitrate_kbps": 1200.0, "rebuffer_ms": rebuf, "buffer_s": 8.0}},
                }
            )
    return out


def reference_hint(segment: Segment) -> dict[str, Any] | None:
    """The same events through qoe_hints' domain code in one ordered pass, outside the stack."""
    table = MemoryTable()
    parsed = [parse_event(__import__("json").dumps(e)) for e in events()]
    records = [QoeRecord(e, "one", i) for i, e in enumerate(parsed) if isinstance(e, PlaybackStart | PlaybackHeartbeat)]
    now = START + timedelta(hours=2)
    report = aggregate(table, records, now)
    publish_hints(table, report.segments, now, force=True)
    return read_hint(table, segment)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    # One shard holds every session: one batch, so the published hints saw every event.
    assert {shard_of(s[0], 2) for s in SESSIONS} == {0}
    with LocalStack.start(QOE_SYSTEM) as st:
        assert st.put_events(events()) == {"playback": len(events())}
        st.drain()
        assert st.receive_all("quarantine") == [] and st.receive_all("failures") == []
        yield st


def test_without_team_data_reports_the_hints_only(stack: LocalStack, tmp_path: Path) -> None:
    ctx = JobContext(stack=stack, out=tmp_path, truth={"simulator": {}}, data_dir=None, quick=True)
    result = section.collect(ctx)
    assert result is not None
    # 2 segments; hint documents: 2 x (segment, region x network, network) + all traffic = 7
    assert result.headline == {"segments": 2, "sessions": 5, "hint_documents": 7, "hints_from_half": "all"}
    (hints,) = result.tables
    assert [r[0] for r in hints.rows] == ["wifi", "cellular_4g"]
    wifi = reference_hint(Segment("DE", "wifi", "web"))  # an unseen segment gets the network's hint
    assert wifi is not None and wifi["level"] == "n"
    row = hints.rows[0]
    assert row[1] == wifi["startup"]["bitrate_kbps"] and row[2] == wifi["prediction"]["discount"]
    assert row[4] == wifi["buffer"]["target_s"]
    # 200 samples are needed at a level, so every part falls back to the coarsest one with data:
    # all 23 heartbeats, 18 prediction ratios (each session's 2nd beat on), 5 early samples.
    assert row[8:13] == [23, 18, 5, "all / all / all", 4]
    assert any("No ABR traces" in n for n in result.notes)
    assert any("assumed run.py's rule ('all'" in n for n in result.notes)
    assert result.plots == []


def _held_out(data_dir: Path, family: str, positions: list[int], scale: float) -> list[Trace]:
    alive = [t for t in (Trace.load(p) for p in trace_files(data_dir, family)[0::2]) if t.dead_s <= 60.0]
    return [Trace(alive[i].name, alive[i].durations_s.tolist(), (alive[i].bandwidth_kbps * scale).tolist()) for i in positions]


@pytest.mark.data
def test_players_on_the_half_the_hints_never_saw(stack: LocalStack, tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(section, "QUICK_TRACES", 4)  # a tiny run: 4 traces per network type
    truth = {"simulator": {"config": {"trace_split": "eval", "heartbeat_s": 900}}}
    ctx = JobContext(stack=stack, out=tmp_path, truth=truth, data_dir=data_dir, quick=True)
    result = section.collect(ctx)
    assert result is not None
    h = result.headline
    assert (h["hints_from_half"], h["evaluated_half"], h["traces_evaluated"]) == ("eval", "train", 8)
    video = load_envivio(data_dir)
    # 4 traces evenly spaced over the sorted, alive training half: round(linspace(0, n - 1, 4)).
    cases = {
        "wifi": (_held_out(data_dir, "fcc-sd", [0, 166, 333, 499], 1.0), Segment("FR", "wifi", "web")),
        "cellular_4g": (_held_out(data_dir, "norway-3g", [0, 11, 23, 34], 4.0), Segment("NO", "cellular_4g", "mobile")),
    }
    for network, (traces, segment) in cases.items():
        hint = PlayerHints.from_hint(reference_hint(segment))
        assert hint.startup_kbps is not None and hint.discount is not None and hint.discount < 1.0
        product = summarize([simulate(t, video, HintedMPC(hint)) for t in traces])
        mpc = summarize([simulate(t, video, RobustMPC()) for t in traces])
        assert h[f"{network}_traces"] == 4
        assert h[f"{network}_product_qoe_mean"] == round(product.qoe_mean, 2)
        assert h[f"{network}_product_qoe_median"] == round(product.qoe_median, 2)
        assert h[f"{network}_robust_mpc_qoe_mean"] == round(mpc.qoe_mean, 2)
        assert h[f"{network}_robust_mpc_qoe_median"] == round(mpc.qoe_median, 2)
        assert h[f"{network}_qoe_mean_ratio"] == round(1 + (product.qoe_mean - mpc.qoe_mean) / abs(mpc.qoe_mean), 4)
        assert (h[f"{network}_early_stalls_product"], h[f"{network}_early_stalls_robust_mpc"]) == (product.early_stalls, mpc.early_stalls)
    _, qoe, goal, *_ = result.tables
    assert qoe.title == "QoE on held-out traces (training half (even sorted file names)), per network type"
    assert [r[1] for r in qoe.rows[:5]] == ["buffer_based (anchor)", "rate_based (anchor)", "bola (anchor)", "robust_mpc (anchor)", "streamsense (hinted)"]
    assert [r[:4] for r in goal.rows] == [["wifi", "fcc-sd", 1, 4], ["cellular_4g", "norway-3g", 1, 1]]
    assert any("came from the evaluation half (odd sorted file names)" in n and "evaluated on the training half" in n for n in result.notes)
    assert any("Quick mode" in n and "wifi 4 of 500, cellular_4g 4 of 35" in n for n in result.notes)
    assert len(result.plots) == 1 and Path(result.plots[0]).stat().st_size > 10_000
    assert np.isfinite(h["wifi_qoe_median_ratio"])


def test_queries(stack: LocalStack) -> None:
    own = queries.segment(stack, "fr", "wifi", "web")
    assert (own["found"], own["served_from"], own["fallback"]) == (True, "rnd", False)
    assert own["hint"]["segment"] == {"region": "FR", "network": "wifi", "device": "web"}
    assert own["hint"]["sessions"] == 4
    ref = reference_hint(Segment("FR", "wifi", "web"))
    assert ref is not None and own["hint"]["prediction"]["discount"] == ref["prediction"]["discount"]
    unseen = queries.segment(stack, "DE", "wifi", "console")  # console is a tv-class device
    # not found (exit 1): the answer is the coarser hint a player of an unseen segment fetches
    assert (unseen["segment"], unseen["found"], unseen["served_from"], unseen["served_from_name"], unseen["fallback"]) == (
        {"region": "DE", "network": "wifi", "device": "tv"}, False, "n", "network", True)
    assert queries.segment(stack, "DE", "ethernet", "tv")["served_from"] == "all"
    with pytest.raises(ValueError, match="unknown device"):
        queries.segment(stack, "FR", "wifi", "fridge")
    with pytest.raises(ValueError, match="unknown network 'carrierpigeon'"):
        queries.segment(stack, "FR", "carrierpigeon", "tv")
    with pytest.raises(ValueError, match="unknown network ''"):
        queries.segment(stack, "FR", "", "tv")
    with pytest.raises(ValueError, match="unknown region 'USA'"):
        queries.segment(stack, "USA", "wifi", "tv")
    assert queries.segments(stack) == [
        {"segment": {"region": "FR", "network": "wifi", "device": "web"}, "sessions": 4, "heartbeats": 20, "stall_share": 0.05, "rebuffer_s": 0.5},
        {"segment": {"region": "NO", "network": "cellular_4g", "device": "mobile"}, "sessions": 1, "heartbeats": 3, "stall_share": 0.0, "rebuffer_s": 0.0},
    ]
    assert len(queries.segments(stack, top=1)) == 1
