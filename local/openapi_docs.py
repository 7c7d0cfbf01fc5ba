"""Swagger UI on the local server: `GET /docs` (and `/docs/`) and `GET /openapi.json`.

Works offline: the page, its script and its stylesheet are served from here (Swagger UI's bundle
as the aws-lambda-powertools package ships it, already installed for the layer), no CDN, and the
page's Content-Security-Policy lets the browser load nothing from anywhere else. The document is
the committed openapi.json (`python -m local.openapi` writes it), with this server listed first
under `servers` so that "Try it out" calls it.

Registered by local/server.py's `default_local_routes()`.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path
from typing import Any

from local.routing import HttpResponse, LocalRequest, gateway_error
from local.template import ROOT

OPENAPI_FILE = ROOT / "openapi.json"
DOCS_PATHS = ("/docs", "/docs/")
OPENAPI_PATH = "/openapi.json"
BUNDLE_PATH = "/docs/swagger-ui-bundle.js"
CSS_PATH = "/docs/swagger-ui.css"
INITIALIZER_PATH = "/docs/swagger-initializer.js"
# Only this server: scripts, styles and fetches from anywhere else are refused by the browser.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

PAGE = f"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Halum Hut Payments API</title>
  <link rel="stylesheet" href="{CSS_PATH}">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{BUNDLE_PATH}"></script>
  <script src="{INITIALIZER_PATH}"></script>
</body>
</html>
"""

INITIALIZER = """window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "OPENAPI_PATH",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    persistAuthorization: true,
    displayRequestDuration: true,
    validatorUrl: null
  });
});
""".replace("OPENAPI_PATH", OPENAPI_PATH)


def swagger_ui_dir() -> Path:
    """Where aws-lambda-powertools keeps Swagger UI's bundle (found without importing it)."""
    spec = importlib.util.find_spec("aws_lambda_powertools")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("aws-lambda-powertools is not installed: it ships the Swagger UI bundle")
    return Path(spec.origin).parent / "event_handler" / "openapi" / "swagger_ui"


@functools.cache
def _asset(name: str) -> bytes:
    return (swagger_ui_dir() / name).read_bytes()


def _response(body: bytes, content_type: str, *, cache: bool = False) -> HttpResponse:
    headers = [
        ("Content-Type", content_type),
        ("Cache-Control", "public, max-age=3600" if cache else "no-cache"),
        ("X-Content-Type-Options", "nosniff"),
    ]
    return HttpResponse(200, headers, body)


def docs_page(request: LocalRequest, _gateway: object) -> HttpResponse:
    response = _response(PAGE.encode(), "text/html; charset=utf-8")
    response.headers.append(("Content-Security-Policy", CONTENT_SECURITY_POLICY))
    return response


def initializer(request: LocalRequest, _gateway: object) -> HttpResponse:
    return _response(INITIALIZER.encode(), "text/javascript; charset=utf-8")


def bundle(request: LocalRequest, _gateway: object) -> HttpResponse:
    return _response(_asset("swagger-ui-bundle.min.js"), "text/javascript; charset=utf-8", cache=True)


def stylesheet(request: LocalRequest, _gateway: object) -> HttpResponse:
    return _response(_asset("swagger-ui.min.css"), "text/css; charset=utf-8", cache=True)


def openapi_document(base_url: str, path: Path = OPENAPI_FILE) -> dict[str, Any] | None:
    """The committed document with `base_url` (this server, as the client reached it) first in `servers`."""
    if not path.exists():
        return None
    document: dict[str, Any] = json.loads(path.read_text())
    others = [server for server in document.get("servers", []) if server.get("url") != base_url]
    document["servers"] = [{"url": base_url, "description": "This local server"}, *others]
    return document


def openapi_json(request: LocalRequest, _gateway: object) -> HttpResponse:
    document = openapi_document(request.base_url)
    if document is None:
        return gateway_error(404, "openapi.json is missing: run `python -m local.openapi`")
    return _response(json.dumps(document, indent=2).encode(), "application/json")


# (method, path, handler) for local/server.py's `default_local_routes()` to register.
DOCS_ROUTES = (
    *(("GET", path, docs_page) for path in DOCS_PATHS),
    ("GET", OPENAPI_PATH, openapi_json),
    ("GET", BUNDLE_PATH, bundle),
    ("GET", CSS_PATH, stylesheet),
    ("GET", INITIALIZER_PATH, initializer),
)
