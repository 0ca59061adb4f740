"""The in-memory twins behave like DynamoDB: types round-trip, batches are counted, versions race."""

from __future__ import annotations

import pytest
from streamsense.storage import MemoryQueue, MemoryTable, VersionConflict


def test_memory_table_round_trips_dynamo_types() -> None:
    table = MemoryTable()
    table.put_many([{"pk": "a", "sk": "1", "n": 3, "x": 0.1, "b": b"\x00", "m": {"l": [1, 2.5]}}])
    assert table.get_many([("a", "1"), ("a", "2")]) == {
        ("a", "1"): {"pk": "a", "sk": "1", "n": 3, "x": 0.1, "b": b"\x00", "m": {"l": [1, 2.5]}}
    }
    with pytest.raises(ValueError):
        table.put_many([{"pk": "a", "sk": "2", "x": float("nan")}])


def test_memory_table_counts_batched_requests() -> None:
    table = MemoryTable()
    table.put_many([{"pk": "p", "sk": f"{i:03d}"} for i in range(60)])  # 3 BatchWriteItem calls
    table.get_many([("p", f"{i:03d}") for i in range(150)])  # 2 BatchGetItem calls
    assert table.requests == 5
    assert [r["sk"] for r in table.query("p", "00", limit=3, ascending=False)] == ["009", "008", "007"]


def test_put_if_version_detects_a_lost_race() -> None:
    table = MemoryTable()
    table.put_if_version({"pk": "e", "sk": "s", "version": 1}, None)
    table.put_if_version({"pk": "e", "sk": "s", "version": 2}, 1)
    with pytest.raises(VersionConflict):
        table.put_if_version({"pk": "e", "sk": "s", "version": 2}, 1)


def test_memory_queue_batches_by_ten() -> None:
    q = MemoryQueue()
    q.send_many([str(i) for i in range(21)])
    assert q.requests == 3 and len(q.messages) == 21
