"""fraud_scorer: activity and playback events on Kinesis (ReportBatchItemFailures) -> streaming
features per entity (DynamoDB ``fraud_state``: one BatchGetItem round, one BatchWriteItem round)
-> rules + the live model (and a candidate in shadow), one vectorized call per batch -> a
decision per scored event in ``decisions``; review/block also to the ``investigations`` queue.
Labels update the state (risk features) and are not decided on.

Each Kinesis shard writes its own state items (slot = stream/shard) and reads every slot, so
shards sharing a merchant, card, IP or device never overwrite each other. Domain logic lives in
``streamsense.fraud.scoring``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from streamsense import config
from streamsense.events import ACTIVITY_TYPES, PLAYBACK_TYPES, Event
from streamsense.fraud.decisions import Decider
from streamsense.fraud.features import StreamingFeatures
from streamsense.fraud.registry import ModelCache
from streamsense.fraud.scoring import score_batch
from streamsense.fraud.state import FraudStateStore
from streamsense.observability import count, logger, metrics, tracer
from streamsense.pipeline import BatchResult, Parsed, kinesis_batch
from streamsense.privacy import Pseudonymizer
from streamsense.quarantine import QuarantineSink

# Created once per container (cold start); models load on the first batch.
STATE = FraudStateStore(config.table("fraud_state"))
FEATURES = StreamingFeatures(STATE, Pseudonymizer.from_env())
DECISIONS = config.table("decisions")
INVESTIGATIONS = config.queue("investigations")
MODELS = ModelCache(config.bucket("models"))
QUARANTINE = QuarantineSink(config.function_name(), config.queue("quarantine"))
ACCEPTS = ACTIVITY_TYPES | PLAYBACK_TYPES


def _slot(source: Mapping[str, Any]) -> str:
    stream = str(source.get("stream", "")).rsplit("/", 1)[-1] or "stream"
    return f"{stream}/{source.get('shard') or 'shard'}"


def _apply(batch: Sequence[Parsed[Event]]) -> BatchResult:
    MODELS.refresh()
    if MODELS.live is None or MODELS.error:
        count("ModelFallback")
        logger.warning("fraud model unavailable: rules decide alone" if MODELS.live is None else "fraud model problem",
                       extra={"error": MODELS.error, "live": MODELS.live.version if MODELS.live else None})
    STATE.slot = _slot(batch[0].source)
    out = score_batch([p.value for p in batch], FEATURES, Decider(MODELS.live, MODELS.candidate), DECISIONS, INVESTIGATIONS)
    for action, n in out.by_action.items():
        count(f"Decisions_{action}", n)
    for rule, n in out.rules_fired.items():
        count(f"Rule_{rule}", n)
    count("InvestigationsQueued", out.queued)
    count("StateRowsAdded", out.new_rows)
    count("ShadowDisagreements", out.shadow_disagreements)
    if MODELS.live is not None:
        metrics.add_dimension(name="ModelVersion", value=MODELS.live.version)
    return BatchResult()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    return kinesis_batch(event, _apply, accepts=ACCEPTS, quarantine=QUARANTINE)
