"""Reading back what the bandit learned: the learned policy per title, and the cross-fitted
off-policy value computed from the table's evaluation cells, checked against the same
estimators computed row by row."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from streamsense.content.evaluation import Z95, cross_fitted_value, learned_policy
from streamsense.content.features import Context, context_matrix
from streamsense.content.model import PolicyConfig, choice_probabilities, posterior
from streamsense.content.ope import dr, ipw, snipw
from streamsense.content.store import (
    Delivered,
    TitleState,
    apply_impressions,
    fold_of,
    pattern_of,
    title_states,
)
from streamsense.events import Impression, parse_event
from streamsense.storage import MemoryTable

RATES = {"v0": 0.30, "v1": 0.10, "v2": 0.05}


def logged(n: int, seed: int) -> list[Impression]:
    """Uniform-random logs of 2 titles x 3 variants for 25 members; v0 plays best."""
    rng = np.random.default_rng(seed)
    start = datetime(2024, 12, 3, tzinfo=UTC)
    out = []
    for i in range(n):
        variant = f"v{int(rng.integers(3))}"
        payload = {
            "profile_id": f"p{int(rng.integers(25))}",
            "title_id": f"t{int(rng.integers(2))}",
            "variant_id": variant,
            "position": int(rng.integers(6)),
            "propensity": 1 / 3,
            "played": bool(rng.random() < RATES[variant]),
        }
        event = parse_event(
            Impression(type="impression", version=1, event_id=f"e{seed}-{i}", occurred_at=start + timedelta(seconds=i), account_id="a", payload=payload).model_dump_json()  # type: ignore[arg-type]
        )
        assert isinstance(event, Impression)
        out.append(event)
    return out


def applied(events: list[Impression]) -> MemoryTable:
    table = MemoryTable()
    for i in range(0, len(events), 50):  # several batches, as Lambda would deliver them
        apply_impressions([Delivered(e, "s0", 1000 + k) for k, e in enumerate(events) if i <= k < i + 50], table)
    return table


def slot_shares(buckets: list[int]) -> list[float]:
    return [buckets.count(b) / len(buckets) for b in (1, 2, 3)]


def test_cells_scores_equal_the_row_by_row_estimators() -> None:
    events = logged(600, seed=3)
    states = title_states(applied(events).items.values())
    config = PolicyConfig(samples=500)
    value = cross_fitted_value(states, config)

    # Row by row: each impression's fold, its member's history of the title before it, the
    # other fold's policy and reward model.
    history: dict[tuple[str, str], dict[str, int]] = {}
    fold_rows: dict[tuple[str, int], list[Impression]] = {}
    for e in events:
        fold_rows.setdefault((e.payload.title_id, fold_of(e.event_id)), []).append(e)
    r, w, q_logged, q_target = [], [], [], []
    for e in events:
        p = e.payload
        pattern = pattern_of(history.get((p.profile_id, p.title_id), {}))
        fold = fold_of(e.event_id)
        state = states[p.title_id]
        variants = tuple(sorted(state.stats.variants))
        other = state.fold_stats(1 - fold)
        assert tuple(v for v in variants if other.variants[v].n) == variants  # every variant in both folds
        pi = choice_probabilities(other, variants, [Context(0, bool(pattern), dict(pattern))], config)[0]
        # Reward model: the other fold's posterior mean at that fold's share of slots 1, 2, 3+.
        z = context_matrix(Context(0, bool(pattern), dict(pattern)), variants).astype(float)
        z[:, :3] = slot_shares([min(o.payload.position, 3) for o in fold_rows[(p.title_id, 1 - fold)]])
        q = np.clip(posterior(other, variants, config).rates(z[None])[0], 0, 1)
        a = variants.index(p.variant_id)
        r.append(float(p.played))
        w.append(pi[a] / p.propensity)
        q_logged.append(q[a])
        q_target.append(float(pi @ q))
        if p.played:
            seen = history.setdefault((p.profile_id, p.title_id), {})
            seen[p.variant_id] = seen.get(p.variant_id, 0) + 1
    rr, ww, ql, qt = map(np.array, (r, w, q_logged, q_target))

    assert (value.impressions, value.plays, value.titles) == (600, int(rr.sum()), 2)
    assert value.with_history > 0  # members came back to titles they had played
    assert value.logged.value == rr.mean()
    assert value.ipw.value == pytest.approx(ipw(rr, ww), rel=1e-9)
    assert value.snipw.value == pytest.approx(snipw(rr, ww), rel=1e-9)
    assert value.dr.value == pytest.approx(dr(rr, ww, ql, qt), rel=1e-9)
    # Standard errors: sample sd of the per-row terms / sqrt(n); SNIPW by the delta method.
    n = len(rr)
    assert value.ipw.se == pytest.approx(np.std(ww * rr, ddof=1) / math.sqrt(n), rel=1e-9)
    assert value.dr.se == pytest.approx(np.std(qt + ww * (rr - ql), ddof=1) / math.sqrt(n), rel=1e-9)
    v = value.snipw.value
    assert value.snipw.se == pytest.approx(math.sqrt(np.sum((ww * (rr - v)) ** 2)) / ww.sum(), rel=1e-9)
    assert value.logged.se == pytest.approx(np.std(rr, ddof=1) / math.sqrt(n), rel=1e-12)
    assert (value.ipw.ci_low, value.ipw.ci_high) == pytest.approx((value.ipw.value - Z95 * value.ipw.se, value.ipw.value + Z95 * value.ipw.se))
    # v0 plays 3x as often as v1 and 6x as often as v2: the learned policy beats uniform logging.
    assert value.snipw.value > value.logged.value and value.dr.ci_low > 0
    # The fold policies for a member with no history, as reported for joins with ground truth.
    t0 = value.fold_probabilities["t0"]
    assert t0[0] == pytest.approx(dict(zip(("v0", "v1", "v2"), choice_probabilities(states["t0"].fold_stats(1), ("v0", "v1", "v2"), [Context(0)], config)[0], strict=True)))
    assert t0[1] is not None and sum(t0[1].values()) == pytest.approx(1.0, abs=1e-12)


def _one(event_id: str, title: str, variant: str, propensity: float, played: bool) -> Impression:
    payload = {"profile_id": f"p-{event_id}", "title_id": title, "variant_id": variant, "position": 0, "propensity": propensity, "played": played}
    event = parse_event(
        Impression(type="impression", version=1, event_id=event_id, occurred_at=datetime(2024, 12, 3, tzinfo=UTC), account_id="a", payload=payload).model_dump_json()  # type: ignore[arg-type]
    )
    assert isinstance(event, Impression)
    return event


def test_candidates_come_from_the_other_fold_and_unseen_titles_keep_the_logging_policy() -> None:
    ids = {f: [f"h{i}" for i in range(40) if fold_of(f"h{i}") == f] for f in (0, 1)}
    events = [
        _one(ids[0][0], "t", "x", 0.25, True),  # fold 0: scored by fold 1's policy, uniform over {x, y}: w = 0.5 / 0.25
        _one(ids[1][0], "t", "y", 0.5, False),  # fold 1: fold 0 only knows x, so pi(y) = 0
        _one(ids[1][1], "t", "x", 0.5, True),  # fold 1: pi(x) = 1, w = 2
        _one(ids[1][2], "solo", "z", 0.5, False),  # fold 0 never showed "solo": the logging policy, w = 1
    ]
    table = MemoryTable()
    apply_impressions([Delivered(e, "s0", k) for k, e in enumerate(events)], table)
    value = cross_fitted_value(title_states(table.items.values()), PolicyConfig(exploration=1.0, samples=10))
    assert (value.impressions, value.plays, value.logging_fallback) == (4, 2, 1)
    assert value.logged.value == 0.5
    assert value.ipw.value == pytest.approx((2 + 0 + 2 + 0) / 4, abs=1e-12)
    assert value.snipw.value == pytest.approx(4 / (2 + 0 + 2 + 1), abs=1e-12)
    assert value.fold_probabilities["t"] == ({"x": 0.5, "y": 0.5}, {"x": 1.0})
    assert value.fold_probabilities["solo"] == ({"z": 1.0}, None)  # fold 1 knows z (no fold-0 rows to score)


def test_a_uniform_policy_scores_exactly_the_logged_play_rate() -> None:
    # exploration = 1: the policy is uniform, like the logger, so every weight is exactly 1.
    states = title_states(applied(logged(90, seed=4)).items.values())
    value = cross_fitted_value(states, PolicyConfig(exploration=1.0, samples=50))
    assert value.ipw.value == pytest.approx(value.logged.value, abs=1e-12)
    assert value.snipw.value == pytest.approx(value.logged.value, abs=1e-12)
    assert value.ipw.se == pytest.approx(value.logged.se, abs=1e-12)
    assert value.lift_snipw == pytest.approx(1.0, abs=1e-12)


def test_learned_policy_reads_the_summed_shard_rows() -> None:
    events = logged(400, seed=5)
    table = MemoryTable()
    # Two shards, each with its own rows.
    apply_impressions([Delivered(e, "s0", k) for k, e in enumerate(events) if k % 2 == 0], table)
    apply_impressions([Delivered(e, "s1", k) for k, e in enumerate(events) if k % 2 == 1], table)
    states = title_states(table.items.values())
    t0 = [e.payload for e in events if e.payload.title_id == "t0"]
    assert states["t0"].shards == 2
    assert states["t0"].stats.impressions == len(t0) == states["t0"].cells.impressions
    fold0 = sum(1 for e in events if e.payload.title_id == "t0" and fold_of(e.event_id) == 0)
    assert states["t0"].fold_stats(0).impressions == fold0
    assert states["t0"].fold_stats(0).merged(states["t0"].fold_stats(1)) == states["t0"].stats
    policy = learned_policy("t0", states["t0"])
    assert policy.variants == ("v0", "v1", "v2")
    assert policy.shown == {v: sum(1 for p in t0 if p.variant_id == v) for v in policy.variants}
    assert policy.plays == {v: sum(1 for p in t0 if p.variant_id == v and p.played) for v in policy.variants}
    assert policy.chosen == "v0" and policy.probabilities["v0"] > 0.9
    assert sum(policy.probabilities.values()) == pytest.approx(1.0, abs=1e-12)
    assert policy.rate["v0"] > policy.rate["v1"] > 0
    with pytest.raises(ValueError, match="no statistics"):
        learned_policy("t9", TitleState())
