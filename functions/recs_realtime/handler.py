"""recs_realtime: playback events on Kinesis (ReportBatchItemFailures) -> each member's new plays
folded into their stored history and their top-N recomputed with the current model (no
retrain), idempotently: replaying a play changes nothing. One BatchGetItem per 100 members and
one BatchWriteItem per 25 changed members.

The model is loaded once per container and refreshed from ``recs/current.json`` at most every
minute; a missing or corrupt artifact keeps the last good one, or, before any, records the plays
and marks the stored list stale (log line + ``ModelUnavailable`` metric)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from streamsense import config
from streamsense.events import Event
from streamsense.observability import MetricUnit, count, logger, metrics, tracer
from streamsense.pipeline import BatchResult, Parsed, kinesis_batch
from streamsense.quarantine import QuarantineSink
from streamsense.recs.service import ModelCache, apply_plays, plays_from_events

# Created once per container (cold start); the model itself loads on the first batch.
TABLE = config.table("recs")
MODELS = ModelCache(config.bucket("models"))
QUARANTINE = QuarantineSink(config.function_name(), config.queue("quarantine"))
ACCEPTS = frozenset({"playback_start"})


def _apply(batch: Sequence[Parsed[Event]]) -> BatchResult:
    rec, version = MODELS.get()
    if MODELS.error:
        count("ModelUnavailable")
        logger.warning("recs model unavailable, serving the last good one",
                       extra={"error": MODELS.error, "version": version})
    out = apply_plays(plays_from_events([p.value for p in batch]), TABLE, rec, version)
    count("MembersUpdated", out.members_updated)
    count("MembersUnchanged", out.members_unchanged)
    if out.members_updated and rec is not None:
        metrics.add_metric(name="ComputeMsPerMember", unit=MetricUnit.Milliseconds,
                           value=out.compute_ms_per_member)
    return BatchResult()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    return kinesis_batch(event, _apply, accepts=ACCEPTS, quarantine=QUARANTINE)
