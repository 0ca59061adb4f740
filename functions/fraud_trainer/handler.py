"""fraud_trainer: an S3 ObjectCreated notification on ``exports/fraud-labels/`` (a labeled
payment-history export) -> streaming features (offline driver, same definitions as the scorer)
-> train -> a candidate version in the models bucket (npz + manifest with sha256, then
``fraud/candidate.json``), which fraud_scorer scores in shadow until it is promoted.

A duplicated notification maps to the same version id and publishes nothing new; an export
that cannot be used is rejected whole (quarantined with the reason). Domain logic lives in
``streamsense.fraud.training``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streamsense import config
from streamsense.fraud.training import train_from_export
from streamsense.observability import count, logger, metrics, tracer
from streamsense.pipeline import S3Object, s3_batch
from streamsense.quarantine import Quarantined, QuarantineSink

# Created once per container (cold start).
EXPORTS = config.bucket("exports")
MODELS = config.bucket("models")
QUARANTINE = QuarantineSink(config.function_name(), config.queue("quarantine"))


def _apply(obj: S3Object) -> list[Quarantined]:
    outcome = train_from_export(obj.bucket, obj.key, obj.etag, obj.version_id, exports=EXPORTS, models=MODELS)
    if outcome.published and outcome.model is not None:
        count("ModelVersionsPublished")
        m = outcome.model.manifest
        logger.info("fraud model candidate published", extra={
            "version": outcome.version, "key": obj.key, "metrics": m["metrics"],
            "thresholds": m["thresholds"], "data_window": m["data_window"]})
    else:
        count("DuplicateExports")
        logger.info("export already trained: no new version", extra={"version": outcome.version, "key": obj.key})
    return []


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    return s3_batch(event, _apply, quarantine=QUARANTINE)
