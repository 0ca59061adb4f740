"""Read functions over what ``content_bandit`` wrote (the ``content`` table), for the ``query``
command after a run. Every figure comes from the table through the domain's read API
(``streamsense.content.store`` / ``.evaluation``).

Member ids: the content table keys a member by the ``profile_id`` the impression events carry
(an opaque app id such as ``acc-0000042-p0``, not one of the identifiers engineering.md
requires to be pseudonymized), so the id is used as typed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from streamsense.content.evaluation import cross_fitted_value, learned_policies, learned_policy
from streamsense.content.features import Context
from streamsense.content.model import PolicyConfig, choice_probabilities
from streamsense.content.store import TitleState, load_member, load_title_states, title_states
from streamsense.storage import DynamoTable

if TYPE_CHECKING:
    from streamsense_local.stack import LocalStack


def _table(stack: LocalStack) -> DynamoTable:
    return DynamoTable(stack.physical("table", "content"), client=stack.client("dynamodb"))


def _policy_dict(title_id: str, state: TitleState, config: PolicyConfig) -> dict[str, Any]:
    pol = learned_policy(title_id, state, config)
    return {
        "title_id": title_id,
        "impressions": state.stats.impressions,
        "plays": state.stats.plays,
        "would_show": pol.chosen,
        "variants": {
            v: {"shown": pol.shown[v], "plays": pol.plays[v], "estimated_rate_slot0": round(pol.rate[v], 6), "p_show": round(pol.probabilities[v], 4)}
            for v in pol.variants
        },
        "policy": pol.policy,
    }


def title(stack: LocalStack, title_id: str) -> dict[str, Any]:
    """One title: impressions and plays per variant, the model's estimated play rate of each
    variant (slot 0, member new to the title), the probability the policy shows each one to
    such a member now and the variant it would most likely show; the number of per-shard rows
    and the impressions in each evaluation fold. ``{"title_id": ..., "found": False}`` when no
    impression of the title was applied."""
    state = load_title_states(_table(stack), [title_id])[title_id]
    if not state.stats.impressions:
        return {"title_id": title_id, "found": False}
    out = {"found": True, **_policy_dict(title_id, state, PolicyConfig())}
    out["shard_rows"] = state.shards
    out["evaluation_impressions_by_fold"] = [state.fold_stats(0).impressions, state.fold_stats(1).impressions]
    out["last_event_at"] = state.last_event_at
    return out


def titles(stack: LocalStack, top: int = 20) -> list[dict[str, Any]]:
    """The ``top`` titles by impressions, each as in ``title`` (without the fold counts)."""
    states = title_states(stack.scan("content"))
    order = sorted((t for t, s in states.items() if s.stats.impressions), key=lambda t: (-states[t].stats.impressions, t))[:top]
    config = PolicyConfig()
    return [_policy_dict(t, states[t], config) for t in order]


def member(stack: LocalStack, member_id: str) -> dict[str, Any]:
    """One member (profile): the titles they played after an impression, with the plays per
    variant (their context for the policy), how many recent impressions are remembered for
    duplicate detection, and when the state expires (epoch seconds, DynamoDB TTL)."""
    item = load_member(_table(stack), member_id)
    if item is None:
        return {"member_id": member_id, "found": False}
    played = {t: {"plays_by_variant": {str(v): int(n) for v, n in row["v"].items()}, "last_played_at": int(row["at"])} for t, row in sorted(item.get("titles", {}).items())}
    return {
        "member_id": member_id,
        "found": True,
        "titles_played": played,
        "recent_impressions_remembered": len(item.get("ledger", [])),
        "last_impression_at": int(item.get("last_epoch", 0)),
        "expires_at": int(item["expires_at"]),
    }


def choose(stack: LocalStack, member_id: str, title_id: str, position: int = 0) -> dict[str, Any]:
    """What the policy would serve this member for this title at this slot now: the
    probability of each variant the title has statistics for (given the member's history of
    the title), the most probable one, and the policy version to log with the impression."""
    table = _table(stack)
    state = load_title_states(table, [title_id])[title_id]
    variants = tuple(sorted(v for v, s in state.stats.variants.items() if s.n))
    if not variants:
        return {"member_id": member_id, "title_id": title_id, "found": False}
    item = load_member(table, member_id)
    plays = {str(k): int(v) for k, v in ((item or {}).get("titles", {}).get(title_id, {}).get("v", {})).items()}
    config = PolicyConfig()
    probs = choice_probabilities(state.stats, variants, [Context(position, sum(plays.values()) > 0, plays)], config)[0]
    best = max(range(len(variants)), key=lambda i: (probs[i], -i))
    return {
        "member_id": member_id,
        "title_id": title_id,
        "found": True,
        "position": position,
        "member_plays_by_variant": plays,
        "probabilities": {v: round(float(p), 4) for v, p in zip(variants, probs, strict=True)},
        "most_likely": variants[best],
        "policy": f"{config.name}/{state.stats.digest()}",
    }


def evaluation(stack: LocalStack) -> dict[str, Any]:
    """The learned policy's cross-fitted off-policy play rate on the logged impressions (IPW,
    SNIPW, DR with 95% intervals) next to the logging policy's observed play rate, and the
    titles' learned choices summarized (titles whose most probable variant is shown with
    probability >= 0.8 to a member new to the title)."""
    states = title_states(stack.scan("content"))
    if not any(s.stats.impressions for s in states.values()):
        return {"found": False}
    config = PolicyConfig()
    value = cross_fitted_value(states, config)
    policies = learned_policies(states, config)

    def est(e: Any) -> dict[str, float]:
        return {"value": round(e.value, 6), "ci_low": round(e.ci_low, 6), "ci_high": round(e.ci_high, 6)}

    return {
        "found": True,
        "policy": value.policy,
        "impressions": value.impressions,
        "plays": value.plays,
        "logged_play_rate": est(value.logged),
        "learned_play_rate": {"ipw": est(value.ipw), "snipw": est(value.snipw), "dr": est(value.dr)},
        "estimated_lift_snipw": round(value.lift_snipw, 4),
        "evaluated_by_logging_fallback": value.logging_fallback,
        "titles": len(policies),
        "titles_confident": sum(1 for p in policies.values() if p.probabilities[p.chosen] >= 0.8),
    }
