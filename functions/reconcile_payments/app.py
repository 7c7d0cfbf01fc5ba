"""Scheduled: settle what Stripe said that the webhook never heard, from Stripe's own record."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from halum_payments import deadline, wiring
from halum_payments.observability import logger, metrics

settings = wiring.settings()
reconciler = wiring.reconciler(settings)


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    reconciler.register_lambda_context(context)
    # Stop with a margin before the function's own timeout; the next run resumes where this stopped.
    with deadline.bound(context):
        return reconciler.sweep(context.get_remaining_time_in_millis).summary()
