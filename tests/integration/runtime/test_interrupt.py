"""Ctrl-C reaches the whole process group (the runtime, moto's server, every container): the
runtime must stop cleanly, not hang on a dead container nor trace back on a dead server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def _start(argv: list[str], tmp_path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "streamsense_local", *argv, "--workdir", str(tmp_path / "stack")],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip


def _wait_for(proc: subprocess.Popen[str], text: str, timeout_s: float = 120.0) -> None:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    for line in proc.stdout:
        if text in line:
            return
        if time.monotonic() > deadline:
            break
    proc.kill()
    pytest.fail(f"never printed {text!r}: {proc.stderr.read() if proc.stderr else ''}")


def test_ctrl_c_stops_up_with_its_summary(tmp_path: Path) -> None:
    proc = _start(["up"], tmp_path)
    _wait_for(proc, "function logs:")
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "on-failure destination (failures queue): 0 message(s)" in out  # read from moto after Ctrl-C


def test_ctrl_c_stops_a_replay_mid_drain(tmp_path: Path) -> None:
    sim = tmp_path / "sim"
    subprocess.run([sys.executable, "-m", "streamsense_sim", "--accounts", "1000", "--days", "1", "--seed", "3",
                    "--out", str(sim), "--no-data", "--no-progress"], check=True, cwd=REPO, capture_output=True)  # fmt: skip
    events = sim / "events.jsonl"
    proc = _start(["replay", str(events)], tmp_path)
    _wait_for(proc, "put ")
    time.sleep(2.0)  # the mappings are delivering
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.rstrip().endswith("streamsense: interrupted")
    assert "Traceback" not in err
