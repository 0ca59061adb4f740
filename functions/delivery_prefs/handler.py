"""delivery_prefs: playback events on Kinesis (ReportBatchItemFailures) -> each member's audio
and subtitle defaults per profile and situation (``member#<account>`` / ``delivery`` in the recs
table, next to the recommendations) and each region's defaults for new members.

Title metadata (original language, dubbed) comes from the newest CSV under ``catalogue/`` in
the exports bucket, loaded at cold start and re-read at most hourly. Without it (not declared,
missing or unreadable) the function keeps recording picks and serves language-only defaults,
and says so in a log line and the ``CatalogueUnavailable`` metric; picks are stored with their
title id, so defaults sharpen as soon as a catalogue is there."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from streamsense import config
from streamsense.delivery.catalogue import CatalogueCache
from streamsense.delivery.service import DELIVERY_TYPES, DeliveryPrefs
from streamsense.events import Event
from streamsense.observability import count, logger, metrics, tracer
from streamsense.pipeline import BatchResult, Parsed, kinesis_batch
from streamsense.quarantine import QuarantineSink


def _exports() -> Any:
    try:
        return config.bucket("exports")
    except config.MissingResource as exc:
        logger.warning("no title catalogue: exports bucket not declared", extra={"error": str(exc)})
        return None


# Created once per container (cold start).
CATALOGUE = CatalogueCache(_exports())
SERVICE = DeliveryPrefs(config.table("recs"))
QUARANTINE = QuarantineSink(config.function_name(), config.queue("quarantine"))


def _apply(batch: Sequence[Parsed[Event]]) -> BatchResult:
    SERVICE.catalogue = CATALOGUE.get()
    if CATALOGUE.error:
        count("CatalogueUnavailable")
        logger.warning("title catalogue unavailable", extra={"error": CATALOGUE.error})
    return SERVICE.apply(batch)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    return kinesis_batch(event, _apply, accepts=DELIVERY_TYPES, quarantine=QUARANTINE)
