"""Where predictive caching keeps its state: the key layout of the ``cache`` table and the
``hints`` bucket, and the small read API a fill controller calls.

Table ``cache`` (string ``pk`` / ``sk``; TTL attribute ``expires_at``):

| item | pk | sk | attributes |
|---|---|---|---|
| plays, per shard (written by the Kinesis consumer) | ``plays#<region>#<window>`` | ``<shard id>#b<bucket>`` | ``plays`` {title_id: count}, ``seq`` (highest sequence number applied), ``expires_at`` |
| session marker (a producer re-send is not a new play) | ``sess#<session id>`` | ``play`` | ``expires_at`` |
| demand history, per region and window (rolled up at publish) | ``hist#<region>`` | ``<window>#b<bucket>`` | ``plays`` {title_id: count}, ``expires_at`` |
| site table (operators write it) | ``site`` | ``<site id>`` | ``region`` (ISO country), ``capacity_bytes`` |
| title table (catalogue sync writes it) | ``title`` | ``<title id>`` | ``bytes``, optional ``release_at`` (ISO 8601 UTC, the launch calendar) |
| hints, per site and window | ``hints#<site id>`` | ``<window>#p<page>`` | ``entries`` (list, fill order), ``page``, ``pages``, ``window``, ``capacity_bytes``, ``used_bytes``, ``generated_at``, ``expires_at`` |

``<window>`` is the window's start in UTC, ``YYYY-MM-DDTHH:MMZ`` (sorts as time). Titles are
split over ``BUCKETS`` items by a stable hash so that no item nears DynamoDB's 400 KB limit.

Bucket ``hints``: ``hints/<site id>/<window>.json``, the whole document (schema
``streamsense.cache-hints/1``): ``site``, ``window``, ``window_end``, ``capacity_bytes``,
``used_bytes``, ``entries`` [{title_id, rank, predicted_demand, bytes, kept, reason, source?,
detail?}], ``dropped`` (titles held last window and not any more), ``forecaster``.

Read API: ``latest_hints(table, site_id)`` (newest window) and ``hints_for(table, site_id,
window)``, both returning the entries in fill order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from streamsense.caching.hints import HintEntry, Site
from streamsense.storage import Item, Key, Table

BUCKETS = 16
PAGE_ENTRIES = 1000  # hint entries per item (~80 bytes each)
HINTS_SCHEMA = "streamsense.cache-hints/1"
DEFAULT_WINDOW_S = 6 * 3600


def window_start(at: datetime, window_s: int = DEFAULT_WINDOW_S) -> datetime:
    epoch = int(at.astimezone(UTC).timestamp())
    return datetime.fromtimestamp(epoch - epoch % window_s, UTC)


def window_id(start: datetime) -> str:
    return start.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


def parse_window_id(wid: str) -> datetime:
    return datetime.strptime(wid, "%Y-%m-%dT%H:%MZ").replace(tzinfo=UTC)


def title_bucket(title_id: str) -> int:
    return hashlib.blake2b(title_id.encode(), digest_size=2).digest()[0] % BUCKETS


def plays_key(region: str, window: str, shard: str, bucket: int) -> Key:
    return (f"plays#{region}#{window}", f"{shard}#b{bucket:02d}")


def session_key(session_id: str) -> Key:
    return (f"sess#{session_id}", "play")


def history_key(region: str, window: str, bucket: int) -> Key:
    return (f"hist#{region}", f"{window}#b{bucket:02d}")


def hints_pk(site_id: str) -> str:
    return f"hints#{site_id}"


def hints_object_key(site_id: str, window: str) -> str:
    return f"hints/{site_id}/{window}.json"


def expires(at: datetime, keep: timedelta) -> int:
    return int((at + keep).timestamp())


# ---- configuration tables -------------------------------------------------------------


def load_sites(table: Table) -> list[Site]:
    sites = []
    for item in table.query("site"):
        sites.append(Site(str(item["sk"]), str(item["region"]), int(item["capacity_bytes"])))
    return sites


def site_item(site: Site) -> Item:
    return {"pk": "site", "sk": site.site_id, "region": site.region, "capacity_bytes": int(site.capacity_bytes)}


@dataclass(frozen=True)
class TitleInfo:
    title_id: str
    bytes: int
    release_at: datetime | None = None


def load_titles(table: Table) -> dict[str, TitleInfo]:
    out: dict[str, TitleInfo] = {}
    for item in table.query("title"):
        rel = item.get("release_at")
        out[str(item["sk"])] = TitleInfo(
            str(item["sk"]),
            int(item["bytes"]),
            datetime.fromisoformat(str(rel).replace("Z", "+00:00")) if rel else None,
        )
    return out


def title_item(info: TitleInfo) -> Item:
    item: Item = {"pk": "title", "sk": info.title_id, "bytes": int(info.bytes)}
    if info.release_at is not None:
        item["release_at"] = info.release_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return item


# ---- hints ---------------------------------------------------------------------------------

_REASONS = ("own", "trend", "global", "calendar")


def _encode_entry(e: HintEntry) -> list[Any]:
    return [e.title_id, int(e.bytes), round(float(e.predicted_demand), 6), int(e.kept), e.reason, e.source or ""]


def _decode_entry(row: Sequence[Any], rank: int) -> HintEntry:
    title, size, demand, kept, reason, source = row
    return HintEntry(str(title), rank, float(demand), int(size), bool(kept), str(reason), str(source) or None)


def hint_items(site: Site, window: str, entries: Sequence[HintEntry], used: int, generated_at: datetime, keep: timedelta) -> list[Item]:
    pages = max(1, -(-len(entries) // PAGE_ENTRIES))
    items = []
    for p in range(pages):
        chunk = entries[p * PAGE_ENTRIES : (p + 1) * PAGE_ENTRIES]
        items.append(
            {
                "pk": hints_pk(site.site_id),
                "sk": f"{window}#p{p:03d}",
                "window": window,
                "page": p,
                "pages": pages,
                "region": site.region,
                "capacity_bytes": int(site.capacity_bytes),
                "used_bytes": int(used),
                "entries": [_encode_entry(e) for e in chunk],
                "generated_at": generated_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
                "expires_at": expires(generated_at, keep),
            }
        )
    return items


def _entries_from_pages(items: Sequence[Mapping[str, Any]]) -> list[HintEntry]:
    items = sorted(items, key=lambda i: int(i["page"]))
    if not items or len(items) != int(items[0]["pages"]):
        return []  # incomplete: a publish in progress or expired pages
    out: list[HintEntry] = []
    for item in items:
        for row in item["entries"]:
            out.append(_decode_entry(row, len(out) + 1))
    return out


def hints_for(table: Table, site_id: str, window: str) -> list[HintEntry]:
    """The site's hints for one window, in fill order ([] if none were published)."""
    return _entries_from_pages(table.query(hints_pk(site_id), f"{window}#"))


def latest_hints(table: Table, site_id: str) -> tuple[str | None, list[HintEntry]]:
    """(window, entries) of the newest complete hints of a site; (None, []) if none."""
    newest = table.query(hints_pk(site_id), limit=1, ascending=False)
    if not newest:
        return None, []
    window = str(newest[0]["window"])
    return window, hints_for(table, site_id, window)
