"""Logger and metrics shared by every function (service and namespace come from the environment)."""

from __future__ import annotations

import os
import warnings

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

# Defaults for local runs and tests; the template sets POWERTOOLS_SERVICE_NAME / _METRICS_NAMESPACE.
logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME") or "payments")
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "HalumHut/Payments")

__all__ = ["MetricUnit", "alarm", "count", "count_by", "logger", "metrics"]


def count(name: str, value: int = 1) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def alarm(name: str) -> None:
    """A money alarm's count (PaymentNeedsRefund, AmountMismatch, PaymentDisputed), written at once
    rather than with the invocation's other metrics at its end: a function stopped after it (its time
    limit) still raises the alarm, and a redelivery finds the fact recorded and counts nothing again."""
    _written_now(name, {})


def count_by(name: str, dimension: str, value: str) -> None:
    """One count of `name` with a dimension of its own (besides `service`), written at once: the
    invocation's other metrics keep theirs (Powertools' add_dimension would apply to all of them)."""
    _written_now(name, {dimension: value})


def _written_now(name: str, dimensions: dict[str, str]) -> None:
    dimensions = {"service": str(logger.service), **dimensions}
    with single_metric(
        name=name, unit=MetricUnit.Count, value=1, namespace=metrics.namespace, default_dimensions=dimensions
    ):
        pass


# Most invocations emit no business metric; Powertools warns on every such flush otherwise.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)
