"""qoe_hints: playback events on Kinesis (ReportBatchItemFailures) -> per-segment throughput,
early-session throughput, prediction-ratio and startup-delay sketches in the qoe table ->
re-published ABR hints (startup bitrate, throughput prior, prediction discount, buffer target)
for the touched segments and their coarser fallbacks.

Idempotent: a replayed record is skipped by its shard's watermark in every segment item it
touches, and a producer re-send by its event id in the session's state. Per batch: one
BatchGetItem round for session states and segment items, BatchWriteItem for both, and Query
calls only for hints older than their refresh period (5 minutes)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streamsense import config
from streamsense.observability import logger, metrics, tracer
from streamsense.pipeline import kinesis_batch
from streamsense.qoe.aggregate import QOE_TYPES
from streamsense.qoe.service import QoeHints
from streamsense.quarantine import QuarantineSink

# Created once per container (cold start).
SERVICE = QoeHints(config.table("qoe"))
QUARANTINE = QuarantineSink(config.function_name(), config.queue("quarantine"))


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    return kinesis_batch(event, SERVICE.apply, accepts=QOE_TYPES, quarantine=QUARANTINE)
