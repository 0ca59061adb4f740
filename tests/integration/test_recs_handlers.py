"""recs_trainer and recs_realtime against the local stack (moto server, Lambda's S3-async and
Kinesis semantics): the sample events in events/recs_*/, duplicate S3 notifications, rejected
files, replayed plays, a corrupt model, and a whole export -> plays -> updated list round."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamsense.recs import artifact
from streamsense.recs.service import decode_history
from streamsense_local.samples import Sample, run_sample
from streamsense_local.stack import LocalStack

from infra.system import SYSTEM, System

EVENTS = Path(__file__).resolve().parents[2] / "events"
RECS_SYSTEM = System(
    name="recs-it",
    streams=tuple(s for s in SYSTEM.streams if s.name == "playback"),
    tables=tuple(t for t in SYSTEM.tables if t.name == "recs"),
    buckets=tuple(b for b in SYSTEM.buckets if b.name in {"exports", "models"}),
    queues=tuple(q for q in SYSTEM.queues if q.name in {"quarantine", "failures"}),
    functions=(SYSTEM.function("recs_trainer"), SYSTEM.function("recs_realtime")),
)

pytestmark = pytest.mark.xdist_group("recs_stack")


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack.start(RECS_SYSTEM) as s:
        yield s


@pytest.fixture
def fresh(stack: LocalStack) -> LocalStack:
    stack.reset()
    stack.set_duplicate_s3_notifications(False)
    return stack


def _sample(function: str, name: str) -> Sample:
    return Sample(function, EVENTS / function / f"{name}.json")


def _manifests(stack: LocalStack) -> list[str]:
    return sorted(k for k in stack.objects("models") if k.endswith("manifest.json"))


def _items(stack: LocalStack) -> dict[tuple[str, str], dict]:
    return {(i["pk"], i["sk"]): i for i in stack.scan("recs")}


def test_trainer_sample_publishes_a_version_and_serving_rows(fresh: LocalStack) -> None:
    run = run_sample(fresh, _sample("recs_trainer", "viewing-history"))
    assert run.invocation.ok, run.invocation.error
    assert run.invocation.response["objects"][0]["status"] == "applied"
    assert run.invocation.metrics["ModelVersionsPublished"] == 1
    (manifest_key,) = _manifests(fresh)
    manifest = json.loads(fresh.get_object("models", manifest_key))
    assert manifest["n_plays"] == 51 and manifest["n_titles"] == 13
    assert manifest["source"]["key"] == "viewing-history/2024-12-01/plays part 1.csv"
    body = fresh.get_object("models", manifest["model_key"])
    assert artifact.loads(body, manifest).titles[0] == "t-arrival"
    assert json.loads(fresh.get_object("models", artifact.CURRENT_KEY))["version"] == manifest["version"]
    items = _items(fresh)
    late = items[("member#prof-05", "recs")]  # watched dune and arrival only
    assert [(r["title"], r["reason"], r.get("because")) for r in late["top"][:1]] == [
        ("t-blade", "because_you_watched", "t-arrival")]
    assert ("region#ALL", "recs#trending") in items and ("title#t-dune", "recs#similar") in items
    assert run.changes.queues == {}


def test_duplicate_s3_notification_produces_one_version(fresh: LocalStack) -> None:
    fresh.set_duplicate_s3_notifications(True)
    body = (EVENTS / "recs_trainer/viewing-history.setup/buckets/exports/viewing-history/2024-12-01/plays part 1.csv").read_bytes()
    fresh.put_object("exports", "viewing-history/2024-12-05/plays.csv", body)
    fresh.drain()
    calls = [h for h in fresh.history if h.function == "recs_trainer"]
    assert len(calls) == 2 and all(c.ok for c in calls)
    (manifest_key,) = _manifests(fresh)
    version = manifest_key.split("/")[1]
    assert sorted(fresh.objects("models")) == [artifact.CURRENT_KEY, manifest_key, artifact.model_key(version)]


def test_a_bad_row_is_quarantined_with_its_line_and_the_rest_applied(fresh: LocalStack) -> None:
    run = run_sample(fresh, _sample("recs_trainer", "bad-invalid-row"))
    assert run.invocation.ok
    (msg,) = run.changes.queues["quarantine"]
    assert (msg["reason"], msg["source"]["line"]) == ("invalid_row", 58)
    assert "yesterday" in msg["detail"]
    assert len(_manifests(fresh)) == 1


@pytest.mark.parametrize(("name", "reason"), [("bad-too-many-bad-rows", "too_many_bad_rows"),
                                              ("bad-unknown-format", "unknown_format")])
def test_a_bad_file_is_rejected_whole(fresh: LocalStack, name: str, reason: str) -> None:
    run = run_sample(fresh, _sample("recs_trainer", name))
    assert run.invocation.ok and run.invocation.response["objects"][0]["status"] == "rejected"
    assert [m["reason"] for m in run.changes.queues["quarantine"]] == [reason]
    assert _manifests(fresh) == [] and _items(fresh) == {}


def test_catalogue_drop_trains_nothing(fresh: LocalStack) -> None:
    run = run_sample(fresh, _sample("recs_trainer", "catalog"))
    assert run.invocation.ok and _manifests(fresh) == []


def _cold(stack: LocalStack) -> None:
    """Restart recs_realtime's container: its model cache starts empty, as after a deploy."""
    stack.processes["recs_realtime"].stop()


