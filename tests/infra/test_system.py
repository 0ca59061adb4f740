"""The system description's own helpers."""

from __future__ import annotations

from infra.system import SYSTEM


def test_only_keeps_what_the_functions_trigger_on_and_access() -> None:
    part = SYSTEM.only("part", "cache_hints", "investigation")
    assert [f.name for f in part.functions] == ["cache_hints", "investigation"]
    names = {r.name for g in (part.streams, part.tables, part.buckets, part.queues) for r in g}
    # cache_hints: its stream, table, bucket; investigation: its queue and that queue's DLQ
    assert {"playback", "cache", "hints", "investigations", "investigations_dlq", "quarantine", "failures"} <= names
    assert not names & {"recs", "qoe", "models", "exports"}
    part.validate()
