"""The system description's own helpers."""

from __future__ import annotations

from infra.system import SYSTEM, S3Trigger


def test_only_keeps_what_the_functions_trigger_on_and_access() -> None:
    part = SYSTEM.only("part", "cache_hints", "investigation")
    assert [f.name for f in part.functions] == ["cache_hints", "investigation"]
    names = {r.name for g in (part.streams, part.tables, part.buckets, part.queues) for r in g}
    # cache_hints: its stream, table, bucket; investigation: its queue and that queue's DLQ
    assert {"playback", "cache", "hints", "investigations", "investigations_dlq", "quarantine", "failures"} <= names
    assert not names & {"recs", "qoe", "models", "exports"}
    part.validate()


def test_s3_trigger_matches_its_bucket_prefix_and_suffix() -> None:
    trigger = S3Trigger("exports", prefix="viewing-history/", suffix=".csv")
    assert trigger.matches("exports", "viewing-history/2026/day.csv")
    assert not trigger.matches("models", "viewing-history/day.csv")  # another bucket
    assert not trigger.matches("exports", "fraud-labels/day.csv")  # another prefix
    assert not trigger.matches("exports", "viewing-history/day.csv.gz")  # another suffix
    assert S3Trigger("exports", prefix="fraud-labels/").matches("exports", "fraud-labels/x")
