"""The report's content section and the content queries on a tiny local-stack run: hand-made
impressions through content_bandit (Kinesis -> Lambda -> DynamoDB), then collect() joined with a
hand-made simulator truth whose sums are worked out below."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from streamsense.content.evaluation import cross_fitted_value, learned_policies
from streamsense.content.model import PolicyConfig
from streamsense.content.store import Delivered, apply_impressions, fold_of, title_states
from streamsense.events import Impression, parse_event
from streamsense.storage import MemoryTable
from streamsense_local.job.queries import content as queries
from streamsense_local.job.sections import JobContext
from streamsense_local.job.sections import content as section
from streamsense_local.stack import LocalStack

from infra.system import SYSTEM, System

CONTENT_SYSTEM = System(
    name="content-e2e",
    streams=tuple(s for s in SYSTEM.streams if s.name == "playback"),
    tables=tuple(t for t in SYSTEM.tables if t.name == "content"),
    buckets=(),
    queues=tuple(q for q in SYSTEM.queues if q.name in {"quarantine", "failures"}),
    functions=(SYSTEM.function("content_bandit"),),
)
pytestmark = pytest.mark.xdist_group("content_section_stack")
START = datetime(2024, 12, 3, 20, 0, tzinfo=UTC)

# (title, position, account, variant, played). Hidden truth below: NO members like art-a (x2),
# FR members art-b (x4); each slot's q is weighted by 0.5**position.
ROWS = [
    ("dune", 0, "acc-no-1", "art-a", True),
    ("dune", 0, "acc-no-2", "art-b", False),
    ("dune", 1, "acc-no-3", "art-a", True),
    ("dune", 1, "acc-fr-1", "art-b", False),
    ("dune", 0, "acc-no-4", "art-a", True),
    ("dune", 2, "acc-no-5", "art-b", False),
    ("dune", 0, "acc-fr-2", "art-a", False),
    ("dune", 0, "acc-no-6", "art-b", False),
    ("up", 0, "acc-fr-1", "art-b", True),
    ("up", 3, "acc-no-1", "art-c", False),
    ("up", 0, "acc-fr-3", "art-a", False),
    ("dune", 0, "acc-no-1", "art-b", False),  # played dune before (after art-a): a member with history
]
SENDS_COUNTRY = "acc-fr-3"  # this member's app puts the home country on the impression
VARIANTS = {"dune": ["art-a", "art-b"], "up": ["art-a", "art-b", "art-c"]}
MULT = {"NO": {"art-a": 2.0, "art-b": 1.0, "art-c": 1.0}, "FR": {"art-a": 1.0, "art-b": 4.0, "art-c": 1.0}}


def events() -> list[dict[str, Any]]:
    return [
        {
            "type": "impression",
            "version": 1,
            "event_id": f"imp-{i}",
            "occurred_at": (START + timedelta(minutes=i)).isoformat().replace("+00:00", "Z"),
            "account_id": account,
            "payload": {
                "profile_id": f"{account}-p0",
                "title_id": title,
                "variant_id": variant,
                "position": pos,
                "propensity": 1 / len(VARIANTS[title]),
                "played": played,
                **({"country": "FR"} if account == SENDS_COUNTRY else {}),
            },
        }
        for i, (title, pos, account, variant, played) in enumerate(ROWS)
    ]


def truth() -> dict[str, Any]:
    names = ["art-a", "art-b", "art-c", "art-d"]
    return {
        "variants": names,
        "position_decay": 0.5,
        "affinity": {c: [math.log(m.get(v, 1.0)) for v in names] for c, m in MULT.items()},
        # The member who sends their country on the impression is not in the account list.
        "home_country": {f"acc-{c.lower()}-{k}": c for c in MULT for k in range(1, 7) if f"acc-{c.lower()}-{k}" != SENDS_COUNTRY},
        "title_variants": VARIANTS,
        "events": events(),
    }


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalStack, Any]]:
    with LocalStack.start(CONTENT_SYSTEM) as stack:
        assert stack.put_events(events()) == {"playback": len(ROWS)}
        stack.drain()
        assert stack.receive_all("quarantine") == [] and stack.receive_all("failures") == []
        ctx = JobContext(stack=stack, out=tmp_path_factory.mktemp("report"), truth={"simulator": {"impressions": truth()}}, data_dir=None, quick=True)
        old = section.MATCH_MIN_IMPRESSIONS
        section.MATCH_MIN_IMPRESSIONS = 3  # a tiny run: compare every title with >= 3 impressions
        try:
            result = section.collect(ctx)
        finally:
            section.MATCH_MIN_IMPRESSIONS = old
        yield stack, result


def reference() -> MemoryTable:
    """The same impressions applied in one ordered pass outside the stack."""
    table = MemoryTable()
    parsed = [parse_event(json.dumps(e)) for e in events()]
    apply_impressions([Delivered(e, "one", i) for i, e in enumerate(parsed) if isinstance(e, Impression)], table)
    return table


def test_headline_figures(run: tuple[LocalStack, Any]) -> None:
    _, result = run
    h = result.headline
    assert (h["impressions"], h["plays"], h["titles"], h["members"], h["evaluated_impressions"]) == (12, 4, 2, 9, 12)
    assert h["impressions_with_title_history_share"] == round(1 / 12, 4)
    assert h["logged_play_rate"] == round(4 / 12, 5)

    # The product's OPE figures are those of the same impressions applied in one pass outside
    # the stack (the function wrote exactly that state).
    states = title_states(reference().items.values())
    value = cross_fitted_value(states, PolicyConfig())
    assert h["learned_play_rate_snipw"] == round(value.snipw.value, 5)
    assert h["learned_play_rate_dr_ci"] == [round(value.dr.ci_low, 5), round(value.dr.ci_high, 5)]
    assert h["evaluated_by_logging_fallback"] == value.logging_fallback

    # Truth, by hand. Per impression: d = 0.5**position, m = the member country's multipliers.
    # dune (a, b): showing a to all = 2+2+1+.5+2+.5+1+2+2 = 13; b = 1+1+.5+2+1+.25+4+1+1 = 11.75
    #   logged = 2+1+1+2+2+.25+1+1+1 = 11.25; best per country = 2+2+1+2+2+.5+4+2+2 = 17.5
    # up (a, b, c): a = 1+.25+1 = 2.25, b = 4+.125+4 = 8.125, c = 1+.125+1 = 2.125;
    #   logged = 4+.125+1 = 5.125; best per country = 4+.25+4 = 8.25
    base = 11.25 + 5.125
    assert h["truth_impressions_joined"] == 12
    assert h["true_q_lift_oracle_best_variant_per_title"] == round((13 + 8.125) / base, 4)
    assert h["true_q_lift_oracle_best_variant_per_country"] == round((17.5 + 8.25) / base, 4)
    policies = learned_policies(states, PolicyConfig(), VARIANTS)
    per_variant = {"dune": {"art-a": 13.0, "art-b": 11.75}, "up": {"art-a": 2.25, "art-b": 8.125, "art-c": 2.125}}
    served = sum(policies[t].probabilities[v] * s for t, pv in per_variant.items() for v, s in pv.items())
    assert h["true_q_lift_served_now"] == round(served / base, 4)
    cross = 0.0
    for e in events():
        p, d = e["payload"], 0.5 ** e["payload"]["position"]
        m = MULT[p.get("country") or truth()["home_country"][e["account_id"]]]
        pi = value.fold_probabilities[p["title_id"]][fold_of(e["event_id"])]
        cross += d * (m[p["variant_id"]] if pi is None else sum(pr * m[v] for v, pr in pi.items()))
    assert h["true_q_lift_learned_cross_fitted"] == round(cross / base, 4)
    # The learned choices: art-a for dune (3 plays in 4 vs 0 in 5), art-b for up (its only play).
    assert (policies["dune"].chosen, policies["up"].chosen) == ("art-a", "art-b")
    assert (h["titles_compared"], h["best_variant_match_share"], h["best_variant_match_chance"]) == (2, 1.0, round((1 / 2 + 1 / 3) / 2, 4))
    assert h["titles_with_a_variant_never_shown"] == 0


def test_tables_and_plot(run: tuple[LocalStack, Any]) -> None:
    _, result = run
    choices, values, curve = result.tables
    assert [r[:4] for r in choices.rows] == [["dune", 9, 3, "art-a"], ["up", 3, 1, "art-b"]]
    assert choices.rows[0][4] > 0.5 and choices.rows[1][4] > 1 / 3  # P(show) of the choice
    assert [r[6:] for r in choices.rows] == [["art-a", "yes"], ["art-b", "yes"]]
    assert [r[:2] for r in values.rows[:4]] == [
        ["logging policy (uniform random), observed", "mean"],
        ["learned policy (cross-fitted), product OPE", "IPW"],
        ["learned policy (cross-fitted), product OPE", "SNIPW"],
        ["learned policy (cross-fitted), product OPE", "DR"],
    ]
    assert [r[:4] for r in curve.rows] == [["1-9", 2, 12, 1.0]]
    assert len(result.plots) == 1 and Path(result.plots[0]).stat().st_size > 10_000


def test_queries(run: tuple[LocalStack, Any]) -> None:
    stack, _ = run
    dune = queries.title(stack, "dune")
    assert (dune["found"], dune["impressions"], dune["plays"], dune["would_show"]) == (True, 9, 3, "art-a")
    assert {v: (x["shown"], x["plays"]) for v, x in dune["variants"].items()} == {"art-a": (4, 3), "art-b": (5, 0)}
    assert sum(dune["evaluation_impressions_by_fold"]) == 9
    assert dune["evaluation_impressions_by_fold"][0] == sum(1 for i, r in enumerate(ROWS) if r[0] == "dune" and fold_of(f"imp-{i}") == 0)
    shards = {i["sk"] for i in stack.scan("content") if i["pk"] == "title#dune"}
    assert dune["shard_rows"] == len(shards) >= 1
    assert queries.title(stack, "nothing") == {"title_id": "nothing", "found": False}
    assert [t["title_id"] for t in queries.titles(stack, top=5)] == ["dune", "up"]

    member = queries.member(stack, "acc-no-1-p0")
    first_play = int((START + timedelta(minutes=0)).timestamp())
    last = int((START + timedelta(minutes=11)).timestamp())
    assert member == {
        "member_id": "acc-no-1-p0",
        "found": True,
        "titles_played": {"dune": {"plays_by_variant": {"art-a": 1}, "last_played_at": first_play}},
        "recent_impressions_remembered": 3,
        "last_impression_at": last,
        "expires_at": last + 90 * 86400,
    }
    assert queries.member(stack, "nobody") == {"member_id": "nobody", "found": False}

    choice = queries.choose(stack, "acc-no-1-p0", "dune", position=1)
    assert (choice["member_plays_by_variant"], choice["most_likely"]) == ({"art-a": 1}, "art-a")
    assert sum(choice["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)

    ev = queries.evaluation(stack)
    assert (ev["impressions"], ev["plays"], ev["titles"], ev["logged_play_rate"]["value"]) == (12, 4, 2, round(1 / 3, 6))
