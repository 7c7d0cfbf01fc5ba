"""Hostile HTTP requests, generated from a seed, and a raw client that can send anything.

Every request is built as bytes (request line, headers, body) so it can be what no HTTP library
would send: invalid UTF-8 in the path, header lines without a colon, lying Content-Lengths. The
generator never produces a request that could change the demo data: tokens are forged, expired or
of a user who owns nothing (valid only where a read is safe), signatures are forged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import re
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from support.payment_data import SPEC_GATEWAY_EVENT, SPEC_LIST_ANSWER

API = "/orders/api"
ROUTES = (
    "/orders/api/payments/",
    "/orders/api/payments",
    "/orders/api/payments/1/",
    "/orders/api/payments/2",
    "/orders/api/create-stripe-order/",
    "/orders/api/create-cod/",
    "/orders/api/create-cod",
    "/orders/api/stripe-webhook/",
    "/orders/api/payment-webhook/",
    "/orders/api/payment-webhook",
)
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "TRACE", "CONNECT", "FOO", "get", "M-SEARCH")
NOBODY_USER = 999_999  # owns no cart, address, order or payment: a valid token for them changes nothing

# What must never reach a client: tracebacks, source locations, exception names, library internals.
LEAKS = re.compile(
    r"Traceback|File \"|\.py\"|\.py\b|line \d+, in |\b[A-Z][A-Za-z]+(?:Error|Exception)\b|botocore|boto3|"
    r"pydantic|powertools|halum_payments|site-packages|/opt/python",
)

# The spec's example (payments-api.md, "List Payments"): what user 1 sees on the demo seed.
SPEC_LIST_EXAMPLE: dict[str, Any] = SPEC_LIST_ANSWER


# ---------------------------------------------------------------------------- raw HTTP
@dataclass(frozen=True)
class RawReply:
    status: int
    headers: dict[str, str]  # lower-cased names
    body: bytes


class NoReply(Exception):
    """The server closed the connection (or stalled) without an HTTP response."""


def exchange(host: str, port: int, request: bytes, timeout: float = 30.0, head: bool = False) -> RawReply:
    """Send `request` as is on a new connection, half-close it, and read one response."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        try:
            sock.sendall(request)
            sock.shutdown(socket.SHUT_WR)  # a body shorter than its Content-Length ends here
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered (e.g. 413) before reading everything: read what it said
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = _recv(sock)
            if not chunk:
                raise NoReply(f"no complete response head: {data[:200]!r}")
            data += chunk
        head_bytes, _, rest = data.partition(b"\r\n\r\n")
        lines = head_bytes.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = 0 if head else int(headers.get("content-length", "0"))
        while len(rest) < length:
            chunk = _recv(sock)
            if not chunk:
                raise NoReply(f"response body cut at {len(rest)} of {length} bytes")
            rest += chunk
        return RawReply(status, headers, rest[:length])


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except ConnectionResetError:
        return b""


def build(method: str, target: bytes | str, headers: list[tuple[str, str]] | list[bytes], body: bytes = b"") -> bytes:
    """A request as bytes; `headers` are (name, value) pairs or raw header lines."""
    raw_target = target.encode() if isinstance(target, str) else target
    lines = [method.encode("latin-1") + b" " + raw_target + b" HTTP/1.1"]
    for header in headers:
        if isinstance(header, bytes):
            lines.append(header)
        else:
            lines.append(f"{header[0]}: {header[1]}".encode("utf-8", "surrogateescape"))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


# ---------------------------------------------------------------------------- tokens
def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwt(header: dict[str, Any], claims: dict[str, Any], sign: Callable[[bytes], bytes] | None) -> str:
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = _b64(sign(signing_input.encode())) if sign else ""
    return f"{signing_input}.{signature}"


def _hs256(secret: bytes) -> Callable[[bytes], bytes]:
    return lambda data: hmac.new(secret, data, hashlib.sha256).digest()


