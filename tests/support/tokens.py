"""Hostile and foreign tokens (crafted by hand where PyJWT refuses to make them), and a local JWKS
endpoint served from a thread: the asymmetric mode is tested without the internet."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from support import JWT_SECRET


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(user_id: Any = "1", **overrides: Any) -> dict[str, Any]:
    """simplejwt access-token claims (user_id kept exactly as given); pass claim=None to drop one."""
    now = int(time.time())
    payload: dict[str, Any] = {
        "token_type": "access",
        "exp": now + 1800,
        "iat": now,
        "jti": uuid.uuid4().hex,
        "user_id": user_id,
    }
    payload.update(overrides)
    return {k: v for k, v in payload.items() if v is not None}


def hs_token(payload: dict[str, Any], secret: str = JWT_SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(payload, secret, algorithm=algorithm)


def unsigned_token(payload: dict[str, Any], alg: str = "none", signature: str = "") -> str:
    """The classic `alg: none` token (PyJWT will not produce one)."""
    header = b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = b64url(json.dumps(payload).encode())
    return f"{header}.{body}.{signature}"


def hmac_token(payload: dict[str, Any], key: bytes, header: dict[str, Any] | None = None) -> str:
    """An HS256 token over any key bytes, e.g. an RSA public key PEM (the HS/RS confusion attack;
    PyJWT refuses to sign with a PEM as an HMAC secret, so this is done by hand)."""
    head = b64url(json.dumps(header or {"alg": "HS256", "typ": "JWT"}).encode())
    body = b64url(json.dumps(payload).encode())
    signature = hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(signature)}"


def tamper_payload(token: str, **changes: Any) -> str:
    """Same header and signature, different claims (e.g. another user id)."""
    head, body, signature = token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload.update(changes)
    return f"{head}.{b64url(json.dumps(payload).encode())}.{signature}"


@dataclass
class SigningKey:
    kid: str
    algorithm: str
    private: Any

    @property
    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def jwk(self) -> dict[str, Any]:
        algorithm = jwt.get_algorithm_by_name(self.algorithm)
        data = json.loads(algorithm.to_jwk(self.private.public_key()))
        return {**data, "kid": self.kid, "use": "sig", "alg": self.algorithm}

    def sign(self, payload: dict[str, Any], kid: str | None = None) -> str:
        return jwt.encode(payload, self.private, algorithm=self.algorithm, headers={"kid": kid or self.kid})


def rsa_key(kid: str = "rsa-1") -> SigningKey:
    return SigningKey(kid, "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))


def ec_key(kid: str = "ec-1") -> SigningKey:
    return SigningKey(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))


@dataclass
class JwksEndpoint:
    """What the local identity provider serves, and how often it was asked."""

    url: str
    body: bytes = b'{"keys": []}'
    status: int = 200
    hits: list[str] = field(default_factory=list)

    def publish(self, *keys: SigningKey) -> None:
        self.body = json.dumps({"keys": [key.jwk() for key in keys]}).encode()
        self.status = 200


@contextmanager
def jwks_server() -> Iterator[JwksEndpoint]:
    endpoint = JwksEndpoint(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            endpoint.hits.append(self.path)
            self.send_response(endpoint.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(endpoint.body)))
            self.end_headers()
            self.wfile.write(endpoint.body)

        def log_message(self, *args: Any) -> None:  # keep the test output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="test-jwks", daemon=True)
    thread.start()
    endpoint.url = f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    try:
        yield endpoint
    finally:
        server.shutdown()
        server.server_close()


def closed_port_url() -> str:
    """A loopback URL where nothing listens (connection refused at once)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/.well-known/jwks.json"
