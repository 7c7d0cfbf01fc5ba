"""What API Gateway (HTTP API) does around a Lambda integration, as pure functions: pick the route
for a request, and turn the function's payload-2.0 result into an HTTP response."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from local.template import FunctionSpec

ANY = "ANY"
_STATIC, _PARAMETER, _GREEDY = 0, 1, 2
# Framing headers are the gateway's, never the function's.
_HOP_BY_HOP = frozenset(
    {"connection", "content-length", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"}
)


@dataclass(frozen=True)
class LocalRequest:
    """A request to one of the local server's own endpoints (`/docs`, `/_local/reconcile`)."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]  # lower-cased names
    body: bytes
    base_url: str  # http://host:port as the client addressed us


@dataclass(frozen=True)
class Target:
    function: str  # logical id
    route_key: str  # "GET /orders/api/payments/{id}/", or "$default" for a Function URL
    function_url: bool = False


@dataclass(frozen=True)
class Match:
    target: Target
    path_parameters: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Route:
    method: str
    segments: tuple[str, ...]
    kinds: tuple[int, ...]
    target: Target

    def match(self, method: str, segments: list[str]) -> dict[str, str] | None:
        if self.method not in (ANY, method):
            return None
        greedy = bool(self.kinds) and self.kinds[-1] == _GREEDY
        if len(segments) != len(self.segments) and not (greedy and len(segments) >= len(self.segments)):
            return None
        parameters: dict[str, str] = {}
        for index, (pattern, kind) in enumerate(zip(self.segments, self.kinds, strict=True)):
            if kind == _GREEDY:
                value = "/".join(segments[index:])
                if not value:
                    return None
                parameters[pattern] = value
                break
            value = segments[index]
            if kind == _STATIC:
                if value != pattern:
                    return None
            elif not value:  # a path parameter is never empty
                return None
            else:
                parameters[pattern] = value
        return parameters

    @property
    def shape(self) -> tuple[str | int, ...]:
        """What a request can tell apart: `/a/{id}` and `/a/{other}` are the same route."""
        return tuple(s if k == _STATIC else k for s, k in zip(self.segments, self.kinds, strict=True))

    @property
    def precedence(self) -> tuple[tuple[int, ...], bool]:
        # Segment by segment, a static match beats a parameter, which beats a greedy one;
        # then an explicit method beats ANY.
        return self.kinds, self.method == ANY


def _split(path: str) -> list[str]:
    return [unquote(segment) for segment in path.split("/")[1:]]


class InvalidRoute(ValueError):
    """A route API Gateway would not accept (or SAM would silently drop)."""


