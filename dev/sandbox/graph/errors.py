"""Graph-shaped errors: ``{"error": {"code", "message", "innerError": {...}}}`` and the
``request-id`` / ``client-request-id`` headers every Graph answer carries.

Clients should branch on the HTTP status and ``error.code``, never on the message.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from werkzeug.wrappers import Request, Response

from dev.sandbox.standin import json_response


class GraphError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}")
        self.status = status
        self.code = code
        self.message = message


def request_ids(request: Request) -> dict[str, str]:
    """Graph echoes the caller's client-request-id (or makes one) and adds its own request-id."""
    request_id = str(uuid.uuid4())
    return {
        "request-id": request_id,
        "client-request-id": request.headers.get("client-request-id") or request_id,
    }


def graph_json(
    request: Request, data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return json_response(data, status, {**request_ids(request), **(headers or {})})


def error_response(request: Request, exc: GraphError, headers: dict[str, str] | None = None):
    ids = request_ids(request)
    body = {
        "error": {
            "code": exc.code,
            "message": exc.message,
            "innerError": {
                "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                "request-id": ids["request-id"],
                "client-request-id": ids["client-request-id"],
            },
        }
    }
    merged = {**ids, **(headers or {})}
    if exc.status == 401:
        merged.setdefault("WWW-Authenticate", 'Bearer realm="", authorization_uri=""')
    return json_response(body, exc.status, merged)


def bad_request(message: str) -> GraphError:
    return GraphError(400, "BadRequest", message)


def user_not_found(user_id: str) -> GraphError:
    return GraphError(
        404,
        "Request_ResourceNotFound",
        f"Resource '{user_id}' does not exist or one of its queried reference-property objects "
        "are not present.",
    )


def meeting_not_found() -> GraphError:
    return GraphError(404, "NotFound", "The requested online meeting was not found.")