def claims(user: Any = 1, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"token_type": "access", "exp": now + 1800, "iat": now, "jti": uuid.uuid4().hex, "user_id": str(user)}
    base.update(changes)
    return {name: value for name, value in base.items() if value is not None}


class Forger:
    """Tokens that must all be refused (401), by kind."""

    def __init__(self, secret: str) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        self.secret = secret
        self._rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public_pem = self._rsa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def _rs256(self, data: bytes) -> bytes:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        return self._rsa.sign(data, padding.PKCS1v15(), hashes.SHA256())

    def forged(self, rng: random.Random) -> tuple[str, str]:
        """(kind, token)."""
        now = int(time.time())
        user = rng.choice([1, 2, 1])
        right = _hs256(self.secret.encode())
        kinds: dict[str, Callable[[], str]] = {
            "none-alg": lambda: _jwt({"alg": "none", "typ": "JWT"}, claims(user), None),
            "None-alg": lambda: _jwt({"alg": "None"}, claims(user), None),
            "none-alg-with-signature": lambda: _jwt({"alg": "none"}, claims(user), right),
            "wrong-key": lambda: _jwt({"alg": "HS256", "typ": "JWT"}, claims(user), _hs256(b"not-the-key")),
            "rs256-own-key": lambda: _jwt({"alg": "RS256", "typ": "JWT"}, claims(user), self._rs256),
            "hs-rs-confusion": lambda: _jwt({"alg": "HS256", "typ": "JWT"}, claims(user), _hs256(self.public_pem)),
            "rs-header-hs-signature": lambda: _jwt({"alg": "RS256"}, claims(user), right),
            "expired": lambda: _jwt({"alg": "HS256"}, claims(user, exp=now - 3600, iat=now - 7200), right),
            "refresh-token": lambda: _jwt({"alg": "HS256"}, claims(user, token_type="refresh"), right),
            "no-user": lambda: _jwt({"alg": "HS256"}, claims(user, user_id=None), right),
            "negative-user": lambda: _jwt({"alg": "HS256"}, claims("-1"), right),
            "huge-user": lambda: _jwt({"alg": "HS256"}, claims(10**40), right),
            "kid-traversal": lambda: _jwt({"alg": "HS256", "kid": "../../../../dev/null"}, claims(user), _hs256(b"")),
            "oversized": lambda: _jwt({"alg": "HS256"}, claims(user, pad="A" * 6000), right),
            "very-oversized": lambda: "e" * 60_000,
            "garbage": lambda: _junk_text(rng, 1, 300),
            "three-dots": lambda: "...",
            "bad-base64": lambda: "eyJ!!!.eyJ???.sig",
            "json-not-object": lambda: f"{_b64(b'[1]')}.{_b64(b'[2]')}.{_b64(b'x')}",
        }
        kind = rng.choice(sorted(kinds))
        return kind, kinds[kind]()

    def authorization(self, rng: random.Random) -> tuple[str, str]:
        """(kind, Authorization header value) refused with 401."""
        kind, token = self.forged(rng)
        shape = rng.choice(["Bearer {}", "bearer {}", "Bearer  {}", "Bearer {} extra", "JWT {}", "Bearer\t{}"])
        return kind, shape.format(token)


# ---------------------------------------------------------------------------- bodies and text
_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _-.:/\\'\"{}[]<>%$#@!&*()+=?"


def _junk_text(rng: random.Random, low: int, high: int) -> str:
    text = "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(low, high)))
    if rng.random() < 0.3:
        text += "".join(chr(rng.randint(0x80, 0x2FFF)) for _ in range(rng.randint(1, 8)))
    return LEAKS.sub("x", text)  # never plant a leak marker: any in a reply came from the server


