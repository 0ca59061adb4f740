"""What the two recommendation functions do, behind the storage adapters (no boto3 here).

``retrain_from_export``: one viewing-history export -> read (bad rows quarantined, too many
rejects the file) -> evaluate on a time-ordered holdout -> retrain on everything -> publish a
model version (npz + manifest, then the ``recs/current.json`` pointer) -> write serving rows
(per member top-N with reasons, per region trending, per title similar). The version id is a
hash of the export's identity (bucket, key, ETag/version id): a duplicated S3 notification finds
the version's manifest already there and publishes nothing new.

``apply_plays``: a Kinesis batch of playback events -> per member, merge the new plays into the
stored history (title -> latest play time: replaying a play changes nothing) and recompute that
member's top-N with the current model (one BatchGetItem and one BatchWriteItem per 25 changed
members).

DynamoDB layout in the ``recs`` table (shared with delivery_prefs, which uses other sort keys):
``member#<profile>`` / ``recs``: history (JSON [title, seconds] pairs, newest first), region,
top (title, score, reason, because, text),
model_version, updated_at, expires_at (TTL); ``region#<R>`` / ``recs#trending``;
``title#<id>`` / ``recs#similar``.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from streamsense.events import BadEvent, Event, PlaybackStart
from streamsense.quarantine import Quarantined
from streamsense.recs import artifact
from streamsense.recs.data import Catalogue, Plays
from streamsense.recs.exports import MAX_EXPORT_BYTES, BadExport, read_catalogue, read_plays
from streamsense.recs.model import RecsParams
from streamsense.recs.serving import (
    MemberState,
    Recommender,
    merge_history,
    states_from_plays,
)
from streamsense.storage import Item, ObjectNotFound, ObjectStore, Table

PLAYS_PREFIX = "viewing-history/"
CATALOG_PREFIX = "viewing-history/catalog/"
TOP_N = 50
TRENDING_N = 50
SIMILAR_N = 20
MEMBER_TTL_S = 180 * 86_400
HOLDOUT_FRACTION = 0.1
MEMBER_SK = "recs"


def member_key(member: str) -> tuple[str, str]:
    return (f"member#{member}", MEMBER_SK)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def version_for(bucket: str, key: str, etag: str, version_id: str | None) -> str:
    """Deterministic model version for one export object (same object -> same version)."""
    ident = f"{bucket}/{key}#{version_id or ''}#{etag.strip(chr(34))}"
    return "v" + hashlib.sha256(ident.encode()).hexdigest()[:16]


# ---- evaluation ----------------------------------------------------------------------------


def holdout_metrics(plays: Plays, catalogue: Catalogue | None, params: RecsParams,
                    n: int = 25) -> dict[str, Any]:
    """Train on the oldest 90 % of plays (by time), rank for every member who played both
    before and after the cutoff, score against what they played after it (binary relevance):
    NDCG@10, MRR@25, P@10, and the same for the popularity list as a reference."""
    if len(plays) < 20:
        return {"holdout_members": 0}
    cutoff = int(np.quantile(plays.ts, 1 - HOLDOUT_FRACTION))
    before = plays.ts < cutoff
    train = Plays(plays.member[before], plays.title[before], plays.ts[before], plays.weight[before],
                  plays.region[before])
    if len(train) == 0 or before.all():
        return {"holdout_members": 0}
    rec = Recommender.train(train, catalogue, params)
    states = states_from_plays(train)
    future: dict[str, set[str]] = {}
    for m, t in zip(plays.member[~before], plays.title[~before], strict=True):
        if str(m) in states and str(t) not in states[str(m)].history:
            future.setdefault(str(m), set()).add(str(t))
    members = sorted(future)
    if not members:
        return {"holdout_members": 0}
    lists = rec.recommend_many([states[m] for m in members], n)
    pop = rec.trending(n=n + 500)

    def score(ranked: Sequence[str], truth: set[str]) -> tuple[float, float, float]:
        hits = [1.0 if t in truth else 0.0 for t in ranked[:n]]
        disc = 1.0 / np.log2(np.arange(2, 12))
        dcg = float(np.dot(hits[:10] + [0.0] * (10 - len(hits[:10])), disc))
        idcg = float(disc[: min(10, len(truth))].sum())
        first = next((i for i, h in enumerate(hits) if h), None)
        return dcg / idcg, (1.0 / (first + 1) if first is not None else 0.0), sum(hits[:10]) / 10

    model_s = np.array([score([r.title for r in lst], future[m]) for m, lst in zip(members, lists, strict=True)])
    pop_s = np.array([score([r.title for r in pop if r.title not in states[m].history][:n], future[m])
                      for m in members])
    return {
        "holdout_members": len(members),
        "cutoff": cutoff,
        "ndcg10": float(model_s[:, 0].mean()), "mrr25": float(model_s[:, 1].mean()),
        "p10": float(model_s[:, 2].mean()),
        "popularity": {"ndcg10": float(pop_s[:, 0].mean()), "mrr25": float(pop_s[:, 1].mean()),
                       "p10": float(pop_s[:, 2].mean())},
    }


# ---- trainer -------------------------------------------------------------------------------


@dataclass
class TrainOutcome:
    version: str
    published: bool  # False: this export's version already existed (duplicate notification)
    quarantined: list[Quarantined] = field(default_factory=list)
    manifest: dict[str, Any] | None = None


def _latest_catalogue(exports: ObjectStore) -> Catalogue | None:
    keys = [k for k in exports.list(CATALOG_PREFIX) if not k.endswith("/")]
    movies = [k for k in keys if "tags" not in k.rsplit("/", 1)[-1]]
    if not movies:
        return None
    tags = [k for k in keys if "tags" in k.rsplit("/", 1)[-1]]
    return read_catalogue(exports.get(movies[-1]), exports.get(tags[-1]) if tags else None)


def retrain_from_export(bucket: str, key: str, etag: str, version_id: str | None, *,
                        exports: ObjectStore, models: ObjectStore, table: Table,
                        params: RecsParams | None = None, now: float | None = None,
                        size: int | None = None) -> TrainOutcome:
    """Raises BadEvent to reject the whole export (nothing is applied). ``size`` (from the
    notification) lets an oversized export be rejected before it is downloaded."""
    params = params or RecsParams()
    now = time.time() if now is None else now
    version = version_for(bucket, key, etag, version_id)
    if key.startswith(CATALOG_PREFIX):
        # A catalogue drop is read by the next plays export; it trains nothing by itself.
        return TrainOutcome(version="", published=False)
    if models.exists(artifact.manifest_key(version)):
        return TrainOutcome(version=version, published=False)
    if size is not None and size > MAX_EXPORT_BYTES:
        raise BadEvent("oversized", f"{size} bytes > {MAX_EXPORT_BYTES}")
    try:
        plays, bad = read_plays(exports.get(key), key)
        catalogue = _latest_catalogue(exports)
    except BadExport as exc:
        raise BadEvent(exc.reason, exc.detail) from None
    source = {"bucket": bucket, "key": key, "etag": etag, "version_id": version_id}
    quarantined = [Quarantined(b.reason, b.raw, b.raw.encode(), {**source, "line": b.line}) for b in bad]

    metrics = holdout_metrics(plays, catalogue, params)
    started = time.perf_counter()
    rec = Recommender.train(plays, catalogue, params)
    metrics["train_s"] = round(time.perf_counter() - started, 3)
    body = artifact.dumps(rec)
    manifest = artifact.make_manifest(version, body, rec, window=plays.window(), source=source,
                                      metrics=metrics, n_plays=len(plays), trained_at=_iso(now))
    models.put(artifact.model_key(version), body)
    write_serving_rows(rec, plays, table, version, now)
    # The manifest is the commit marker: written after the artifact and the rows.
    models.put(artifact.manifest_key(version), artifact.manifest_bytes(manifest),
               content_type="application/json")
    _advance_pointer(models, manifest)
    return TrainOutcome(version=version, published=True, quarantined=quarantined, manifest=manifest)


def _advance_pointer(models: ObjectStore, manifest: Mapping[str, Any]) -> None:
    """Point serving at this version unless a version trained on newer data is current (an
    old export delivered late must not roll serving back)."""
    try:
        current = json.loads(models.get(artifact.CURRENT_KEY))
        if current.get("data_end", 0) > manifest["data_window"]["end"]:
            return
    except ObjectNotFound:
        pass
    pointer = {"version": manifest["version"], "manifest_key": artifact.manifest_key(manifest["version"]),
               "data_end": manifest["data_window"]["end"]}
    models.put(artifact.CURRENT_KEY, json.dumps(pointer).encode(), content_type="application/json")


def write_serving_rows(rec: Recommender, plays: Plays, table: Table, version: str, now: float) -> None:
    states = states_from_plays(plays)
    members = sorted(states)
    # Plays folded in by recs_realtime after the export was cut are kept (histories merge).
    existing = table.get_many([member_key(m) for m in members])
    accounts: dict[str, str] = {}  # kept from recs_realtime's rows: the export has no accounts
    for m in members:
        old = existing.get(member_key(m))
        if old and old.get("account_id"):
            accounts[m] = str(old["account_id"])
        if old and old.get("history"):
            states[m].history = merge_history(states[m].history, decode_history(old["history"]))
    items: list[Item] = []
    for start in range(0, len(members), 256):
        chunk = members[start:start + 256]
        for m, recs in zip(chunk, rec.recommend_many([states[m] for m in chunk], TOP_N), strict=True):
            items.append(member_item(m, states[m], recs, version, now, accounts.get(m, "")))
    for r, region in enumerate(rec.regions):
        del r
        items.append({"pk": f"region#{region}", "sk": "recs#trending", "model_version": version,
                      "items": [x.to_item() for x in rec.trending(str(region), TRENDING_N)],
                      "updated_at": _iso(now)})
    for title, similar in sorted(rec.similar_all(SIMILAR_N).items()):
        if similar:
            items.append({"pk": f"title#{title}", "sk": "recs#similar", "model_version": version,
                          "items": [{"title": t, "score": round(s, 6)} for t, s in similar],
                          "updated_at": _iso(now)})
    table.put_many(items)


def encode_history(history: Mapping[str, int]) -> str:
    """A member's history as one compact JSON string of [title, unix seconds] pairs, newest
    first (one string attribute instead of a map of up to 500 entries: smaller items, cheaper
    reads and writes)."""
    pairs = sorted(history.items(), key=lambda kv: (-kv[1], kv[0]))
    return json.dumps(pairs, separators=(",", ":"))


def decode_history(text: str) -> dict[str, int]:
    return {str(t): int(ts) for t, ts in json.loads(text)} if text else {}


def member_item(member: str, state: MemberState, recs: Sequence[Any], version: str, now: float,
                account: str = "") -> Item:
    """The serving row of one member (a profile). ``account`` (when the plays named it) joins
    the row to delivery_prefs' per-account defaults; a profile of a shared account is not the
    account."""
    item: Item = {
        "pk": member_key(member)[0], "sk": MEMBER_SK,
        "history": encode_history(state.history), "region": state.region,
        "top": [r.to_item() for r in recs], "model_version": version,
        "updated_at": _iso(now), "expires_at": int(now) + MEMBER_TTL_S,
    }
    if account:
        item["account_id"] = account
    return item


# ---- real time -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Play:
    member: str
    title: str
    ts: int
    region: str
    account: str = ""  # the account the profile belongs to (events carry it; exports do not)


def plays_from_events(events: Sequence[Event]) -> list[Play]:
    """A playback_start is a play (the title the member chose); other types carry no new
    choice and are skipped by the caller's filter."""
    out = []
    for e in events:
        if isinstance(e, PlaybackStart):
            p = e.payload
            out.append(Play(p.profile_id, p.title_id, int(e.occurred_at.timestamp()), p.network.country, e.account_id))
    return out


