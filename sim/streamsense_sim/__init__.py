"""streamsense's traffic simulator: a seeded, labeled period of a streaming service's events.

Python API::

    from streamsense_sim import SimConfig, Simulator, generate, write

    for event in generate(SimConfig(accounts=1_000, days=1, seed=7)):  # dicts, time-ordered
        ...
    sim = Simulator(config)
    for rec in sim.records():        # SimRecord(t_ms, line, kind, truth)
        kinesis.put(rec.line, partition_key=rec.account_id)
    write(config, Path("out"))       # events.jsonl, ground_truth.jsonl, exports/...

CLI: ``python -m streamsense_sim --accounts N --days D --seed S --out DIR [--data-dir ...]``.
"""

from streamsense_sim.config import ATTACK_TYPES, AttackRates, SimConfig
from streamsense_sim.core import SimRecord, Simulator, Summary, generate, write
from streamsense_sim.geo import vpn_asns

__all__ = [
    "ATTACK_TYPES",
    "AttackRates",
    "SimConfig",
    "SimRecord",
    "Simulator",
    "Summary",
    "generate",
    "vpn_asns",
    "write",
]