def random_json(rng: random.Random, depth: int = 0) -> Any:
    choices = ["int", "float", "str", "bool", "null", "big"] + (["list", "dict", "dict"] if depth < 4 else [])
    kind = rng.choice(choices)
    if kind == "int":
        return rng.choice([0, 1, -1, 2, 3, 10**18, -(10**18), 2**63, 2**64 + 1, rng.randint(-1000, 1000)])
    if kind == "float":
        return rng.choice([0.5, -1.5, 1e308, 1e-308, 1598.0, 1598.001])
    if kind == "str":
        return rng.choice(["", "1", "1598.00", "payment.completed", "completed", "COD", _junk_text(rng, 0, 40)])
    if kind == "bool":
        return rng.choice([True, False])
    if kind == "null":
        return None
    if kind == "big":
        return "9" * rng.randint(100, 5000)
    if kind == "list":
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 5))]
    keys = ["shipping_address", "order", "event_type", "payment_id", "order_reference", "amount", "status"]
    keys += ["timestamp", "id", "type", "data", "object", "metadata"]
    return {rng.choice([*keys, _junk_text(rng, 0, 12)]): random_json(rng, depth + 1) for _ in range(rng.randint(0, 6))}


def hostile_body(rng: random.Random) -> tuple[str, bytes]:
    """(kind, bytes) of a request body nobody should be able to break the API with."""
    kind = rng.choice(
        [
            "json",
            "json",
            "json",
            "garbage",
            "invalid-utf8",
            "deep-array",
            "deep-object",
            "huge-json",
            "huge-string",
            "nan",
            "truncated",
            "duplicate-keys",
            "bom",
            "empty",
            "utf16",
            "null-bytes",
            "almost-valid",
        ]
    )
    if kind == "json":
        return kind, json.dumps(random_json(rng)).encode()
    if kind == "garbage":
        return kind, bytes(rng.randrange(256) for _ in range(rng.randint(1, 2000)))
    if kind == "invalid-utf8":
        return kind, b'{"shipping_address": "\xff\xfe\xc3\x28", "order": "\xed\xa0\x80"}'
    if kind == "deep-array":
        depth = rng.choice([1000, 5000, 100_000])
        return kind, b"[" * depth + b"]" * depth
    if kind == "deep-object":
        depth = rng.choice([500, 3000])
        return kind, b'{"a":' * depth + b"1" + b"}" * depth
    if kind == "huge-json":
        return kind, json.dumps({"shipping_address": 1, "pad": ["x" * 1000] * rng.randint(500, 2500)}).encode()
    if kind == "huge-string":
        return kind, json.dumps({"payment_id": "p" * rng.randint(10_000, 1_000_000)}).encode()
    if kind == "nan":
        return kind, b'{"shipping_address": NaN, "amount": Infinity, "order": -Infinity}'
    if kind == "truncated":
        return kind, b'{"shipping_address": 1, "order": [1, 2'
    if kind == "duplicate-keys":
        return kind, b'{"shipping_address": 1, "shipping_address": "x", "shipping_address": null}'
    if kind == "bom":
        return kind, b'\xef\xbb\xbf{"shipping_address": 1}'
    if kind == "empty":
        return kind, b""
    if kind == "utf16":
        return kind, '{"shipping_address": 1}'.encode("utf-16")
    if kind == "null-bytes":
        return kind, b'{"shipping_address": "\x00\x00", "\x00": 1}'
    return kind, json.dumps(
        {
            "event_type": "payment.completed",
            "payment_id": _junk_text(rng, 1, 20),
            "order_reference": rng.choice(["1", "2", "0", "-1", "01", "99999999999999999999"]),
            "amount": rng.choice(["1598.00", "1598.001", "-1", "1e3", " 1598"]),
            "status": "completed",
            "timestamp": rng.choice(["2023-01-15T15:30:00Z", "2023-01-15T15:30:00", "yesterday"]),
        }
    ).encode()


CONTENT_TYPES = (
    "application/json",
    "application/json; charset=utf-8",
    "application/json; charset=latin-1",
    "text/plain",
    "application/xml",
    "application/x-www-form-urlencoded",
    "multipart/form-data",
    "multipart/form-data; boundary=",
    "multipart/form-data; boundary=zz",
    "application/octet-stream",
    "*/*",
    "application/json\x00",
    "",
)


# ---------------------------------------------------------------------------- requests
@dataclass(frozen=True)
class HostileRequest:
    label: str
    method: str
    raw: bytes


