"""The local stand-in for API Gateway (HTTP API) in front of the functions' execution environments.

`Gateway` holds one worker pool per function; `ApiServer` speaks HTTP, routes like API Gateway
(see routing.py), builds payload-2.0 / Function URL events and maps results back. Local-only
endpoints (`LocalRoutes`: `POST /_local/reconcile`, Stripe Checkout's return pages) are checked
first and are never part of the API.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from local import pages
from local.events import http_event, scheduled_event
from local.openapi_docs import DOCS_ROUTES
from local.routing import (
    BAD_GATEWAY,
    INTERNAL_ERROR,
    NOT_FOUND,
    TOO_LARGE,
    UNAVAILABLE,
    Cors,
    HttpResponse,
    LocalRequest,
    MalformedResponse,
    Router,
    gateway_error,
    proxy_response,
)
from local.template import FunctionSpec
from local.workers import MAX_REQUEST_BYTES, FunctionPool, Invocation, Outcome

log = logging.getLogger("local")

_HTTP_STATUS_MESSAGES = {
    400: "Bad Request",
    408: "Request Timeout",
    414: "URI Too Long",
    431: "Request Header Fields Too Large",
}


class Gateway:
    """Every function of the template, invocable by logical id, each in its own worker pool."""

    def __init__(
        self,
        specs: Sequence[FunctionSpec],
        environments: Mapping[str, Mapping[str, str]],
        layer_dirs: Sequence[Path],
        concurrency: int = 4,
        cors: Cors | None = None,
    ) -> None:
        self.specs = {spec.logical_id: spec for spec in specs}
        self.router = Router.from_specs(specs)
        self.cors = cors  # the HTTP API's CorsConfiguration (Function URLs have none here)
        self.pools = {
            spec.logical_id: FunctionPool(spec, environments[spec.logical_id], layer_dirs, concurrency)
            for spec in specs
        }

    def invoke(self, function: str, event: Mapping[str, Any]) -> Invocation:
        """Invoke a function synchronously with any event (KeyError for an unknown logical id)."""
        return self.pools[function].invoke(event)

    def warm(self) -> threading.Thread:
        """Start one execution environment per function in the background."""

        def run() -> None:
            for pool in self.pools.values():
                pool.warm()

        thread = threading.Thread(target=run, name="warm-up", daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        for pool in self.pools.values():
            pool.close()


def http_response(invocation: Invocation) -> HttpResponse:
    """The answer API Gateway gives for an invocation's outcome."""
    if invocation.outcome is Outcome.OK:
        try:
            return proxy_response(invocation.result)
        except MalformedResponse as exc:
            log.error("malformed Lambda proxy response: %s", exc)
            return INTERNAL_ERROR
    return {
        Outcome.FUNCTION_ERROR: INTERNAL_ERROR,
        Outcome.TIMEOUT: UNAVAILABLE,
        Outcome.UNAVAILABLE: UNAVAILABLE,
        Outcome.RESPONSE_TOO_LARGE: BAD_GATEWAY,
        Outcome.REQUEST_TOO_LARGE: TOO_LARGE,
    }[invocation.outcome]


# ---------------------------------------------------------------------------- local-only routes
LocalHandler = Callable[[LocalRequest, Gateway], HttpResponse]


class LocalRoutes:
    """Endpoints of the local server itself (e.g. `POST /_local/reconcile`, `GET /docs`).

    Exact (method, path) matches, checked before the API's routes; they do not exist in AWS, so
    keep them under paths the API will never use.
    """

    def __init__(self) -> None:
        self._handlers: dict[tuple[str, str], LocalHandler] = {}

    def add(self, method: str, path: str, handler: LocalHandler) -> None:
        key = (method.upper(), path)
        if key in self._handlers:
            raise ValueError(f"duplicate local route {method} {path}")
        self._handlers[key] = handler

    def route(self, method: str, path: str) -> Callable[[LocalHandler], LocalHandler]:
        def register(handler: LocalHandler) -> LocalHandler:
            self.add(method, path, handler)
            return handler

        return register

    def get(self, method: str, path: str) -> LocalHandler | None:
        return self._handlers.get((method.upper(), path))

    def describe(self) -> list[str]:
        return [f"{method} {path}" for method, path in self._handlers]


RECONCILE_PATH = "/_local/reconcile"
RECONCILER = "ReconcilePaymentsFunction"


def default_local_routes(
    *, checkout_sessions: pages.SessionLookup | None = None, stripe_dashboard: str | None = None
) -> LocalRoutes:
    """The local-only endpoints `python -m local` serves; register new ones here.

    `checkout_sessions` looks up Checkout Sessions (the sandbox's) for the success page, and
    `stripe_dashboard` is the sandbox's dashboard URL the pages link to.
    """
    routes = LocalRoutes()
    routes.add("POST", RECONCILE_PATH, reconcile_handler(RECONCILER))
    routes.add(
        "GET",
        pages.SUCCESS_PATH,
        lambda request, _: pages.success_page(request.query, request.base_url, checkout_sessions, stripe_dashboard),
    )
    routes.add("GET", pages.CANCELLED_PATH, lambda request, _: pages.cancelled_page(request.base_url, stripe_dashboard))
    for method, path, handler in DOCS_ROUTES:
        routes.add(method, path, handler)
    return routes


