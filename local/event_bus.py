"""A local stand-in for the EventBridge bus (`make run`): PutEvents over HTTP, as botocore sends it.

PublishEventsFunction's boto3 client reaches it through `AWS_ENDPOINT_URL_EVENTBRIDGE` (the template
declares the variable). Each event accepted is printed on the console and, when a target URL is
given (`EVENTS_TARGET_URL`), POSTed there as a rule's target receives it: the EventBridge event JSON
(`version`, `id`, `detail-type`, `source`, `account`, `time`, `region`, `resources`, `detail`).
Delivery to the target is apart from PutEvents, as in EventBridge (a target that fails does not
fail the put): it is tried a few times, then logged.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from local.console import console

log = logging.getLogger("local")
MAX_ENTRIES = 10  # PutEvents' limit per request
MAX_EVENT_BYTES = 256 * 1024
DELIVERY_ATTEMPTS = 4


class LocalEventBus:
    def __init__(self, bus_name: str, target_url: str | None = None, host: str = "127.0.0.1", port: int = 0):
        self.bus_name = bus_name
        self.target_url = target_url
        self.published: list[dict[str, Any]] = []  # every event accepted, in order (tests read it)
        self._server = ThreadingHTTPServer((host, port), _handler(self))
        self._deliveries: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._threads = [
            threading.Thread(target=self._server.serve_forever, name="local-event-bus", daemon=True),
            threading.Thread(target=self._deliver_all, name="local-event-targets", daemon=True),
        ]

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> str:
        for thread in self._threads:
            thread.start()
        return self.url

    def stop(self) -> None:
        self._deliveries.put(None)
        self._server.shutdown()
        self._server.server_close()

    def put_events(self, entries: list[dict[str, Any]]) -> dict[str, Any]:
        results = [self._put(entry) for entry in entries]
        return {"FailedEntryCount": sum(1 for r in results if "ErrorCode" in r), "Entries": results}

    def _put(self, entry: dict[str, Any]) -> dict[str, Any]:
        bus = str(entry.get("EventBusName") or "default").rsplit("/", 1)[-1]
        if bus != self.bus_name:
            return {"ErrorCode": "ResourceNotFoundException", "ErrorMessage": f"Event bus {bus} does not exist."}
        try:
            detail = json.loads(entry["Detail"])
            assert isinstance(detail, dict) and entry["Source"] and entry["DetailType"]
        except (KeyError, ValueError, AssertionError):
            return {"ErrorCode": "MalformedDetail", "ErrorMessage": "Detail, Source and DetailType are required."}
        if len(json.dumps(entry).encode()) > MAX_EVENT_BYTES:
            return {"ErrorCode": "ValidationException", "ErrorMessage": "Event exceeds 256 KB."}
        event = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": entry["DetailType"],
            "source": entry["Source"],
            "account": "000000000000",
            "time": _time(entry.get("Time")),
            "region": "us-east-1",
            "resources": list(entry.get("Resources") or []),
            "detail": detail,
        }
        self.published.append(event)
        console().write(
            f"event {event['detail-type']}: order {detail.get('order')}, payment {detail.get('payment')}"
            f" ({detail.get('event_id')})"
        )
        if self.target_url:
            self._deliveries.put(event)
        return {"EventId": event["id"]}

    def _deliver_all(self) -> None:
        while (event := self._deliveries.get()) is not None:
            for attempt in range(DELIVERY_ATTEMPTS):
                if self._post(event):
                    break
                time.sleep(0.2 * 2**attempt)
            else:
                log.error("event %s could not be delivered to %s", event["detail"].get("event_id"), self.target_url)

    def _post(self, event: dict[str, Any]) -> bool:
        assert self.target_url is not None
        request = urllib.request.Request(  # noqa: S310 - a URL the developer configured
            self.target_url, data=json.dumps(event).encode(), headers={"content-type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
                return bool(200 <= response.status < 300)
        except OSError:
            return False


def _time(value: Any) -> str:
    """EventBridge's `time`: the entry's Time (botocore sends epoch seconds), else now; ISO, seconds."""
    moment = datetime.fromtimestamp(float(value), UTC) if isinstance(value, (int, float)) else datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _handler(bus: LocalEventBus) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
            if self.headers.get("x-amz-target") != "AWSEvents.PutEvents":
                self._send(400, {"__type": "UnknownOperationException", "message": "Only PutEvents is served."})
                return
            entries = body.get("Entries") or []
            if not 1 <= len(entries) <= MAX_ENTRIES:
                self._send(400, {"__type": "ValidationException", "message": "1 to 10 entries per request."})
                return
            self._send(200, bus.put_events(entries))

        def _send(self, status: int, data: dict[str, Any]) -> None:
            payload = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("content-type", "application/x-amz-json-1.1")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
