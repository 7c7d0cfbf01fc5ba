"""Domain events from `python -m local` (what `make run` serves), as a shop developer consumes them:
a small HTTP receiver, EVENTS_TARGET_URL pointing at it, and a checkout -> payment -> refund over
HTTP (the Stripe sandbox delivers its signed webhooks). Restated from docs/events.md: each event is
POSTed as EventBridge delivers it to a target (`id`, `source` halum.payments, `detail-type`, `time`,
`detail`), printed on the server's console as it is published, and valid against its schema.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from support.event_schemas import check_envelope

pytestmark = pytest.mark.e2e


class Receiver:
    """What a consumer runs: it acknowledges each POSTed event with 204 and keeps it."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        received = self.events

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                received.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/events"

    def of_order(self, order: int, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        """The order's events once at least `count` arrived (delivery is asynchronous)."""
        deadline = time.monotonic() + timeout
        while True:
            found = [e for e in self.events if e["detail"]["order"] == order]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.1)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    consumer = Receiver()
    yield consumer
    consumer.close()


def test_a_consumer_receives_the_events_of_a_checkout_its_payment_and_its_refund(start_local_server, receiver):
    server = start_local_server(EVENTS_TARGET_URL=receiver.url)
    assert server.banner(r"Events: .*POSTed to (\S+)\)").group(1) == receiver.url

    session = server.checkout(1, 1)["id"]
    order = int(server.sandbox.session(session)["metadata"]["order_id"])
    server.sandbox.press(session, "pay")
    server.sandbox.press(session, "refund", {"amount": "1000"})
    server.sandbox.press(session, "refund")  # the rest

    events = receiver.of_order(order, 5)
    for event in events:
        check_envelope(event)
    assert [e["detail-type"] for e in events] == [
        "order.placed",
        "payment.completed",
        "order.paid",
        "payment.refunded",
        "payment.refunded",
    ]
    assert [e["detail"]["full"] for e in events[3:]] == [False, True]
    assert len({e["detail"]["event_id"] for e in events}) == 5
    for event in events:  # the developer sees each one on the console too
        line = f"event {event['detail-type']}: order {order}, payment {event['detail']['payment']}"
        assert server.output.wait_for("^" + re.escape(f"{line} ({event['detail']['event_id']})") + "$"), line


def test_tables_kept_from_before_the_stream_leave_events_off_and_the_api_up(start_local_server):
    """AWS_ENDPOINT_URL_DYNAMODB with tables created before the audit table had its stream: the
    server starts, says why no event will be published, and serves."""
    import boto3

    from local.dynamodb import EmbeddedDynamoDB
    from local.template import Template

    dynamodb = EmbeddedDynamoDB()
    endpoint = dynamodb.start()
    try:
        client = boto3.client("dynamodb", endpoint_url=endpoint)
        template = Template()
        for logical_id in template.table_ids():
            request = template.create_table_request(logical_id, logical_id)
            request.pop("StreamSpecification", None)  # as tables made before issue 20 are
            client.create_table(**request)
        server = start_local_server(AWS_ENDPOINT_URL_DYNAMODB=endpoint)
        assert server.output.wait_for(r"PublishEventsStreamMapping: PaymentAuditTable has no stream", timeout=5)
        assert server.get("/orders/api/payments/", 1).status == 200
    finally:
        dynamodb.stop()
