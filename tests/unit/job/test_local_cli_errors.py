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
    assert "is not an id (a letter or digit, then letters, digits and . _ : @ -, at most 128)" in err


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


@pytest.mark.parametrize(
    ("record", "missing"),
    [
        ({"eventSource": "aws:kinesis", "kinesis": {"sequenceNumber": "1"}}, "record 0 of this kinesis event has no kinesis.data (str)"),
        ({"eventSource": "aws:kinesis", "kinesis": {"sequenceNumber": "1", "data": 7}}, "has no kinesis.data (str)"),
    ],
)
def test_invoke_refuses_a_record_without_the_fields_a_handler_reads(
    record: dict, missing: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"Records": [record]}))
    code, out, err = _run(["invoke", "fraud_scorer", "--event", str(event)], capsys)
    assert (code, out) == (2, "")
    assert missing in err


def test_invoke_refuses_an_s3_record_without_a_key_and_an_sqs_record_without_a_body(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "b"}, "object": {}}}]}))
    code, _, err = _run(["invoke", "recs_trainer", "--event", str(event)], capsys)
    assert code == 2
    assert "record 0 of this s3 event has no s3.object.key (str)" in err
    event.write_text(json.dumps({"Records": [{"eventSource": "aws:sqs", "messageId": "m1", "body": {"case": 1}}]}))
    code, _, err = _run(["invoke", "investigation", "--event", str(event)], capsys)
    assert code == 2
    assert "record 0 of this sqs event has no body (str)" in err


@pytest.mark.parametrize(
    ("s3", "message"),
    [
        ("exports", "--s3 takes BUCKET/KEY with a key that names an object"),
        ("exports/", "--s3 takes BUCKET/KEY with a key that names an object"),
        ("", "unknown bucket '' (logical name)"),
        ("nope/key.csv", "unknown bucket 'nope' (logical name)"),
    ],
)
def test_replay_s3_needs_a_known_bucket_and_a_key(s3: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "day.csv"
    data.write_text("member,title\n")
    code, out, err = _run(["replay", str(data), "--s3", s3], capsys)
    assert (code, out) == (2, "")
    assert message in err


def test_replay_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(["replay", str(tmp_path / "none.jsonl")], capsys)
    assert (code, out) == (2, "")
    assert "none.jsonl: no such file" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["replay", "x.jsonl", "--timeout", "0"],
        ["replay", "x.jsonl", "--timeout", "nan"],
        ["perf", "--batch-sizes", "100,0"],
        ["perf", "--batch-sizes", "100,abc"],
        ["perf", "--repeat", "0"],
        ["perf", "--records", "-5"],
        ["perf", "--consumers", "0"],
        ["perf", "--shards", "x"],
    ],
)
def test_out_of_range_numbers_are_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(argv, capsys)
    assert (code, out) == (2, "")
    assert "error: argument" in err


def test_workdir_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    afile = tmp_path / "file"
    afile.write_text("x")
    code, out, err = _run(["describe", "--workdir", str(afile)], capsys)
    assert (code, out) == (2, "")
    assert f"--workdir {afile} is a file, not a folder" in err


def test_run_refuses_a_state_folder_that_is_not_a_saved_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # save() replaces the folder: a mistyped --state must not delete someone's files
    precious = tmp_path / "home"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    code, out, err = _run(["run", "--quick", "--state", str(precious)], capsys)
    assert (code, out) == (2, "")
    assert "holds something other than a saved run" in err
    assert (precious / "thesis.tex").read_text() == "years of work"
    code, _, err = _run(["run", "--quick", "--state", str(precious / "thesis.tex")], capsys)
    assert code == 2
    assert "is a file, not a folder" in err
    code, _, err = _run(["run", "--quick", "--out", str(precious / "thesis.tex")], capsys)
    assert code == 2
    assert "--out" in err and "is a file, not a folder" in err


