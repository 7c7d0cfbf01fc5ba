"""DynamoDB stream of the audit table: each committed row's domain events onto the EventBridge bus.

Nothing on a request path waits for this: the rows were committed with the money they describe.
A record whose events the bus refuses is reported as failed (ReportBatchItemFailures): Lambda
retries from it, then sends the batch's description to the dead-letter queue (template.yaml).
"""

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from halum_payments import wiring
from halum_payments.observability import logger

settings = wiring.settings()
events = wiring.domain_events(settings)
processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


def record_handler(record: DynamoDBRecord) -> None:
    image = record.dynamodb.new_image if record.dynamodb else None
    if image:  # NEW_IMAGE: every audit row is an insert (rows are never updated or deleted)
        events.committed(image)


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
