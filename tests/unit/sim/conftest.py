"""Fixtures of the simulator's tests: one small period, generated once per session."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sim_case import SMALL, Run
from streamsense_sim import Simulator


@pytest.fixture(scope="session")
def small_run() -> Run:
    sim = Simulator(SMALL)
    records = list(sim.records())
    lines = [r.line for r in records]
    truth = {}
    traps = {}
    for r in records:
        if r.truth is not None:
            row = json.loads(r.truth)
            truth[row["event_id"]] = row
        if r.trap is not None:
            row = json.loads(r.trap)
            traps[row["event_id"]] = row
    return Run(sim, lines, [json.loads(x) for x in lines], truth, traps)


@pytest.fixture(scope="session")
def small_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from streamsense_sim import write

    out = tmp_path_factory.mktemp("sim-a")
    write(SMALL, out)
    return out