@dataclass
class RealtimeOutcome:
    members_updated: int = 0
    members_unchanged: int = 0
    compute_ms_per_member: float = 0.0
    stale: bool = False


def apply_plays(plays: Sequence[Play], table: Table, rec: Recommender | None, version: str | None,
                now: float | None = None) -> RealtimeOutcome:
    """Fold a batch of plays into the members' stored histories and lists, idempotently."""
    now = time.time() if now is None else now
    by_member: dict[str, list[Play]] = {}
    for p in plays:
        by_member.setdefault(p.member, []).append(p)
    members = sorted(by_member)
    stored = table.get_many([member_key(m) for m in members])
    changed: list[str] = []
    states: dict[str, MemberState] = {}
    old_items: dict[str, Item] = {}
    accounts: dict[str, str] = {}
    for m in members:
        item = stored.get(member_key(m)) or {}
        old_items[m] = item
        state = MemberState(history=decode_history(item.get("history") or ""),
                            region=str(item.get("region") or by_member[m][-1].region))
        did = False
        for p in sorted(by_member[m], key=lambda p: (p.ts, p.title)):
            did = state.add(p.title, p.ts) or did
            state.region = p.region
        account = by_member[m][-1].account or str(item.get("account_id") or "")
        accounts[m] = account
        did = did or state.region != item.get("region") or account != str(item.get("account_id") or "")
        states[m] = state
        if did:
            changed.append(m)
    out = RealtimeOutcome(members_unchanged=len(members) - len(changed), stale=rec is None)
    if not changed:
        return out
    started = time.perf_counter()
    if rec is not None:
        lists = rec.recommend_many([states[m] for m in changed], TOP_N)
        out.compute_ms_per_member = (time.perf_counter() - started) * 1000 / len(changed)
        items = [member_item(m, states[m], lst, version or "", now, accounts[m]) for m, lst in zip(changed, lists, strict=True)]
    else:
        # No usable model: keep the history current and the last list, marked stale.
        items = []
        for m in changed:
            old = old_items[m]
            item = member_item(m, states[m], [], str(old.get("model_version", "")), now, accounts[m])
            item["top"] = old.get("top", [])
            item["stale"] = True
            items.append(item)
    table.put_many(items)
    out.members_updated = len(changed)
    return out


class ModelCache:
    """The serving model for one container: re-reads ``recs/current.json`` at most every
    ``ttl_s`` seconds, loads a new version after verifying its sha256, and keeps the last good
    model when the new one is missing or corrupt (``error`` says why)."""

    def __init__(self, models: ObjectStore, ttl_s: float = 60.0) -> None:
        self.models = models
        self.ttl_s = ttl_s
        self.version: str | None = None
        self.recommender: Recommender | None = None
        self.error: str | None = None
        self._checked = -float("inf")

    def get(self, now: float | None = None) -> tuple[Recommender | None, str | None]:
        now = time.monotonic() if now is None else now
        if now - self._checked < self.ttl_s:
            return self.recommender, self.version
        self._checked = now
        try:
            pointer = json.loads(self.models.get(artifact.CURRENT_KEY))
            if pointer["version"] != self.version:
                manifest = json.loads(self.models.get(pointer["manifest_key"]))
                rec = artifact.loads(self.models.get(manifest["model_key"]), manifest)
                self.recommender, self.version = rec, str(manifest["version"])
            self.error = None
        except (ObjectNotFound, KeyError, ValueError) as exc:
            self.error = f"{type(exc).__name__}: {exc}"[:300]
        return self.recommender, self.version
