"""content_bandit: learns which artwork / trailer / synopsis variant of a title to show from the
``impression`` events on the playback stream (Kinesis, ReportBatchItemFailures).

Thin on purpose: the shared pipeline decodes and parses the batch and quarantines bad records,
``streamsense.content.store.apply_kinesis_batch`` applies the impressions exactly once to the
``content`` table (batched reads and writes), and the pipeline answers Lambda. Other playback
event types on the stream are counted as skipped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from streamsense import config
from streamsense.content.store import apply_kinesis_batch
from streamsense.events import Event
from streamsense.observability import logger, metrics, tracer
from streamsense.pipeline import BatchResult, Parsed, kinesis_batch
from streamsense.quarantine import QuarantineSink

# Created once per container (cold start).
TABLE = config.table("content")
QUARANTINE = QuarantineSink(config.function_name(), config.queue("quarantine"))
ACCEPTS = frozenset({"impression"})


def _apply(batch: Sequence[Parsed[Event]]) -> BatchResult:
    return apply_kinesis_batch(batch, TABLE)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    return kinesis_batch(event, _apply, accepts=ACCEPTS, quarantine=QUARANTINE)