def test_realtime_sample_updates_lists_and_a_replay_changes_nothing(fresh: LocalStack) -> None:
    _cold(fresh)
    sample = _sample("recs_realtime", "plays")
    run = run_sample(fresh, sample)
    assert run.invocation.ok and run.invocation.response == {"batchItemFailures": []}
    assert run.invocation.metrics["MembersUpdated"] == 2
    assert run.invocation.metrics["EventsSkipped"] == 1  # the heartbeat
    items = _items(fresh)
    member = items[("member#prof-05", "recs")]
    assert decode_history(member["history"]) == {"t-dune": 1733227200}
    assert member["region"] == "US"
    new = items[("member#prof-new", "recs")]  # first play ever: a crime title
    assert [(r["title"], r["reason"], r.get("because")) for r in new["top"][:2]] == [
        ("t-ronin", "because_you_watched", "t-heat"), ("t-drive", "because_you_watched", "t-heat")]
    before = _items(fresh)
    again = fresh.invoke("recs_realtime", sample.event())
    assert again.ok and again.metrics["MembersUnchanged"] == 2
    assert _items(fresh) == before


def test_duplicate_records_in_one_batch_apply_once(fresh: LocalStack) -> None:
    run = run_sample(fresh, _sample("recs_realtime", "play-duplicate"))
    assert run.invocation.ok and run.invocation.metrics["MembersUpdated"] == 1
    assert len(_items(fresh)) == 1


def test_corrupt_model_records_plays_and_marks_the_list_stale(fresh: LocalStack) -> None:
    _cold(fresh)
    run = run_sample(fresh, _sample("recs_realtime", "corrupt-model"))
    assert run.invocation.ok and run.invocation.metrics["ModelUnavailable"] == 1
    (item,) = _items(fresh).values()
    assert item["stale"] is True and decode_history(item["history"]) == {"t-dune": 1733227200}


@pytest.mark.parametrize("name", ["bad-malformed-json", "bad-unknown-type", "bad-invalid-fields--missing-title",
                                  "bad-oversized", "bad-undecodable--not-base64", "mixed-good-and-bad"])
def test_bad_play_events_are_quarantined(fresh: LocalStack, name: str) -> None:
    sample = _sample("recs_realtime", name)
    run = run_sample(fresh, sample)
    assert run.invocation.ok and run.invocation.response == {"batchItemFailures": []}
    assert run.changes.quarantine_reasons() == sample.expected_quarantine()


def test_export_then_plays_on_the_stream_update_the_list(fresh: LocalStack) -> None:
    setup = EVENTS / "recs_trainer/viewing-history.setup/buckets/exports/viewing-history"
    fresh.put_object("exports", "viewing-history/catalog/titles.csv", (setup / "catalog/titles.csv").read_bytes())
    fresh.put_object("exports", "viewing-history/2024-12-01/plays.csv", (setup / "2024-12-01/plays part 1.csv").read_bytes())
    fresh.drain()
    assert len(_manifests(fresh)) == 1
    top_before = _items(fresh)[("member#prof-25", "recs")]["top"]
    # prof-25 (a crime fan) starts a sci-fi title on the playback stream.
    event = json.loads(json.dumps(_sample("recs_realtime", "plays").event()))
    raw = event["Records"][:1]
    data = json.loads(__import__("base64").b64decode(raw[0]["kinesis"]["data"]))
    data["payload"]["profile_id"] = "prof-25"
    _cold(fresh)  # a warm container would pick the new version up within its 60 s cache TTL
    fresh.put_events([data])
    fresh.drain()
    after = _items(fresh)[("member#prof-25", "recs")]
    # Before: one personal pick, then trending backfill. After: the sci-fi titles every Dune
    # watcher went on to watch come right after the crime pick, each because of Dune.
    assert [(r["title"], r["reason"], r.get("because")) for r in top_before[:2]] == [
        ("t-drive", "because_you_watched", "t-ronin"), ("t-coco", "popular", None)]
    assert [(r["title"], r["reason"], r.get("because")) for r in after["top"][:4]] == [
        ("t-drive", "because_you_watched", "t-ronin"), ("t-arrival", "because_you_watched", "t-dune"),
        ("t-sicario", "new_and_similar", "t-heat"), ("t-blade", "because_you_watched", "t-dune")]
    assert "t-dune" not in [r["title"] for r in after["top"]]
