"""investigation: review/block decisions from the ``investigations`` SQS queue (partial batch
response) -> a case per decision in ``cases``: the account's timeline (fraud_state), its past
decisions, linked accounts through shared devices, IPs /24, cards and merchants, the rules and
model reasons, and a recommended action. A redelivered message rewrites the same case. Domain
logic lives in ``streamsense.fraud.investigation``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from streamsense import config
from streamsense.fraud.investigation import DecisionMessage, open_cases, parse_message
from streamsense.fraud.state import FraudStateStore
from streamsense.observability import count, logger, metrics, tracer
from streamsense.pipeline import BatchResult, Parsed, sqs_batch
from streamsense.quarantine import QuarantineSink

# Created once per container (cold start). The reader takes every writer slot of fraud_state.
STATE = FraudStateStore(config.table("fraud_state"), slot=None)
DECISIONS = config.table("decisions")
CASES = config.table("cases")
QUARANTINE = QuarantineSink(config.function_name(), config.queue("quarantine"))


def _apply(batch: Sequence[Parsed[DecisionMessage]]) -> BatchResult:
    cases = open_cases([p.value for p in batch], STATE, DECISIONS, CASES)
    count("CasesOpened", len(cases))
    for case in cases:
        count(f"Recommended_{case['recommended_action']}")
    return BatchResult()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    return sqs_batch(event, _apply, parse=parse_message, quarantine=QUARANTINE)
