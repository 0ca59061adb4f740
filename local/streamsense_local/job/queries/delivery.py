"""Read functions over what ``delivery_prefs`` wrote (``member#<account>`` / ``delivery`` and
``region#<R>`` / ``delivery`` in the ``recs`` table), for the ``query`` command after a run.

Member ids: delivery_prefs keys a member by the event's ``account_id``, the service's own opaque
member token (no email, IP, card or device id; see streamsense.delivery.service), so the id is
used as typed, as the function used it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from streamsense.delivery.model import SITUATIONS, resolve, situation
from streamsense.delivery.service import defaults_for, member_key, region_key
from streamsense.storage import DynamoTable

from streamsense_local.job.sections.delivery import load_catalogue

if TYPE_CHECKING:
    from streamsense_local.stack import LocalStack


def _table(stack: LocalStack) -> DynamoTable:
    return DynamoTable(stack.physical("table", "recs"), client=stack.client("dynamodb"))


def _for_title(stack: LocalStack, title_id: str, defaults_by_profile: dict[str, Any]) -> dict[str, Any]:
    catalogue, key = load_catalogue(stack)
    info = catalogue.get(title_id)
    out: dict[str, Any] = {
        "title_id": title_id,
        "catalogue": key,
        "language": info.language if info else None,
        "dubbed": info.dubbed if info else None,
        "profiles": {},
    }
    for pid, d in defaults_by_profile.items():
        audio, subs = resolve(d, info)
        out["profiles"][pid] = {
            "situation": situation(info, d.language) if info else "unknown title",
            "audio": audio,
            "subtitles": subs,
        }
    return out


def member(stack: LocalStack, account_id: str, title_id: str | None = None) -> dict[str, Any]:
    """An account's delivery defaults (delivery_prefs keys them by account), per profile: the
    profile's language and, per situation (``native``: a title in that language; ``foreign_dub``: a foreign title with a dub;
    ``foreign``: one without), the audio and subtitle roles served with where each came from
    (``profile``, ``region`` or ``fallback``) and the picks behind it; the number of picks
    stored and the newest one. With ``title_id``, also the concrete audio and subtitle language
    each profile would start that title with (title language from the catalogue the function
    read). ``found`` is False for an account the function never saw (a new one gets the
    region's defaults: see ``region``)."""
    table = _table(stack)
    item = table.get_many([member_key(account_id)]).get(member_key(account_id))
    if item is None:
        return {"account_id": account_id, "found": False}
    region_code = str(item.get("region") or "")
    region_doc = table.get_many([region_key(region_code)]).get(region_key(region_code))
    profiles: dict[str, Any] = {}
    served = {}
    for pid, prof in sorted((item.get("profiles") or {}).items()):
        d = defaults_for(item, pid, region_doc)
        served[pid] = d
        picks = prof.get("picks") or []
        profiles[pid] = {
            "language": d.language,
            **{s: {**d.choices[s].as_dict(), "source": d.sources[s], "picks": d.support[s]} for s in SITUATIONS},
            "picks_stored": len(picks),
            "last_pick": (
                {"at_ms": int(picks[-1][1]), "title_id": str(picks[-1][2]), "audio": str(picks[-1][3]), "subtitles": str(picks[-1][4])}
                if picks
                else None
            ),
        }
    out: dict[str, Any] = {
        "account_id": account_id,
        "found": True,
        "region": region_code,
        "updated_at": item.get("updated_at"),
        "profiles": profiles,
    }
    if title_id is not None:
        out["for_title"] = _for_title(stack, title_id, served)
    return out


def region(stack: LocalStack, region: str) -> dict[str, Any]:
    """The defaults a new member of ``region`` (ISO country code) gets: the region's language
    and per-situation choice, each with the region's picks behind it (``source`` ``fallback``:
    the built-in rule, no picks in that situation yet), the plays counted and when the
    function last re-published them. ``found`` is False for a region never seen."""
    code = region.strip().upper()
    doc = _table(stack).get_many([region_key(code)]).get(region_key(code))
    if doc is None:
        return {"region": code, "found": False}
    return {
        "region": code,
        "found": True,
        "defaults": doc["defaults"],
        "picks": int(doc.get("picks", 0)),
        "generated_at": doc.get("generated_at"),
    }
