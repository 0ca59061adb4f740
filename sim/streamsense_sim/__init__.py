"""streamsense's traffic simulator: a seeded, labeled period of a streaming service's events.

Python API::

    from streamsense_sim import SimConfig, Simulator, generate, write

    for event in generate(SimConfig(accounts=1_000, days=1, seed=7)):  # dicts, time-ordered
        ...
    sim = Simulator(config)
    for rec in sim.records():        # SimRecord(t_ms, line, kind, truth, trap)
        kinesis.put(rec.stream, rec.line, partition_key=rec.account_id)
    write(config, Path("out"))       # events.jsonl, ground_truth.jsonl, legit_traps.jsonl, ...

``rec.truth`` is the ground-truth line of an attack event (None otherwise), ``rec.trap`` the
line of a legitimate event that looks like fraud (``traps``), ``rec.stream`` the Kinesis stream
the event type goes to (``infra.system.SYSTEM``: impressions and plays on ``playback``).

CLI: ``python -m streamsense_sim --accounts N --days D --seed S --out DIR [--data-dir ...]``.
"""

from streamsense_sim.config import ATTACK_TYPES, AttackRates, SimConfig
from streamsense_sim.core import SimRecord, Simulator, Summary, generate, write
from streamsense_sim.geo import vpn_asns
from streamsense_sim.traps import TRAP_KINDS

__all__ = [
    "ATTACK_TYPES",
    "TRAP_KINDS",
    "AttackRates",
    "SimConfig",
    "SimRecord",
    "Simulator",
    "Summary",
    "generate",
    "vpn_asns",
    "write",
]
