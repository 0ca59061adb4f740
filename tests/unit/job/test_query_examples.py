"""The `try:` lines after a run name ids the saved run's own tables answer for."""

from __future__ import annotations

import json
from pathlib import Path

from streamsense_local.job.examples import query_examples


def _write(root: Path, table: str, items: list[dict]) -> None:
    (root / "tables").mkdir(exist_ok=True)
    (root / "tables" / f"{table}.json").write_text(json.dumps(items))


def test_examples_come_from_the_saved_tables(tmp_path: Path) -> None:
    _write(tmp_path, "recs", [
        {"pk": {"S": "member#acc-0000001"}, "sk": {"S": "delivery"}},  # an account's defaults
        {"pk": {"S": "member#ml-9"}, "sk": {"S": "recs"}},
        {"pk": {"S": "member#acc-0000007-p1"}, "sk": {"S": "recs"}},
        {"pk": {"S": "region#US"}, "sk": {"S": "recs#trending"}},
    ])  # fmt: skip
    _write(tmp_path, "decisions", [
        {"pk": {"S": "acct#c1"}, "sk": {"S": "dec#1"}, "action": {"S": "allow"}},
        {"pk": {"S": "acct#c9"}, "sk": {"S": "dec#2"}, "action": {"S": "review"}},
    ])  # fmt: skip
    _write(tmp_path, "qoe", [
        {"pk": {"S": "hint#rn#DE|wifi"}, "sk": {"S": "hint"}},
        {"pk": {"S": "hint#rnd#DE|wifi|tv"}, "sk": {"S": "hint"}},
    ])  # fmt: skip
    assert [c.split(" query ")[1] for c in query_examples(tmp_path)] == [
        "member acc-0000007-p1",
        "account c9",
        "segment DE/wifi/tv",
    ]


def test_no_examples_from_empty_tables(tmp_path: Path) -> None:
    for table in ("recs", "decisions", "qoe"):
        _write(tmp_path, table, [])
    assert query_examples(tmp_path) == []
