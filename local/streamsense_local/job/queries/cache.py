"""Read functions over what ``cache_hints`` wrote, for the ``query`` command after a run: a
site's latest cache-fill hints, through the read API a fill controller calls
(``streamsense.caching.store.latest_hints``: the ``cache`` table), with the explanations and
dropped titles of the JSON document published for the same window (the ``hints`` bucket)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from streamsense.caching.store import hints_object_key, hints_pk, latest_hints, load_sites
from streamsense.storage import DynamoTable

if TYPE_CHECKING:
    from streamsense_local.stack import LocalStack

#: Published windows listed under "history" (newest first).
HISTORY = 8


def _document(stack: LocalStack, site_id: str, window: str) -> dict[str, Any] | None:
    if not any(b.name == "hints" for b in stack.system.buckets):
        return None
    try:
        doc: dict[str, Any] = json.loads(stack.get_object("hints", hints_object_key(site_id, window)))
    except stack.client("s3").exceptions.NoSuchKey:
        return None
    return doc


def site(stack: LocalStack, site_id: str) -> dict[str, Any]:
    """An edge site's newest hints: the window they fill, the site's region and capacity, and
    the titles in fill order, each with predicted demand (requests in the window), bytes,
    whether the site already held it (kept) and why it is there (reason: own history, a trend
    in another region (source), global demand, or the launch calendar; detail). ``history``
    lists the site's last published windows. Raises ValueError for a site not in the site
    table (naming the sites that are)."""
    site_id = site_id.strip()
    table = DynamoTable(stack.physical("table", "cache"), client=stack.client("dynamodb"))
    sites = {s.site_id: s for s in load_sites(table)}
    if site_id not in sites:
        known = sorted(sites)
        listed = ", ".join(known[:40]) + (f" ... ({len(known)} in all)" if len(known) > 40 else "")
        raise ValueError(f"unknown site; the site table has {listed or 'no sites (run `make run` first)'}")
    s = sites[site_id]
    out: dict[str, Any] = {"site_id": s.site_id, "region": s.region, "capacity_bytes": s.capacity_bytes}
    window, entries = latest_hints(table, site_id)
    out["found"] = window is not None
    if window is None:
        return out
    doc = _document(stack, site_id, window) or {}
    explained = {str(e["title_id"]): e for e in doc.get("entries", [])}
    out.update(
        {
            "window": window,
            "window_end": doc.get("window_end"),
            "generated_at": doc.get("generated_at"),
            "fill_budget_bytes": doc.get("fill_budget_bytes"),
            "used_bytes": sum(e.bytes for e in entries),
            "forecaster": doc.get("forecaster"),
            "document": f"s3://{stack.physical('bucket', 'hints')}/{hints_object_key(site_id, window)}" if doc else None,
            "entries": [
                {
                    "rank": e.rank,
                    "title_id": e.title_id,
                    "predicted_demand": round(e.predicted_demand, 3),
                    "bytes": e.bytes,
                    "kept": e.kept,
                    "reason": e.reason,
                    "source": e.source,
                    "detail": explained.get(e.title_id, {}).get("detail", ""),
                }
                for e in entries
            ],
            "dropped": doc.get("dropped", []),
        }
    )
    pages = table.query(hints_pk(site_id), ascending=False)
    history: dict[str, dict[str, Any]] = {}
    for item in pages:
        w = str(item["window"])
        if w not in history and len(history) >= HISTORY:
            break
        h = history.setdefault(w, {"window": w, "titles": 0, "used_bytes": int(item.get("used_bytes", 0))})
        h["titles"] += len(item.get("entries", []))
    out["history"] = list(history.values())
    return out
