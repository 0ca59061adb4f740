"""The observability objects, defined once per container: Powertools Logger (JSON; correlation id
= event_id where a single event is in hand), Metrics (CloudWatch EMF, namespace and service from
POWERTOOLS_* env) and Tracer (X-Ray; disabled outside Lambda)."""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

logger = Logger()
metrics = Metrics()
# Outside Lambda (tests, local runtime, benchmarks) there is no X-Ray daemon to talk to.
tracer = Tracer(disabled=not os.environ.get("AWS_LAMBDA_FUNCTION_NAME") or bool(os.environ.get("STREAMSENSE_LOCAL")))


def count(name: str, value: float = 1) -> None:
    """Add a count metric to this invocation's EMF blob."""
    if value:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


__all__ = ["MetricUnit", "count", "logger", "metrics", "tracer"]