class Router:
    """API routes from the template's HttpApi events, and Function URL functions at their local path."""

    def __init__(self) -> None:
        self._routes: list[_Route] = []

    @classmethod
    def from_specs(cls, specs: Iterable[FunctionSpec]) -> Router:
        router = cls()
        for spec in specs:
            for route in spec.routes:
                router.add_route(route.method, route.path, spec.logical_id)
            if spec.function_url and spec.local_path:
                router.add_function_url(spec.local_path, spec.logical_id)
        return router

    def add_route(self, method: str, path: str, function: str) -> None:
        """An HTTP API route `METHOD /path` of `function`. A path ending in "/" is refused as API
        Gateway refuses it (SAM drops such a route silently): declare `/x`; a request for `/x/`
        reaches it."""
        method = method.upper()
        if len(path) > 1 and path.endswith("/"):
            raise InvalidRoute(
                f"{function}: route {method} {path} ends in '/', which an HTTP API route key cannot: "
                f"declare {method} {path.rstrip('/')} (API Gateway sends a request for {path} to it)"
            )
        self._add(method, path, Target(function, f"{method} {path}"))

    def add_function_url(self, path: str, function: str) -> None:
        base = "/" + path.strip("/")
        for variant in {base, base.rstrip("/") + "/"}:
            self._add(ANY, variant, Target(function, "$default", function_url=True))

    def _add(self, method: str, path: str, target: Target) -> None:
        if not path.startswith("/"):
            raise ValueError(f"route path must start with '/': {path!r}")
        segments, kinds = [], []
        parts = path.split("/")[1:]
        for index, part in enumerate(parts):
            if part.startswith("{") and part.endswith("}"):
                greedy = part.endswith("+}")
                if greedy and index != len(parts) - 1:
                    raise InvalidRoute(f"a greedy parameter must be the last segment: {path!r}")
                segments.append(part[1:-2] if greedy else part[1:-1])
                kinds.append(_GREEDY if greedy else _PARAMETER)
            else:
                segments.append(part)
                kinds.append(_STATIC)
        route = _Route(method, tuple(segments), tuple(kinds), target)
        if any(r.method == method and r.shape == route.shape for r in self._routes):
            raise InvalidRoute(f"duplicate route {method} {path}")
        self._routes.append(route)

    def match(self, method: str, raw_path: str) -> Match | None:
        """The route API Gateway picks for a request; the event keeps the rawPath as sent.

        A request for `/x/` that matches no route as it stands is matched as `/x` (API Gateway does
        the same; "Create routes for HTTP APIs", and tests/tooling/test_local_routing.py)."""
        found = self._match(method, _split(raw_path))
        if found is None and len(raw_path) > 1 and raw_path.endswith("/"):
            found = self._match(method, _split(raw_path[:-1]))
        return found

    def _match(self, method: str, segments: list[str]) -> Match | None:
        best: tuple[_Route, dict[str, str]] | None = None
        for route in self._routes:
            parameters = route.match(method.upper(), segments)
            if parameters is not None and (best is None or route.precedence < best[0].precedence):
                best = (route, parameters)
        return Match(best[0].target, best[1]) if best else None

    def describe(self) -> list[tuple[str, str]]:
        """(route, function) pairs for the start-up banner."""
        rows = []
        for route in self._routes:
            path = "/" + "/".join(
                "{" + s + ("+}" if k == _GREEDY else "}") if k != _STATIC else s
                for s, k in zip(route.segments, route.kinds, strict=True)
            )
            label = f"{route.method} {path}" + (" (Function URL)" if route.target.function_url else "")
            rows.append((label, route.target.function))
        return rows


# ---------------------------------------------------------------------------- responses
@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


class MalformedResponse(ValueError):
    """The function's result is not a response API Gateway accepts (it answers 500)."""


def gateway_error(status: int, message: str) -> HttpResponse:
    """An error API Gateway itself answers, in its shape: {"message": ...}."""
    body = json.dumps({"message": message}).encode()
    return HttpResponse(status, [("Content-Type", "application/json")], body)


NOT_FOUND = gateway_error(404, "Not Found")
TOO_LARGE = gateway_error(413, "Request Entity Too Large")
INTERNAL_ERROR = gateway_error(500, "Internal Server Error")
BAD_GATEWAY = gateway_error(502, "Internal Server Error")
UNAVAILABLE = gateway_error(503, "Service Unavailable")


def _header_value(name: str, value: Any) -> str:
    if isinstance(value, bool):
        value = "true" if value else "false"
    elif isinstance(value, (int, float)):
        value = str(value)
    if not isinstance(value, str) or any(c in value for c in "\r\n\0"):
        raise MalformedResponse(f"header {name!r} has an invalid value")
    return value


def proxy_response(result: Any) -> HttpResponse:
    """Payload 2.0: an object with `statusCode` is the response; any other JSON is a 200 JSON body."""
    if not isinstance(result, dict) or "statusCode" not in result:
        text = result if isinstance(result, str) else json.dumps(result)
        return HttpResponse(200, [("Content-Type", "application/json")], text.encode())
    status = result["statusCode"]
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise MalformedResponse(f"invalid statusCode {status!r}")
    headers: list[tuple[str, str]] = []
    raw_headers = result.get("headers") or {}
    if not isinstance(raw_headers, dict):
        raise MalformedResponse("headers must be an object")
    for name, value in raw_headers.items():
        if not isinstance(name, str) or not name or any(c in name for c in ":\r\n\0 "):
            raise MalformedResponse(f"invalid header name {name!r}")
        if name.lower() not in _HOP_BY_HOP:
            headers.append((name, _header_value(name, value)))
    cookies = result.get("cookies") or []
    if not isinstance(cookies, list):
        raise MalformedResponse("cookies must be a list")
    headers.extend(("Set-Cookie", _header_value("Set-Cookie", cookie)) for cookie in cookies)
    body = result.get("body")
    if body is None:
        return HttpResponse(status, headers, b"")
    if not isinstance(body, str):
        raise MalformedResponse("body must be a string")
    if result.get("isBase64Encoded"):
        try:
            return HttpResponse(status, headers, base64.b64decode(body, validate=True))
        except (binascii.Error, ValueError):
            raise MalformedResponse("body is not valid base64") from None
    return HttpResponse(status, headers, body.encode())


