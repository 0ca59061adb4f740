"""Trainer and real-time logic against the in-memory storage twins: versioned publishing,
duplicate notifications, rejected files, sha256-verified artifacts, idempotent fold-in, and
the fallback when the model is missing or corrupt."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pytest
import recs_tiny as tiny
from streamsense.events import BadEvent, validate_event
from streamsense.recs import artifact
from streamsense.recs.model import RecsParams
from streamsense.recs.service import (
    ModelCache,
    Play,
    apply_plays,
    decode_history,
    encode_history,
    member_key,
    plays_from_events,
    retrain_from_export,
    version_for,
)
from streamsense.storage import MemoryObjectStore, MemoryTable

PARAMS = replace(RecsParams(), min_count=2, lam=1.0)
NOW = 1_733_300_000.0


def _csv() -> bytes:
    p = tiny.plays()
    rows = ["member,title,timestamp,region"] + [
        f"{m},{t},{ts},{r}" for m, t, ts, r in zip(p.member, p.title, p.ts, p.region, strict=True)]
    return ("\n".join(rows) + "\n").encode()


def _catalogue_csv() -> bytes:
    return ("title,name,genres\n" + "".join(
        f"{t},{n},{'|'.join(g)}\n" for t, (n, g) in tiny.NAMES.items())).encode()


@pytest.fixture
def stores() -> tuple[MemoryObjectStore, MemoryObjectStore, MemoryTable]:
    exports, models, table = MemoryObjectStore(), MemoryObjectStore(), MemoryTable("recs")
    exports.put("viewing-history/2024-12-01/plays.csv", _csv())
    exports.put("viewing-history/catalog/titles.csv", _catalogue_csv())
    return exports, models, table


def _train(stores: tuple, key: str = "viewing-history/2024-12-01/plays.csv", etag: str = "e1"):  # type: ignore[no-untyped-def]
    exports, models, table = stores
    return retrain_from_export("exports", key, etag, None, exports=exports, models=models, table=table,
                               params=PARAMS, now=NOW)


def test_retrain_publishes_one_version_with_manifest_and_rows(stores: tuple) -> None:
    _, models, table = stores
    out = _train(stores)
    assert out.published and out.quarantined == []
    v = version_for("exports", "viewing-history/2024-12-01/plays.csv", "e1", None)
    assert out.version == v
    assert sorted(models.objects) == [artifact.CURRENT_KEY, artifact.manifest_key(v), artifact.model_key(v)]
    manifest = json.loads(models.objects[artifact.manifest_key(v)])
    assert manifest["version"] == v and manifest["n_plays"] == 26 and manifest["n_titles"] == 7
    assert manifest["data_window"] == {"start": tiny.T0 + 600, "end": tiny.T0 + 26 * 600}
    assert manifest["metrics"]["holdout_members"] >= 1
    assert json.loads(models.objects[artifact.CURRENT_KEY])["version"] == v
    late = table.items[member_key("sf-late")]
    assert [(r["title"], r["reason"]) for r in late["top"][:3]] == [
        ("blade", "because_you_watched"), ("soul", "popular"), ("foundation", "new_and_similar")]
    assert late["expires_at"] == int(NOW) + 180 * 86_400
    # 12 plays per region is below the 50 a regional row needs: every region shows the global list.
    us = table.items[("region#US", "recs#trending")]["items"]
    assert [(r["title"], r["reason"]) for r in us[:4]] == [
        ("arrival", "popular"), ("dune", "popular"), ("soul", "popular"), ("coco", "popular")]
    assert table.items[("title#dune", "recs#similar")]["items"][0]["title"] == "arrival"


def test_duplicate_notification_produces_one_version(stores: tuple) -> None:
    _, models, table = stores
    first = _train(stores)
    objects, items = dict(models.objects), dict(table.items)
    again = _train(stores)
    assert first.published and not again.published and again.version == first.version
    assert models.objects == objects and table.items == items
    # The same key re-uploaded (new ETag) is new data: a second version.
    assert _train(stores, etag="e2").published
    assert len([k for k in models.objects if k.endswith("manifest.json")]) == 2


def test_bad_rows_quarantined_and_bad_files_rejected(stores: tuple) -> None:
    exports, models, _ = stores
    exports.put("viewing-history/b.csv", _csv().replace(b"an-3,soul", b"an-3,soul,extra", 1) * 1 + b"x,y,z\n")
    with pytest.raises(BadEvent) as err:  # 2 bad rows of 34: over the 1 % limit
        _train(stores, key="viewing-history/b.csv")
    assert err.value.reason == "too_many_bad_rows"
    assert models.objects == {}
    exports.put("viewing-history/c.csv", _csv() + b"".join(b"p%d,dune,%d,US\n" % (i, tiny.T0 + i) for i in range(200))
                + b"p1,dune,not-a-time,US\n")
    out = _train(stores, key="viewing-history/c.csv")
    assert out.published
    assert [(q.reason, q.source["line"]) for q in out.quarantined] == [("invalid_row", 228)]


def test_an_oversized_export_is_rejected_before_download(stores: tuple) -> None:
    exports, models, table = stores
    with pytest.raises(BadEvent) as err:
        retrain_from_export("exports", "viewing-history/2024-12-01/plays.csv", "e9", None, exports=exports,
                            models=models, table=table, params=PARAMS, now=NOW, size=3 * 1024**3)
    assert err.value.reason == "oversized" and exports.requests == 2  # the two setup puts only


def test_catalogue_drop_trains_nothing(stores: tuple) -> None:
    _, models, _ = stores
    out = _train(stores, key="viewing-history/catalog/titles.csv")
    assert not out.published and models.objects == {}


def test_artifact_round_trip_and_tamper_check(stores: tuple) -> None:
    _, models, _ = stores
    out = _train(stores)
    manifest = out.manifest
    body = models.objects[manifest["model_key"]]
    rec = artifact.loads(body, manifest)
    assert rec.titles.tolist() == ["arrival", "blade", "coco", "dune", "foundation", "soul", "up"]
    with pytest.raises(artifact.ArtifactError, match="sha256 mismatch"):
        artifact.loads(body[:-1] + bytes([body[-1] ^ 1]), manifest)
    # Nothing in the npz needs pickle.
    with np.load(__import__("io").BytesIO(body), allow_pickle=False) as z:
        assert all(z[k].dtype != object for k in z.files)


def _start(eid: str, member: str, title: str, when: str) -> object:
    net = {"ip": "203.0.113.7", "asn": 64500, "country": "US", "lat": 30.2, "lon": -97.7}
    return validate_event({
        "type": "playback_start", "version": 1, "event_id": eid, "occurred_at": when, "account_id": "acc-1",
        "payload": {"session_id": "s1", "profile_id": member, "title_id": title,
                    "device": {"device_id": "d1", "device_type": "tv"}, "network": net,
                    "network_type": "wifi", "startup_ms": 800, "audio_language": "en", "subtitle_language": "off"}})


def test_realtime_fold_in_is_idempotent(stores: tuple) -> None:
    _, models, table = stores
    _train(stores)
    cache = ModelCache(models)
    rec, version = cache.get(now=0.0)
    assert rec is not None and cache.error is None
    plays = plays_from_events([_start("e1", "an-1", "dune", "2024-12-04T10:00:00Z")])  # type: ignore[list-item]
    assert plays == [Play("an-1", "dune", int(datetime(2024, 12, 4, 10, tzinfo=UTC).timestamp()), "US", "acc-1")]
    out = apply_plays(plays, table, rec, version, now=NOW)
    assert (out.members_updated, out.members_unchanged) == (1, 0)
    item = table.items[member_key("an-1")]
    assert item["account_id"] == "acc-1"  # joins the profile to delivery_prefs' account row
    assert [(r["title"], r["reason"], r.get("because")) for r in item["top"][:2]] == [
        ("arrival", "because_you_watched", "dune"), ("blade", "because_you_watched", "dune")]
    assert out.compute_ms_per_member < 50
    snapshot = dict(table.items)
    again = apply_plays(plays, table, rec, version, now=NOW + 60)
    assert (again.members_updated, again.members_unchanged) == (0, 1)
    assert table.items == snapshot
    # A brand-new member is cold: trending (DE is too small for its own row: the global one).
    apply_plays([Play("new", "nope", 1733400000, "DE")], table, rec, version, now=NOW)
    assert [(r["title"], r["reason"]) for r in table.items[member_key("new")]["top"][:3]] == [
        ("arrival", "popular"), ("dune", "popular"), ("soul", "popular")]
    assert "account_id" not in table.items[member_key("new")]  # a play with no account names none
    # The next retrain rewrites the row from the export (which has no accounts): the account stays.
    retrained = _train(stores, etag="e2")
    assert table.items[member_key("an-1")]["model_version"] == retrained.version != version
    assert table.items[member_key("an-1")]["account_id"] == "acc-1"


def test_missing_or_corrupt_model_keeps_the_last_good_one(stores: tuple) -> None:
    _, models, table = stores
    cache = ModelCache(models, ttl_s=10)
    assert cache.get(now=0.0) == (None, None) and cache.error is not None
    out = apply_plays([Play("an-1", "dune", 1733400000, "US")], table, None, None, now=NOW)
    assert out.stale and table.items[member_key("an-1")]["stale"] is True
    assert table.items[member_key("an-1")]["history"] == '[["dune",1733400000]]'
    assert decode_history(table.items[member_key("an-1")]["history"]) == {"dune": 1733400000}
    first = _train(stores)
    rec, version = cache.get(now=20.0)
    assert version == first.version and rec is not None
    # Corrupt the next version's artifact: the cache keeps serving the good one.
    second = _train(stores, etag="e2")
    key = second.manifest["model_key"]
    models.objects[key] = models.objects[key][:-5] + b"xxxxx"
    rec2, version2 = cache.get(now=40.0)
    assert version2 == first.version and rec2 is rec
    assert cache.error is not None and "sha256 mismatch" in cache.error


def test_history_encoding_round_trips_newest_first() -> None:
    h = {"b": 20, "a": 30, "c\nx": 10}
    assert encode_history(h) == '[["a",30],["b",20],["c\\nx",10]]'
    assert decode_history(encode_history(h)) == h
    assert decode_history("") == {}
