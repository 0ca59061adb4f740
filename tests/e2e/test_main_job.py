"""The main job end to end (`make run --quick` on the team data): real MovieLens, handbook and
simulator traffic through every function via the local runtime's event-source mappings, then
the report and `query` on the saved state."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("main_job")]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def quick_run(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("job")
    from streamsense_local.job import run as job

    # its own state folder: the developer's own last run stays untouched
    result = job.run(quick=True, data_dir=data_dir, out=out / "report", state_dir=out / "state")
    return out, result


def test_every_function_received_and_applied_its_records(quick_run: tuple[Path, dict]) -> None:
    out, result = quick_run
    report = json.loads((out / "report" / "report.json").read_text())
    platform = report["sections"]["Functions: events applied, quarantined, retried"]
    assert platform["function_errors_of_built_functions"] == 0
    # every declared function has its code, and nothing was given up to the on-failure queue
    assert platform["functions_not_built"] == []
    assert platform["function_errors"] == 0
    assert platform["on_failure_messages"] == 0
    # every record a built stream consumer received ended applied, skipped or quarantined
    per = platform["per_function"]
    playback = ["recs_realtime", "delivery_prefs", "qoe_hints", "content_bandit"]
    for name in [*playback, "fraud_scorer"]:
        row = per[name]
        assert row["retried"] == 0 and row["to_on_failure"] == 0, name
        assert row["applied"] + row["skipped"] + row["quarantined"] == row["records_in"], name
    # the playback consumers all read the whole playback stream; fraud_scorer reads both streams
    assert len({per[n]["records_in"] for n in playback}) == 1
    assert per["fraud_scorer"]["records_in"] > per["recs_realtime"]["records_in"] > 1000
    # cache_hints reads the playback stream and also gets its fill-window schedule events
    assert per["cache_hints"]["records_in"] > per["recs_realtime"]["records_in"]
    assert per["cache_hints"]["errors"] == 0
    # recs_trainer: the catalogue's movies.csv and tags.csv (train nothing), then the plays export
    assert per["fraud_trainer"]["records_in"] == 1 and per["recs_trainer"]["records_in"] == 3
    # ... and each S3 object was applied (a trainer applies whole objects, not stream records)
    assert per["fraud_trainer"]["applied"] == 1 and per["recs_trainer"]["applied"] == 3
    # every function that ran fits its declared memory and timeout, with room (the run measures both)
    sizing = platform["sizing"]
    assert set(sizing) == set(per) and all(v["peak_rss_mb"] > 50 for v in sizing.values())
    assert max(v["memory_used"] for v in sizing.values()) < 0.9
    assert max(v["timeout_used"] for v in sizing.values()) < 0.5
    inputs = " ".join(report["inputs"])
    assert "MovieLens" in inputs and "Handbook" in inputs and "Simulator" in inputs
    assert set(result["timings_s"]) >= {"inputs_s", "trainers_s", "replay_s", "report_s", "wall_s"}


def test_report_html_has_every_section_and_its_plots(quick_run: tuple[Path, dict]) -> None:
    out, _ = quick_run
    html = (out / "report" / "report.html").read_text()
    for title in ("This run next to the benchmarks", "Fraud:", "Recommendations:", "Predictive caching",
                  "ABR QoE", "Delivery defaults", "Dynamic content", "Functions: events applied"):
        assert title in html
    images = [line for line in html.splitlines() if "<img src=" in line]
    assert images, "the report has no plots"
    for line in images:
        src = line.split("src='", 1)[1].split("'", 1)[0]
        assert (out / "report" / src).stat().st_size > 1000


def test_state_is_saved_for_query(quick_run: tuple[Path, dict]) -> None:
    out, result = quick_run
    counts = json.loads((out / "state" / "counts.json").read_text())
    for table in ("decisions", "recs", "qoe", "content"):
        assert counts[f"table:{table}"] > 0, table
    assert counts["bucket:models"] >= 2  # a recs and a fraud model version with manifests
    assert result["state"] == counts


def _query(out: Path, kind: str, key: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "streamsense_local", "query", kind, key, "--state", str(out / "state")],
        capture_output=True, text=True, cwd=REPO, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-1000:] + proc.stderr[-2000:]
    answer: dict = json.loads(proc.stdout)
    return answer


def test_query_reads_the_saved_run(quick_run: tuple[Path, dict]) -> None:
    out, _ = quick_run
    rows = json.loads((out / "state" / "tables" / "content.json").read_text())
    title = next(r["pk"]["S"] for r in rows if r["pk"]["S"].startswith("title#")).removeprefix("title#")
    answer = _query(out, "variants", title)
    assert answer["title_id"] == title and answer["found"] is True
    assert sum(v["shown"] for v in answer["variants"].values()) == answer["impressions"] > 0
    assert abs(sum(v["p_show"] for v in answer["variants"].values()) - 1) < 1e-3
    assert answer["would_show"] in answer["variants"]


def test_recs_section_scores_the_trainers_lists_and_the_realtime_updates(quick_run: tuple[Path, dict]) -> None:
    out, _ = quick_run
    report = json.loads((out / "report" / "report.json").read_text())
    recs = next(v for k, v in report["sections"].items() if k.startswith("Recommendations:"))
    # the hooks ran: the trainer's lists before the replay were captured and scored
    assert recs["evaluated_members"] > 0 and recs["evaluated_future_plays"] > 0
    assert recs["realtime_members_with_list"] == recs["replayed_members"]
    # already-watched titles never reach a list, before or after the replay
    assert recs["trainer_lists_checked"] > 0 and recs["trainer_watched_titles_in_lists"] == 0
    assert recs["realtime_lists_checked"] > 0 and recs["realtime_watched_titles_in_lists"] == 0


def test_cache_section_scores_published_hints(quick_run: tuple[Path, dict]) -> None:
    out, _ = quick_run
    report = json.loads((out / "report" / "report.json").read_text())
    cache = next(v for k, v in report["sections"].items() if k.startswith("Predictive caching"))
    assert cache["sites"] > 0 and cache["windows_scored"] >= 1 and cache["requests_scored"] > 0
    assert cache["s3_documents_agree"] > 0 and cache["s3_documents_differ"] == 0 and cache["s3_documents_missing"] == 0
    glance = report["sections"]["This run next to the benchmarks"]
    assert glance["figures_compared"] == glance["agree"] + glance["disagree"]


def test_query_exit_status_says_whether_the_run_knows_the_id(quick_run: tuple[Path, dict]) -> None:
    out, _ = quick_run

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "streamsense_local", "query", *argv, "--state", str(out / "state")],
                              capture_output=True, text=True, cwd=REPO, timeout=300, check=False)

    unknown = run("account", "no-such-account")
    assert unknown.returncode == 1, unknown.stderr[-2000:]
    assert json.loads(unknown.stdout)["found"] is False
    malformed = run("segment", "US")
    assert malformed.returncode == 2 and "REGION/NETWORK/DEVICE" in malformed.stderr and malformed.stdout == ""
