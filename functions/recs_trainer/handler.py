"""recs_trainer: an S3 ObjectCreated notification on ``exports/viewing-history/`` -> read the
export (bad rows quarantined with their line numbers; a file with too many bad rows rejected
whole) -> evaluate on a time-ordered holdout -> retrain -> publish a model version (npz +
manifest with sha256, then ``recs/current.json``) -> write the serving rows to the recs table.

A duplicated notification maps to the same version id and publishes nothing new. Domain logic
lives in ``streamsense.recs.service``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streamsense import config
from streamsense.observability import count, logger, metrics, tracer
from streamsense.pipeline import S3Object, s3_batch
from streamsense.quarantine import Quarantined, QuarantineSink
from streamsense.recs.service import retrain_from_export

# Created once per container (cold start).
EXPORTS = config.bucket("exports")
MODELS = config.bucket("models")
TABLE = config.table("recs")
QUARANTINE = QuarantineSink(config.function_name(), config.queue("quarantine"))


def _apply(obj: S3Object) -> list[Quarantined]:
    outcome = retrain_from_export(obj.bucket, obj.key, obj.etag, obj.version_id,
                                  exports=EXPORTS, models=MODELS, table=TABLE, size=obj.size)
    if outcome.published and outcome.manifest is not None:
        count("ModelVersionsPublished")
        logger.info("model version published", extra={
            "version": outcome.version, "key": obj.key, "metrics": outcome.manifest["metrics"],
            "n_plays": outcome.manifest["n_plays"], "sha256": outcome.manifest["sha256"]})
    elif outcome.version:
        count("DuplicateExports")
        logger.info("export already trained: no new version", extra={"version": outcome.version, "key": obj.key})
    else:
        logger.info("catalogue export stored for the next retrain", extra={"key": obj.key})
    return outcome.quarantined


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    return s3_batch(event, _apply, quarantine=QUARANTINE)
