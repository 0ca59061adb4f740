"""Ids to try `query` with, picked from the saved run's own tables (the README's examples are
from the full run; a quick run or another data set has other members and accounts)."""

from __future__ import annotations

import json
from pathlib import Path

from streamsense.recs.service import MEMBER_SK

_PREFIX = ".venv/bin/python -m streamsense_local query"


def _keys(state_dir: Path, table: str) -> list[tuple[str, str, dict]]:
    path = state_dir / "tables" / f"{table}.json"
    if not path.exists():
        return []
    items = json.loads(path.read_text())
    return sorted((i["pk"].get("S", ""), i.get("sk", {}).get("S", ""), i) for i in items if isinstance(i.get("pk"), dict))


def query_examples(state_dir: Path) -> list[str]:
    """Up to one command per kind whose answer is found: a member with recommendations (a
    simulator profile when there is one, as it also joins delivery defaults), an account with
    a decision to review (else any decision), an ABR segment with its own hint."""
    out: list[str] = []
    # A member# row is a profile's list (sk MEMBER_SK) or, keyed by the account, its delivery defaults.
    members = [pk.removeprefix("member#") for pk, sk, _ in _keys(state_dir, "recs") if pk.startswith("member#") and sk == MEMBER_SK]
    if members:
        profiles = [m for m in members if m.startswith("acc-")]
        out.append(f"{_PREFIX} member {(profiles or members)[0]}")
    decisions = [(pk, item) for pk, sk, item in _keys(state_dir, "decisions") if pk.startswith("acct#") and sk.startswith("dec#")]
    if decisions:
        review = [pk for pk, item in decisions if item.get("action", {}).get("S") == "review"]
        out.append(f"{_PREFIX} account {(review or [decisions[0][0]])[0].removeprefix('acct#')}")
    segments = [pk.removeprefix("hint#rnd#") for pk, _, _ in _keys(state_dir, "qoe") if pk.startswith("hint#rnd#")]
    if segments:
        out.append(f"{_PREFIX} segment {segments[0].replace('|', '/')}")
    return out
