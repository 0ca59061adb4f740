"""cache_hints: playback starts on Kinesis (ReportBatchItemFailures) -> plays per region, title
and fill window in the cache table (idempotent: per-shard watermarks + session markers); on the
schedule (EventBridge, each fill-window boundary) -> next-window demand forecast and cache-fill
hints per site, to the cache table and to hints/<site>/<window>.json in the hints bucket.

Environment: TABLE_CACHE, BUCKET_HINTS, QUEUE_QUARANTINE (declared in infra/system.py) and
optionally FILL_WINDOW_S (default 21600: four fills a day)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from streamsense import config
from streamsense.caching.aggregate import PLAY_TYPES
from streamsense.caching.service import CacheHints, HintsConfig
from streamsense.observability import logger, metrics, tracer
from streamsense.pipeline import kinesis_batch
from streamsense.quarantine import QuarantineSink

# Created once per container (cold start).
SERVICE = CacheHints(
    config.table("cache"),
    config.bucket("hints"),
    HintsConfig(window_s=int(os.environ.get("FILL_WINDOW_S", "21600"))),
)
QUARANTINE = QuarantineSink(config.function_name(), config.queue("quarantine"))


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    if event.get("detail-type") == "Scheduled Event":
        at = datetime.fromisoformat(str(event["time"]).replace("Z", "+00:00"))
        report = SERVICE.publish(at)
        logger.info("hints", extra={"window": report.window, "sites": report.sites, "skipped": report.skipped, "entries": report.entries})
        return {"window": report.window, "sites": report.sites, "skipped": report.skipped, "entries": report.entries}
    return kinesis_batch(event, SERVICE.apply, accepts=PLAY_TYPES, quarantine=QUARANTINE)