class HostileRequests:
    """Seeded generator of hostile requests against one server."""

    def __init__(
        self,
        rng: random.Random,
        host: str,
        forger: Forger,
        read_token: str,
        nobody_token: str,
        cursors: list[str],
    ) -> None:
        self.rng = rng
        self.host = host
        self.forger = forger
        self.read_token = read_token  # user 1's, valid: only ever sent with GET (reads)
        self.nobody_token = nobody_token  # valid, of a user who owns nothing
        self.cursors = cursors  # genuine cursors, tampered with before use

    def next(self) -> HostileRequest:
        makers = [
            self.junk_path,
            self.huge_headers,
            self.malformed_headers,
            self.hostile_body,
            self.wrong_content_type,
            self.forged_token,
            self.forged_cursor,
            self.forged_signature,
            self.framing,
        ]
        return self.rng.choice(makers)()

    # ------------------------------------------------------------- pieces
    def _route(self) -> str:
        return self.rng.choice(ROUTES)

    def _method(self) -> str:
        return self.rng.choice((*METHODS, "GET", "POST", "POST", "POST"))

    def _headers(self, body: bytes = b"", **extra: str) -> list[tuple[str, str]]:
        headers = [("Host", self.host), ("Connection", "close")]
        if body:
            headers.append(("Content-Length", str(len(body))))
        headers.extend(extra.items())
        return headers

    def _auth(self, method: str) -> tuple[str, str]:
        """(kind, Authorization value): forged, or valid where harmless."""
        roll = self.rng.random()
        if roll < 0.15 and method in ("GET", "HEAD"):
            return "user-1-read", f"Bearer {self.read_token}"
        if roll < 0.3:
            return "nobody", f"Bearer {self.nobody_token}"
        return self.forger.authorization(self.rng)

    # ------------------------------------------------------------- kinds
    def junk_path(self) -> HostileRequest:
        rng = self.rng
        suffix = rng.choice(
            [
                "/../../../../etc/passwd",
                "/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
                "/payments/..%2f..%2f..%2fetc%2fpasswd/",
                "/payments/%00/",
                "/payments/%ff%fe/",
                "/payments/1%00.json",
                "//payments//",
                "/payments/" + "9" * 5000 + "/",
                "/payments/-1/",
                "/payments/1e3/",
                "/payments/%F0%9F%92%A9/",
                "/payments/1;drop table/",
                "/payments/{id}/",
                "/payments/?cursor=" + "%" * 20,
                "/payments/?page_size=1001&page_size=0&ordering=%00",
                "/payments/?page=2",
                "/payments/?" + "&".join(f"k{i}=v" for i in range(500)),
                "/" + "a/" * 2000,
                "/payments/" + "%25" * 300,
                "/create-cod/../payments/",
            ]
        )
        target: bytes = (API + suffix).encode()
        if rng.random() < 0.2:
            target = API.encode() + b"/payments/\xff\xfe\x80/"  # invalid UTF-8 on the wire
        method = self._method()
        kind, authorization = self._auth(method)
        return HostileRequest(
            f"junk-path {suffix[:60]!r} [{kind}]",
            method,
            build(method, target, self._headers(Authorization=authorization)),
        )

    def huge_headers(self) -> HostileRequest:
        rng = self.rng
        method, route = self._method(), self._route()
        variant = rng.choice(["huge-value", "many", "huge-cookie", "huge-auth", "long-name"])
        headers = self._headers()
        if variant == "huge-value":
            headers.append(("X-Junk", "v" * rng.choice([8_000, 60_000, 70_000])))
        elif variant == "many":
            headers.extend((f"X-H{i}", "v") for i in range(rng.choice([90, 120, 500])))
        elif variant == "huge-cookie":
            headers.append(("Cookie", "; ".join(f"c{i}={'x' * 50}" for i in range(rng.choice([100, 1500])))))
        elif variant == "huge-auth":
            headers.append(("Authorization", "Bearer " + "A" * rng.choice([5_000, 60_000])))
        else:
            headers.append(("X-" + "N" * 10_000, "v"))
        return HostileRequest(f"huge-headers {variant} {method} {route}", method, build(method, route, headers))

    def malformed_headers(self) -> HostileRequest:
        rng = self.rng
        method, route = self._method(), self._route()
        line = rng.choice(
            [
                b"NoColonHere",
                b": empty-name",
                b" leading-space: continuation",
                b"X-Bad\xff\xfe: value",
                b"X-Utf8: \xff\xfe\xc3\x28",
                b"X-Null: a\x00b",
                b"Authorization: Bearer \xff\xfe\xfd",
                b"Content-Type: \xff",
                b"Host: " + b"h" * 300,
                b"X-Tab:\tvalue\t",
                b"Authorization: Bearer a\x0bb",
            ]
        )
        headers: list[bytes] = [f"Host: {self.host}".encode(), b"Connection: close", line]
        return HostileRequest(f"malformed-header {line[:30]!r} {method} {route}", method, build(method, route, headers))

    def hostile_body(self) -> HostileRequest:
        kind, body = hostile_body(self.rng)
        method = self.rng.choice(["POST", "POST", "PUT", "PATCH", "GET", "DELETE"])
        route = self._route()
        auth_kind, authorization = self._auth(method)
        content_type = self.rng.choice(["application/json", "application/json", *CONTENT_TYPES])
        headers = self._headers(body, Authorization=authorization)
        headers.append(("Content-Type", content_type))
        headers.extend(self._signature_headers(body))
        label = f"body {kind} ({len(body)} B) {method} {route} [{auth_kind}, {content_type!r}]"
        return HostileRequest(label, method, build(method, route, headers, body))

    def wrong_content_type(self) -> HostileRequest:
        body = json.dumps({"shipping_address": 1}).encode()
        route = self.rng.choice([r for r in ROUTES if "create" in r or "webhook" in r])
        content_type = self.rng.choice(CONTENT_TYPES)
        headers = self._headers(body, Authorization=f"Bearer {self.nobody_token}")
        headers.append(("Content-Type", content_type))
        headers.extend(self._signature_headers(body))
        return HostileRequest(
            f"content-type {content_type!r} POST {route}", "POST", build("POST", route, headers, body)
        )

    def forged_token(self) -> HostileRequest:
        method = self.rng.choice(["GET", "POST", "GET"])
        route = self.rng.choice([r for r in ROUTES if "webhook" not in r])
        kind, authorization = self.forger.authorization(self.rng)
        body = json.dumps({"shipping_address": 1}).encode() if method == "POST" else b""
        headers = self._headers(body, Authorization=authorization)
        if body:
            headers.append(("Content-Type", "application/json"))
        return HostileRequest(f"forged-token {kind} {method} {route}", method, build(method, route, headers, body))

    def forged_cursor(self) -> HostileRequest:
        rng = self.rng
        variant = rng.choice(["flipped", "truncated", "random", "long", "other-encoding", "empty", "json"])
        if variant == "flipped" and self.cursors:
            cursor = list(rng.choice(self.cursors))
            index = rng.randrange(len(cursor))
            cursor[index] = "A" if cursor[index] != "A" else "B"
            value = "".join(cursor)
        elif variant == "truncated" and self.cursors:
            value = rng.choice(self.cursors)[: rng.randint(0, 20)]
        elif variant == "long":
            value = "A" * rng.choice([512, 513, 5000])
        elif variant == "other-encoding":
            value = base64.b64encode(json.dumps({"user": 2, "after": 0}).encode()).decode()
        elif variant == "json":
            value = json.dumps({"pk": 1, "user": 1})
        elif variant == "empty":
            value = ""
        else:
            value = _b64(bytes(rng.randrange(256) for _ in range(rng.randint(1, 200))))
        route = rng.choice(["/orders/api/payments/", "/orders/api/payments"])
        query = "cursor=" + "".join(c if c.isalnum() else f"%{ord(c):02X}" for c in value)
        query += rng.choice(["", "&page_size=1", "&ordering=-id", "&status=pending"])
        target = f"{route}?{query}"
        authorization = rng.choice([f"Bearer {self.read_token}", f"Bearer {self.nobody_token}"])
        return HostileRequest(
            f"forged-cursor {variant} GET {route}",
            "GET",
            build("GET", target, self._headers(Authorization=authorization)),
        )

    def forged_signature(self) -> HostileRequest:
        rng = self.rng
        body = json.dumps(
            rng.choice(
                [
                    SPEC_GATEWAY_EVENT,
                    {
                        "id": "evt_forged",
                        "type": "checkout.session.completed",
                        "data": {"object": {"id": "cs_x", "metadata": {"order_id": "1", "payment_id": "1"}}},
                    },
                    random_json(rng),
                ]
            )
        ).encode()
        route = rng.choice([r for r in ROUTES if "webhook" in r])
        headers = self._headers(body)
        headers.append(("Content-Type", "application/json"))
        headers.extend(self._signature_headers(body, always=True))
        return HostileRequest(
            f"forged-signature POST {route} {headers[-2:]!r:.120}", "POST", build("POST", route, headers, body)
        )

    def _signature_headers(self, body: bytes, always: bool = False) -> list[tuple[str, str]]:
        """Forged webhook signatures (never the right one)."""
        rng = self.rng
        if not always and rng.random() < 0.5:
            return []
        fake = hashlib.sha256(body + b"forged").hexdigest()
        now = int(time.time())
        gateway = rng.choice(
            [
                fake,
                "sha256=" + fake,
                fake.upper(),
                "sha256=",
                "",
                "x" * 3000,
                hmac.new(b"wrong-secret", body, hashlib.sha256).hexdigest(),
                "sha1=" + hashlib.sha1(body).hexdigest(),
                "\u00e9" * 64,
            ]
        )
        stripe = rng.choice(
            [
                f"t={now},v1={fake}",
                f"t={now - 3600},v1={fake}",
                f"v1={fake}",
                f"t=abc,v1={fake}",
                f"t={now},v0={fake}",
                f"t={now},v1={fake},v1=",
                f"t={now},v1=" + "\u00e9" * 64,  # non-ASCII: sent as UTF-8 bytes
                "t=" + "9" * 400 + ",v1=" + fake,
                ",".join(f"v1={fake}" for _ in range(200)),
                "garbage",
            ]
        )
        return [("X-Webhook-Signature", gateway), ("Stripe-Signature", stripe)]

    def framing(self) -> HostileRequest:
        rng = self.rng
        route = self._route()
        body = b'{"shipping_address": 1}'
        variant = rng.choice(["short", "negative", "non-numeric", "huge", "bad-chunk", "chunk-too-big", "both"])
        lines: list[bytes] = [f"Host: {self.host}".encode(), b"Connection: close", b"Content-Type: application/json"]
        if variant == "short":
            lines.append(b"Content-Length: 100")
        elif variant == "negative":
            lines.append(b"Content-Length: -5")
        elif variant == "non-numeric":
            lines.append(b"Content-Length: 1e3")
        elif variant == "huge":
            lines.append(b"Content-Length: 99999999999")
        elif variant == "bad-chunk":
            lines.append(b"Transfer-Encoding: chunked")
            body = b"zz\r\nabc\r\n0\r\n\r\n"
        elif variant == "chunk-too-big":
            lines.append(b"Transfer-Encoding: chunked")
            body = b"7FFFFFFF\r\nabc\r\n"
        else:
            lines.extend([b"Transfer-Encoding: chunked", b"Content-Length: 3"])
            body = b"3\r\nabc\r\n0\r\n\r\n"
        return HostileRequest(f"framing {variant} POST {route}", "POST", build("POST", route, lines, body))


def leaks(body: bytes) -> list[str]:
    """The internals a response body gives away (none, for a body that is fit to show)."""
    return sorted({match.group(0) for match in LEAKS.finditer(body.decode("utf-8", "replace"))})
