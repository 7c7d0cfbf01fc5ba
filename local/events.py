"""Lambda events as API Gateway (HTTP API, payload 2.0) and Function URLs build them."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, unquote

TEXT_TYPES = ("text/", "application/json", "application/x-www-form-urlencoded", "application/xml", "+json", "+xml")


def _is_text(content_type: str) -> bool:
    content_type = content_type.lower()
    return any(marker in content_type for marker in TEXT_TYPES)


def http_event(
    method: str,
    raw_path: str,
    *,
    query: str = "",
    headers: Mapping[str, str] | None = None,
    body: bytes | str | None = None,
    route_key: str | None = None,
    path_parameters: Mapping[str, str] | None = None,
    source_ip: str = "127.0.0.1",
    stage: str = "$default",
    domain_name: str = "localhost",
    function_url: bool = False,
) -> dict[str, Any]:
    """A payload-2.0 event. Function URLs use the same shape with routeKey `$default`."""
    lowered: dict[str, str] = {}
    cookies: list[str] = []
    for raw_name, value in (headers or {}).items():
        name = raw_name.lower()
        if name == "cookie":
            cookies.extend(part.strip() for part in value.split(";") if part.strip())
        elif name in lowered:
            lowered[name] = f"{lowered[name]},{value}"  # API Gateway joins repeated headers
        else:
            lowered[name] = value
    query_parameters: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        query_parameters[key] = f"{query_parameters[key]},{value}" if key in query_parameters else value
    now = datetime.now(UTC)
    request_id = str(uuid.uuid4())
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default" if function_url else (route_key or f"{method.upper()} {raw_path}"),
        "rawPath": raw_path,
        "rawQueryString": query,
        "headers": lowered,
        "requestContext": {
            "accountId": "anonymous" if function_url else "000000000000",
            "apiId": "local",
            "domainName": domain_name,
            "domainPrefix": domain_name.split(".", maxsplit=1)[0],
            "http": {
                "method": method.upper(),
                "path": unquote(raw_path),
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": lowered.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": "$default" if function_url else (route_key or f"{method.upper()} {raw_path}"),
            "stage": "$default" if function_url else stage,
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(time.time() * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if query_parameters:
        event["queryStringParameters"] = query_parameters
    if path_parameters:
        event["pathParameters"] = dict(path_parameters)
    if body:
        raw = body.encode() if isinstance(body, str) else body
        if _is_text(lowered.get("content-type", "")) and _is_utf8(raw):
            event["body"] = raw.decode()
        else:
            event["body"] = base64.b64encode(raw).decode()
            event["isBase64Encoded"] = True
    return event


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode()
    except UnicodeDecodeError:
        return False
    return True


def scheduled_event(rule: str = "local-schedule") -> dict[str, Any]:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "000000000000",
        "time": now,
        "region": "us-east-1",
        "resources": [f"arn:aws:events:us-east-1:000000000000:rule/{rule}"],
        "detail": {},
    }


class LambdaContext:
    """The attributes handlers and Powertools read from Lambda's context object."""

    def __init__(self, function_name: str, timeout_seconds: int = 10, memory_mb: int = 512) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:000000000000:function:{function_name}"
        self.memory_limit_in_mb = memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(int((self._deadline - time.monotonic()) * 1000), 0)