def reconcile_handler(function: str) -> LocalHandler:
    """`POST /_local/reconcile`: one sweep now, started as the schedule starts it; 200 with its summary.

    The request body is ignored on purpose: the sweep's configuration (RECONCILE_AFTER_MINUTES,
    RECONCILE_BATCH_SIZE) is the function's environment, set when the server starts, as in AWS.
    """

    def reconcile(request: LocalRequest, gateway: Gateway) -> HttpResponse:
        if function not in gateway.pools:
            return _json(404, {"message": f"{function} is not in the template"})
        invocation = gateway.invoke(function, scheduled_event("local-reconcile"))
        if invocation.outcome is Outcome.OK and isinstance(invocation.result, dict):
            return _json(200, invocation.result)
        # Details (a traceback, say) are in the function's log on the console, never in the body.
        outcome = invocation.outcome.value
        log.error("%s: %s %s", function, outcome, invocation.error or "(its result is not a JSON object)")
        return _json(500, {"message": "The reconciliation sweep failed; see the server's log.", "outcome": outcome})

    return reconcile


def _json(status: int, data: Any) -> HttpResponse:
    return HttpResponse(status, [("Content-Type", "application/json")], json.dumps(data).encode())


# ---------------------------------------------------------------------------- HTTP
class RequestTooLarge(Exception):
    pass


class BadRequest(Exception):
    pass


