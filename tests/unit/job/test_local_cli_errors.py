"""Command-line mistakes in the local CLI: a clear message on stderr and exit 2, decided before
a local stack starts (so none of these needs moto)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamsense_local.cli import main


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    out, err = capsys.readouterr()
    return int(exit_.value.code or 0), out, err


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({}, "fraud_scorer is invoked with a kinesis event (see events/fraud_scorer/); this payload is not an event any AWS trigger sends"),
        ([], "this payload is not an event any AWS trigger sends"),
        ({"Records": []}, "this payload is an empty Records list"),
        ({"type": "login", "account_id": "a1"}, "this payload is not an event any AWS trigger sends"),
        ({"Records": [{"eventSource": "aws:sqs", "receiptHandle": "r", "body": "{}"}]}, "this payload is a sqs event"),
    ],
)
def test_invoke_refuses_a_payload_no_trigger_of_the_function_sends(
    payload: object, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps(payload))
    code, out, err = _run(["invoke", "fraud_scorer", "--event", str(event)], capsys)
    assert code == 2
    assert out == ""
    assert message in err


def test_invoke_names_the_expected_kinds_of_a_function_with_two_triggers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # cache_hints reads the playback stream and fires on a schedule: both are named
    event = tmp_path / "event.json"
    event.write_text("{}")
    code, _, err = _run(["invoke", "cache_hints", "--event", str(event)], capsys)
    assert code == 2
    assert "cache_hints is invoked with a kinesis event or a schedule event" in err


def test_invoke_an_unknown_function_lists_the_functions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    event = tmp_path / "event.json"
    event.write_text("{}")
    code, out, err = _run(["invoke", "nope", "--event", str(event)], capsys)
    assert code == 2
    assert out == ""
    assert "no function named 'nope': choose from fraud_scorer" in err


def test_invoke_a_missing_event_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["invoke", "fraud_scorer", "--event", str(tmp_path / "missing.json")], capsys)
    assert code == 2
    assert "missing.json" in err


def test_replay_an_unknown_stream_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "e.jsonl"
    data.write_text("{}\n")
    code, out, err = _run(["replay", str(data), "--stream", "nope"], capsys)
    assert (code, out) == (2, "")
    assert "unknown stream 'nope': choose from" in err


def test_a_malformed_segment_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(["query", "segment", "US/wifi"], capsys)
    assert (code, out) == (2, "")
    assert "a segment is REGION/NETWORK/DEVICE (e.g. US/wifi/tv), not 'US/wifi'" in err


def test_invoke_refuses_a_batch_that_mixes_in_other_records(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = json.loads((Path(__file__).resolve().parents[3] / "events/fraud_scorer/everyday-activity.json").read_text())
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"Records": [good["Records"][0], 1]}))
    code, out, err = _run(["invoke", "fraud_scorer", "--event", str(event)], capsys)
    assert (code, out) == (2, "")
    assert "every record of a kinesis event must be a kinesis record" in err


def test_tick_a_function_without_a_schedule(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(["tick", "fraud_scorer"], capsys)
    assert (code, out) == (2, "")
    assert "fraud_scorer has no schedule trigger: tick one of cache_hints" in err


@pytest.mark.parametrize("bad_id", ["", "ml 414", "../../etc/passwd", "x" * 129, "a/b"])
def test_a_malformed_id_is_a_usage_error(bad_id: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(["query", "member", bad_id], capsys)
    assert (code, out) == (2, "")
    assert "is not an id (letters, digits and . _ : @ -, at most 128)" in err


def test_query_without_a_saved_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(["query", "member", "ml-414", "--state", str(tmp_path / "none")], capsys)
    assert (code, out) == (2, "")
    assert f"no saved run at {tmp_path / 'none'}: run `make run` first" in err


def test_a_damaged_saved_run_names_the_file(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from streamsense_local.job import snapshot

    from infra.system import SYSTEM

    (tmp_path / "tables").mkdir()
    (tmp_path / "counts.json").write_text("{}")
    (tmp_path / "tables" / "recs.json").write_text("[{")
    written: list[str] = []
    stack = SimpleNamespace(system=SYSTEM, batch_write_raw=lambda table, items: written.append(table))
    with pytest.raises(snapshot.SnapshotError, match=r"recs.json: Expecting property name"):
        snapshot.load(stack, tmp_path, tables=("recs",), buckets=(), queues=False)  # type: ignore[arg-type]
    with pytest.raises(snapshot.SnapshotError, match=r"decisions.json: \[Errno 2\]"):
        snapshot.load(stack, tmp_path, tables=("decisions",), buckets=(), queues=False)  # type: ignore[arg-type]
    (tmp_path / "tables" / "recs.json").write_text("[]")
    snapshot.load(stack, tmp_path, tables=("recs",), buckets=(), queues=False)  # type: ignore[arg-type]
    assert written == ["recs"]
