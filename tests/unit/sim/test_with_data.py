"""With the team data: the MovieLens catalogue and throughput from the real ABR traces."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamsense.events import dump_event, validate_event
from streamsense_sim import SimConfig, Simulator


@pytest.mark.data
def test_movielens_catalogue_and_abr_traces(data_dir: Path) -> None:
    sim = Simulator(SimConfig(accounts=300, days=1, seed=5, data_dir=data_dir, trace_split="train"))
    assert sim.catalogue.source == "movielens"
    assert sim.catalogue.size == 9742
    assert sim.catalogue.title_ids[0] == "1" and sim.catalogue.names[0] == "Toy Story (1995)"
    # Base popularity is the ratings count: Forrest Gump (356) is the most rated movie.
    top = int(sim.catalogue.base.argmax())
    assert sim.catalogue.title_ids[top] == "356"
    assert sim.throughput.source == "abr-traces"
    fam = sim.throughput.families["norway-3g"]
    assert len(fam.files) == 43  # the even half of 86 traces
    assert fam.files[0] == sorted(p.name for p in (data_dir / "abr/traces/norway-3g").glob("*.json"))[0]
    lines = [r.line for r in sim.records()]
    beats = 0
    for line in lines:
        event = json.loads(line)
        assert dump_event(validate_event(event)) == line
        if event["type"] == "playback_start":
            assert event["payload"]["title_id"] in set(sim.catalogue.title_ids)
        beats += event["type"] == "playback_heartbeat"
    assert beats > 100