class ApiServer(ThreadingHTTPServer):
    """Binds at construction; serves once a gateway is attached (`serve_in_background`).

    The gateway may come later: `python -m local` binds first because the functions' environment
    needs the port (PORT=0 picks one) for the webhook and checkout URLs it contains.
    """

    daemon_threads = True  # a keep-alive connection must not hold up shutdown
    # listen() backlog. socketserver's default of 5 resets connections of a burst (20 webhook
    # deliveries at once) while the accept loop is busy; API Gateway takes such bursts.
    request_queue_size = 128

    def __init__(
        self, address: tuple[str, int], gateway: Gateway | None = None, local_routes: LocalRoutes | None = None
    ) -> None:
        self._gateway = gateway
        self.local_routes = local_routes or LocalRoutes()
        super().__init__(address, _Handler)

    @property
    def gateway(self) -> Gateway:
        if self._gateway is None:
            raise RuntimeError("no gateway attached to the server yet")
        return self._gateway

    @gateway.setter
    def gateway(self, gateway: Gateway) -> None:
        self._gateway = gateway

    @property
    def local_url(self) -> str:
        """The server's URL from this machine (a wildcard address is reached through loopback)."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    @property
    def host(self) -> str:
        host = self.server_address[0]
        return host if isinstance(host, str) else bytes(host).decode()

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class _Handler(BaseHTTPRequestHandler):
    server: ApiServer
    protocol_version = "HTTP/1.1"  # keep-alive, as API Gateway offers
    server_version = "halum-local"
    timeout = 60  # idle keep-alive connections and stalled uploads
    disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms delayed-ACK stall

    # BaseHTTPRequestHandler dispatches on do_<METHOD>: the methods an HTTP API route can declare.
    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def __getattr__(self, name: str) -> Any:
        # Any other method (TRACE, PROPFIND, ...) is routed too: API Gateway answers 404 where no
        # route matches, where the stdlib would answer 501.
        if name.startswith("do_"):
            return self._serve
        raise AttributeError(name)

    def _serve(self) -> None:
        started = time.perf_counter()
        path, query = self._target()
        note = ""
        try:
            response, note = self._dispatch(path, query)
        except RequestTooLarge:
            response = TOO_LARGE
            self.close_connection = True  # the body was not read: the connection cannot be reused
        except BadRequest as exc:
            response = gateway_error(400, "Bad Request")
            note = str(exc)
            self.close_connection = True
        except OSError:
            raise  # the client's connection failed or stalled: the stdlib closes it
        except Exception:
            log.exception("%s %s: the local gateway failed", self.command, path)
            response = INTERNAL_ERROR
        self._send(response)
        elapsed = (time.perf_counter() - started) * 1000
        log.info("%s %s %d %.1f ms%s", self.command, path, response.status, elapsed, f" [{note}]" if note else "")

    def _dispatch(self, path: str, query: str) -> tuple[HttpResponse, str]:
        body = self._read_body()
        headers = self._event_headers()
        local = self.server.local_routes.get(self.command, path)
        if local is not None:
            request = LocalRequest(self.command, path, query, headers, body, f"http://{headers['host']}")
            try:
                return local(request, self.server.gateway), "local"
            except Exception:
                log.exception("local route %s %s failed", self.command, path)
                return INTERNAL_ERROR, "local"
        gateway = self.server.gateway
        match = gateway.router.match(self.command, path)
        on_api = match is None or not match.target.function_url
        cors = gateway.cors if on_api else None
        if cors is not None and cors.is_preflight(self.command, headers):
            return cors.preflight(headers), "CORS preflight"  # API Gateway answers it, route or not
        if match is None:
            return self._cors(NOT_FOUND, cors, headers), ""
        target = match.target
        event = http_event(
            self.command,
            path,
            query=query,
            headers=headers,
            body=body,
            route_key=target.route_key,
            path_parameters=match.path_parameters,
            source_ip=self.client_address[0],
            domain_name=_domain(headers["host"]),
            function_url=target.function_url,
        )
        invocation = self.server.gateway.invoke(target.function, event)
        note = target.function
        if invocation.init_ms is not None:
            note += f", cold start {invocation.init_ms:.0f} ms"
        if invocation.outcome is not Outcome.OK:
            note += f", {invocation.outcome.value}"
        return self._cors(http_response(invocation), cors, headers), note

    @staticmethod
    def _cors(response: HttpResponse, cors: Cors | None, headers: dict[str, str]) -> HttpResponse:
        return cors.apply(response, headers) if cors is not None else response

    def _target(self) -> tuple[str, str]:
        if self.path.startswith("/"):
            path, _, query = self.path.partition("?")
            return path, query.partition("#")[0]
        parts = urlsplit(self.path)  # absolute-form request target
        return parts.path or "/", parts.query

    def _event_headers(self) -> dict[str, str]:
        """Lower-cased request headers as API Gateway forwards them (repeats joined with commas)."""
        headers: dict[str, str] = {}
        for raw_name, value in self.headers.items():
            name = raw_name.lower()
            if name in headers:
                headers[name] += ("; " if name == "cookie" else ",") + value
            else:
                headers[name] = value
        headers.setdefault("host", f"{self.server.host}:{self.server.port}")
        # API Gateway sets these itself, whatever the client sent.
        headers["x-forwarded-proto"] = "http"
        headers["x-forwarded-port"] = str(self.server.port)
        headers["x-forwarded-for"] = self.client_address[0]
        return headers

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        if not length.strip().isdigit():
            raise BadRequest(f"invalid Content-Length {length!r}")
        size = int(length)
        if size > MAX_REQUEST_BYTES:
            raise RequestTooLarge  # before reading a byte of it
        body = self.rfile.read(size)
        if len(body) != size:
            raise BadRequest("body shorter than Content-Length")
        return body

    def _read_chunked(self) -> bytes:
        body = bytearray()
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise BadRequest("malformed chunk size") from None
            if size == 0:
                while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):  # trailers
                    pass
                return bytes(body)
            if len(body) + size > MAX_REQUEST_BYTES:
                raise RequestTooLarge
            chunk = self.rfile.read(size)
            if len(chunk) != size:
                raise BadRequest("truncated chunk")
            body += chunk
            self.rfile.readline(8)

    def handle_expect_100(self) -> bool:
        # `curl --data-binary @big` asks first: refuse before the client sends the body.
        length = self.headers.get("Content-Length", "")
        if length.strip().isdigit() and int(length) > MAX_REQUEST_BYTES:
            self.close_connection = True
            self._send(TOO_LARGE)
            log.info("%s %s %d (refused before upload)", self.command, self._target()[0], TOO_LARGE.status)
            return False
        return super().handle_expect_100()

    def _send(self, response: HttpResponse) -> None:
        try:
            self.send_response(response.status)
            for name, value in response.headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away; nothing to tell it

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # Malformed requests the stdlib rejects itself: answer in API Gateway's JSON, not HTML.
        self.close_connection = True
        if not hasattr(self, "command") or self.command is None:
            self.command = ""
        self._send(gateway_error(code, _HTTP_STATUS_MESSAGES.get(code, "Bad Request")))
        log.info("%s %s %d [%s]", self.command or "-", getattr(self, "path", "-"), code, message or "rejected")

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        message = format % args
        if not message.startswith("Request timed out"):  # an idle keep-alive connection closing
            log.debug("http: %s", message)


def _domain(host: str) -> str:
    """The Host header without its port ([::1]:3000 -> [::1])."""
    if host.startswith("["):
        return host[: host.find("]") + 1] or host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def serve_in_background(server: ApiServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, name="http", kwargs={"poll_interval": 0.2}, daemon=True)
    thread.start()
    return thread


def describe_routes(gateway: Gateway, local_routes: LocalRoutes) -> Iterable[tuple[str, str]]:
    yield from gateway.router.describe()
    routed = {function for _, function in gateway.router.describe()}
    for spec in gateway.specs.values():
        if spec.logical_id not in routed:
            reason = "scheduled" if spec.schedules else "no HTTP route"
            yield f"({reason})", spec.logical_id
    for route in local_routes.describe():
        yield route, "local server"