# ---------------------------------------------------------------------------- CORS
@dataclass(frozen=True)
class Cors:
    """An HTTP API's CorsConfiguration, applied as API Gateway applies it ("Configure CORS for HTTP
    APIs"): it answers a preflight (OPTIONS with Origin and Access-Control-Request-Method) itself,
    with or without an OPTIONS route, adds the configured headers to the integration's response for a
    request with an allowed Origin, and ignores CORS headers the function returns."""

    allow_origins: tuple[str, ...] = ()
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age: int | None = None
    allow_credentials: bool = False

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Cors:
        def names(key: str) -> tuple[str, ...]:
            return tuple(str(value) for value in config.get(key) or ())

        max_age = config.get("MaxAge")
        return cls(
            allow_origins=names("AllowOrigins"),
            allow_methods=tuple(m.upper() for m in names("AllowMethods")),
            allow_headers=tuple(h.lower() for h in names("AllowHeaders")),
            expose_headers=tuple(h.lower() for h in names("ExposeHeaders")),
            max_age=int(max_age) if max_age is not None else None,
            allow_credentials=str(config.get("AllowCredentials", "false")).lower() == "true",
        )

    def _allowed_origin(self, origin: str | None) -> str | None:
        if not origin:
            return None
        if "*" in self.allow_origins:
            return "*"
        return origin if origin.rstrip("/").lower() in {o.rstrip("/").lower() for o in self.allow_origins} else None

    def is_preflight(self, method: str, headers: dict[str, str]) -> bool:
        return method.upper() == "OPTIONS" and "origin" in headers and "access-control-request-method" in headers

    def preflight(self, headers: dict[str, str]) -> HttpResponse:
        """API Gateway's own answer to a preflight: 204, with the CORS headers when the origin is allowed."""
        origin = self._allowed_origin(headers.get("origin"))
        if origin is None:
            return HttpResponse(204, [], b"")
        asked = headers.get("access-control-request-headers", "")
        requested = [h.strip().lower() for h in asked.split(",") if h.strip()]
        allow_headers = requested if "*" in self.allow_headers else list(self.allow_headers)
        response = [("Access-Control-Allow-Origin", origin)]
        if self.allow_methods:
            response.append(("Access-Control-Allow-Methods", ",".join(self.allow_methods)))
        if allow_headers:
            response.append(("Access-Control-Allow-Headers", ",".join(allow_headers)))
        if self.max_age is not None:
            response.append(("Access-Control-Max-Age", str(self.max_age)))
        if self.allow_credentials:
            response.append(("Access-Control-Allow-Credentials", "true"))
        return HttpResponse(204, response, b"")

    def apply(self, response: HttpResponse, headers: dict[str, str]) -> HttpResponse:
        """The integration's response as API Gateway returns it to a (possibly cross-origin) caller."""
        kept = [(name, value) for name, value in response.headers if not name.lower().startswith("access-control-")]
        origin = self._allowed_origin(headers.get("origin"))
        if origin is not None:
            kept.append(("Access-Control-Allow-Origin", origin))
            if self.expose_headers:
                kept.append(("Access-Control-Expose-Headers", ",".join(self.expose_headers)))
            if self.allow_credentials:
                kept.append(("Access-Control-Allow-Credentials", "true"))
        return HttpResponse(response.status, kept, response.body)
