"""Bad settings on the simulator's command line end in a one-line usage error (exit 2), never a
traceback or a run that says it used data it did not find."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamsense_sim.__main__ import main


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--accounts", "-5"], "accounts must be >= 1"),
        (["--days", "0"], "days must be >= 1"),
        (["--home-row-share", "1.5"], "home_row_share must be within [0, 1]"),
        (["--countries", "XX,YY"], "unknown country codes: ['XX', 'YY']"),
        (["--data-dir", "/nonexistent"], "--data-dir /nonexistent: not a folder"),
        (["--start", "0001-01-01"], "start must be on or after 1971-01-01"),
        (["--start", "9999-12-31"], "the period must end before 2200-01-01"),
        (["--start", "2199-12-31", "--days", "2"], "the period must end before 2200-01-01"),
        (["--attack-scale", "-2"], "attack rate account_takeover must be a finite number >= 0, not -60.0"),
        (["--rate-card-testing", "nan"], "attack rate card_testing must be a finite number >= 0, not nan"),
        (["--countries", " , "], "countries: give at least one ISO code"),
    ],
)
def test_bad_settings_are_usage_errors(args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        # a small run (argparse keeps the last value: the case's own --accounts wins)
        main(["--accounts", "3", *args, "--out", str(tmp_path / "out"), "--no-progress"])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_an_unwritable_output_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(SystemExit) as exit_:
        main(["--accounts", "3", "--no-data", "--out", str(blocker), "--no-progress"])
    assert exit_.value.code == 2
    assert f"--out {blocker}:" in capsys.readouterr().err
