"""One small simulated period shared by the simulator's tests (generated once per session)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from streamsense_sim import AttackRates, SimConfig, Simulator

# Attack rates are raised so that 600 accounts over two days carry every attack type.
SMALL = SimConfig(
    accounts=600,
    days=2,
    seed=11,
    attack_rates=AttackRates(
        account_takeover=700.0,
        credential_stuffing=170.0,
        impossible_travel=700.0,
        concurrent_streams=700.0,
        card_testing=340.0,
        stolen_card=500.0,
    ),
    signup_rate_per_day=0.01,
    trip_rate_per_day=0.03,
    block_size=250,
)


@dataclass
class Run:
    sim: Simulator
    lines: list[str]
    events: list[dict[str, Any]]
    truth: dict[str, dict[str, Any]]  # event_id -> ground truth row


@pytest.fixture(scope="session")
def small_run() -> Run:
    sim = Simulator(SMALL)
    records = list(sim.records())
    lines = [r.line for r in records]
    truth = {}
    for r in records:
        if r.truth is not None:
            row = json.loads(r.truth)
            truth[row["event_id"]] = row
    return Run(sim, lines, [json.loads(x) for x in lines], truth)


@pytest.fixture(scope="session")
def small_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from streamsense_sim import write

    out = tmp_path_factory.mktemp("sim-a")
    write(SMALL, out)
    return out
