"""A DynamoDB endpoint that keeps refusing: every request is answered (after `delay` seconds) with
DynamoDB's own throttling error, as the JSON protocol writes it, or not answered at all within
`delay` when `hang` is set (a read that times out). Nothing is ever executed.

Point the process's client at it with `throttling_dynamodb()` (it replaces the process-wide client
for the duration, as a cold start with AWS_ENDPOINT_URL_DYNAMODB would make it)."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

THROTTLED = {
    "__type": "com.amazonaws.dynamodb.v20120810#ThrottlingException",
    "message": "Rate of requests exceeds the allowed throughput.",
}


@dataclass
class Refusals:
    delay: float = 0.0
    hang: bool = False
    requests: list[float] = field(default_factory=list)  # when each attempt arrived (monotonic)


def _handler(refusals: Refusals) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            refusals.requests.append(time.monotonic())
            time.sleep(refusals.delay)
            if refusals.hang:
                return  # the client's read timed out long ago; close without an answer
            body = json.dumps(THROTTLED).encode()
            self.send_response(400)
            self.send_header("Content-Type", "application/x-amz-json-1.0")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@contextlib.contextmanager
def throttling_dynamodb(refusals: Refusals) -> Iterator[Refusals]:
    from halum_payments.repositories import dynamo

    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(refusals))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    saved = os.environ.get("AWS_ENDPOINT_URL_DYNAMODB")
    os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = f"http://127.0.0.1:{server.server_address[1]}"
    dynamo.dynamodb_client.cache_clear()
    try:
        yield refusals
    finally:
        dynamo.dynamodb_client.cache_clear()
        if saved is None:
            os.environ.pop("AWS_ENDPOINT_URL_DYNAMODB", None)
        else:
            os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = saved
        server.shutdown()
        server.server_close()