def test_a_saved_run_whose_items_the_local_table_refuses(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from streamsense_local.job import snapshot

    from infra.system import SYSTEM

    def refuse(table: str, items: list) -> None:
        raise RuntimeError("loading recs failed: HTTP 500: b'ValidationException'")

    (tmp_path / "tables").mkdir()
    (tmp_path / "counts.json").write_text("{}")
    stack = SimpleNamespace(system=SYSTEM, batch_write_raw=refuse)
    for content, detail in (('[{"pk": {"S": "x"}}]', "HTTP 500"), ('{"pk": 1}', "not a list of DynamoDB items"), ("[1, 2]", "not a list")):
        (tmp_path / "tables" / "recs.json").write_text(content)
        with pytest.raises(snapshot.SnapshotError, match=rf"recs.json: .*{detail}"):
            snapshot.load(stack, tmp_path, tables=("recs",), buckets=(), queues=False)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("segment", "message"),
    [
        ("USA/wifi/tv", "unknown region 'USA'"),
        ("US/5g/tv", "unknown network '5g'"),
        ("US/wifi/toaster", "unknown device 'toaster'"),
    ],
)
def test_an_unknown_segment_part_is_refused_before_the_state_loads(
    segment: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # no saved run at --state: the segment is checked first, so the message is about it
    code, out, err = _run(["query", "segment", segment, "--state", str(tmp_path / "none")], capsys)
    assert (code, out) == (2, "")
    assert message in err


def test_run_refuses_a_destination_it_cannot_write_before_the_replay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # found after minutes of replay before: the folder's parent is a file, so it cannot be made
    monkeypatch.delenv("STREAMSENSE_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    afile = tmp_path / "afile"
    afile.write_text("x")
    code, out, err = _run(["run", "--quick", "--out", str(tmp_path / "out"), "--state", str(afile / "state")], capsys)
    assert (code, out) == (2, "")
    assert f"--state {afile / 'state'}: cannot write there" in err
    code, _, err = _run(["run", "--quick", "--out", str(afile / "out")], capsys)
    assert code == 2
    assert f"--out {afile / 'out'}: cannot write there" in err


def test_run_refuses_a_data_dir_that_is_set_but_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # a typo must not quietly become a simulator-only report
    monkeypatch.setenv("STREAMSENSE_DATA_DIR", str(tmp_path / "typo"))
    code, out, err = _run(["run", "--quick", "--out", str(tmp_path / "out")], capsys)
    assert (code, out) == (2, "")
    assert f"STREAMSENSE_DATA_DIR={tmp_path / 'typo'} is not a folder" in err
    assert not (tmp_path / "out").exists()


def test_the_default_data_dir_may_be_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from streamsense_local.job.run import data_dir_from_env

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STREAMSENSE_DATA_DIR", str(tmp_path / "data"))  # what the Makefile exports
    assert data_dir_from_env() is None
    monkeypatch.delenv("STREAMSENSE_DATA_DIR")
    assert data_dir_from_env() is None
    (tmp_path / "data").mkdir()
    assert data_dir_from_env() == Path("data")


def test_invoke_an_event_file_that_is_not_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    event = tmp_path / "event.json"
    event.write_text('{"Records": [\n')
    code, out, err = _run(["invoke", "fraud_scorer", "--event", str(event)], capsys)
    assert (code, out) == (2, "")
    assert f"{event} is not a JSON event (Expecting value: line 2 column 1" in err
    code, _, err = _run(["invoke", "fraud_scorer", "--event", str(tmp_path)], capsys)
    assert code == 2
    assert f"{tmp_path} is a folder, not an event file" in err


def test_replay_a_folder_or_a_file_without_events(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["replay", str(tmp_path)], capsys)
    assert code == 2
    assert f"{tmp_path} is a folder, not a file" in err
    blank = tmp_path / "blank.jsonl"
    blank.write_text("\n  \n")
    code, _, err = _run(["replay", str(blank)], capsys)
    assert code == 2
    assert f"{blank} holds no events (every line is blank)" in err


def test_ctrl_c_is_a_message_and_exit_130(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from streamsense_local import cli

    def interrupted(_: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_job", interrupted)
    code, out, err = _run(["run", "--quick"], capsys)
    assert (code, out, err) == (130, "", "streamsense: interrupted\n")
