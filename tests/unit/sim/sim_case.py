"""The small simulated period the simulator's tests share (its config and its parsed run)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streamsense_sim import AttackRates, SimConfig, Simulator

__all__ = ["SMALL", "Run", "Simulator"]

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
    # Raised too, so that every legitimate trap occurs several times.
    second_home_share=0.15,
    card_expiry_share=0.3,
    block_size=250,
)


@dataclass
class Run:
    sim: Simulator
    lines: list[str]
    events: list[dict[str, Any]]
    truth: dict[str, dict[str, Any]]  # event_id -> ground truth row (attack events)
    traps: dict[str, dict[str, Any]]  # event_id -> legit trap row

    def trapped(self, event: dict[str, Any], kind: str) -> bool:
        row = self.traps.get(event["event_id"])
        return row is not None and kind in row["traps"]
