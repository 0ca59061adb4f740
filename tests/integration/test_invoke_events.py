"""`invoke` on every sample event under events/ (naming in events/README.md), on the real SYSTEM
and functions: good samples succeed with nothing quarantined and nothing given up; bad samples
succeed too (bad input is never retried) and quarantine exactly the reasons their name or
sidecar states; the pipeline's own counts agree with the records and the quarantine queue."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from streamsense_local.samples import (
    EVENTS_DIR,
    Sample,
    discover,
    records_in,
    run_sample,
    source_kind,
)
from streamsense_local.stack import DEFAULT_FUNCTIONS_DIR, LocalStack

from infra.system import SYSTEM

SAMPLES = discover(EVENTS_DIR)
pytestmark = pytest.mark.xdist_group("sample-events")


def _built() -> list[str]:
    return [fn.name for fn in SYSTEM.functions if (DEFAULT_FUNCTIONS_DIR / fn.name / "handler.py").is_file()]


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack.start() as s:
        yield s


@pytest.mark.parametrize("function", _built())
def test_every_built_function_has_good_and_bad_samples(function: str) -> None:
    mine = [s for s in SAMPLES if s.function == function]
    assert any(not s.bad for s in mine), f"events/{function}/ has no good sample"
    assert any(s.bad for s in mine), f"events/{function}/ has no bad-*.json sample"


def test_sample_folders_name_real_functions() -> None:
    names = {fn.name for fn in SYSTEM.functions}
    folders = {p.name for p in EVENTS_DIR.iterdir() if p.is_dir()}
    assert folders <= names, f"events/ folders without a function in infra/system.py: {sorted(folders - names)}"


@pytest.mark.parametrize("sample", SAMPLES, ids=[f"{s.function}/{s.path.name}" for s in SAMPLES])
def test_invoke_sample(stack: LocalStack, sample: Sample) -> None:
    stack.reset()
    run = run_sample(stack, sample)
    inv, changes = run.invocation, run.changes
    assert inv.ok, f"{sample.path}: {inv.error}"
    kind = source_kind(run.event)
    if kind in ("kinesis", "sqs"):
        assert (inv.response or {}).get("batchItemFailures", []) == [], "bad input must be quarantined, not retried"
    assert "failures" not in changes.queues

    reasons = changes.quarantine_reasons()
    expected = sample.expected_quarantine()
    if sample.exact:
        assert reasons == expected, f"{sample.sidecar.name} says {expected}"
    elif sample.bad:
        assert reasons, f"{sample.path.name}: nothing was quarantined"
        assert set(reasons) == set(expected), (
            f"{sample.path.name} names reason {expected[0]!r} but the function quarantined {reasons}; "
            f"rename it bad-<reason>[--detail].json or add {sample.sidecar.name}"
        )
    else:
        assert reasons == [], f"a good sample quarantined {reasons}; add {sample.sidecar.name} if that is intended"

    # The pipeline's EMF counts agree with the payload and with the quarantine queue.
    m = inv.metrics
    quarantined = m.get("EventsQuarantined", 0) + m.get("RowsQuarantined", 0) + m.get("ObjectsRejected", 0)
    assert quarantined == len(reasons), f"metrics {m} vs {len(reasons)} quarantine messages"
    if kind in ("kinesis", "sqs"):
        accounted = sum(m.get(k, 0) for k in ("EventsApplied", "EventsQuarantined", "EventsSkipped", "EventsRetried"))
        assert accounted == records_in(run.event), f"every record is applied, skipped or quarantined: {m}"
        assert m.get("EventsRetried", 0) == 0
