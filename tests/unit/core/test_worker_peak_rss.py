"""A container's "Max Memory Used" is its own peak, not the runtime's that spawned it: Linux
carries the parent's ru_maxrss across fork+exec, so the worker reads VmHWM."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmHWM is Linux's /proc")
def test_peak_rss_is_the_workers_own() -> None:
    ballast = bytearray(400 * 1024 * 1024)
    for i in range(0, len(ballast), 4096):  # touch every page: the test process's peak is > 400 MB
        ballast[i] = 1
    code = "import resource; from streamsense_local.worker import _peak_rss_kb; print(_peak_rss_kb(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    own_kb, inherited_kb = map(int, subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split())
    del ballast
    assert inherited_kb > 400 * 1024  # what ru_maxrss would have reported
    assert own_kb < 150 * 1024
