"""Plain request / response types, so lib/ never imports azure.functions.

functions/_http.py converts the host's HttpRequest into a `Request` and a `Response` back.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from lib.web.errors import AppError

MAX_JSON_DEPTH = 32
MAX_JSON_BODY = 64 * 1024  # configuration documents are small; anything larger is a mistake


def whole_number(text: str | None, most_digits: int = 9) -> int | None:
    """A whole number someone else sent (a header, an HL7 field, a token response), or None.

    ASCII digits only: `str.isdigit()` also takes '²' and '٣', which `int()` then refuses (a
    500) or reads as 3; and at most `most_digits` of them, so no caller meets a 10,000-digit int.
    """
    text = (text or "").strip()
    if not text or len(text) > most_digits or not text.isascii() or not text.isdigit():
        return None
    return int(text)


class Headers(dict):
    """Case-insensitive header map (keys stored lower-case)."""

    def __init__(self, items: Mapping[str, str] | None = None) -> None:
        super().__init__({k.lower(): v for k, v in (items or {}).items()})

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key.lower(), default)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())


@dataclass
class Request:
    method: str
    url: str
    headers: Headers = field(default_factory=Headers)
    query: dict[str, str] = field(default_factory=dict)
    route: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    def wants_html(self) -> bool:
        """A browser navigating (Accept: text/html first) rather than an API client."""
        accept = self.headers.get("accept", "")
        return "text/html" in accept.split(",")[0]

    @property
    def framed(self) -> bool:
        """A navigation inside a frame (an EHR's activity iframe), as the browser tells it
        (Fetch Metadata: every current browser and embedded WebView2 sends it over https)."""
        return self.headers.get("sec-fetch-dest", "") in ("iframe", "frame")

    def form(self, *, limit: int = MAX_JSON_BODY) -> dict[str, str]:
        """An application/x-www-form-urlencoded body (our own pages' forms), one value a name."""
        if len(self.body) > limit:
            raise AppError(
                "REQ-TOO-LARGE", f"The body is {len(self.body)} bytes; the limit is {limit}."
            )
        ctype = self.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            raise AppError("REQ-UNSUPPORTED-MEDIA", f"Content-Type was {ctype or 'missing'}.")
        try:
            pairs = parse_qsl(self.body.decode("ascii"), keep_blank_values=True)
        except (UnicodeDecodeError, ValueError):
            raise AppError("REQ-BAD-JSON", "The form is not URL-encoded text.") from None
        return dict(pairs)

    def json(self, *, limit: int = MAX_JSON_BODY) -> Any:
        if len(self.body) > limit:
            raise AppError(
                "REQ-TOO-LARGE", f"The body is {len(self.body)} bytes; the limit is {limit}."
            )
        ctype = self.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype not in ("application/json", "application/merge-patch+json") and not ctype.endswith(
            "+json"
        ):
            raise AppError("REQ-UNSUPPORTED-MEDIA", f"Content-Type was {ctype or 'missing'}.")
        try:
            data = json.loads(self.body or b"null")
        except RecursionError:
            raise AppError("REQ-BAD-JSON", f"Nested more than {MAX_JSON_DEPTH} levels.") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise AppError("REQ-BAD-JSON", f"Invalid JSON: {exc.__class__.__name__}.") from None
        if _depth(data) > MAX_JSON_DEPTH:
            # No request of ours nests deeply; a deep body only costs validation time (and
            # deeper still, the parser's recursion limit).
            raise AppError("REQ-BAD-JSON", f"Nested more than {MAX_JSON_DEPTH} levels.")
        return data


def _depth(value: Any) -> int:
    """How deeply containers nest in a parsed JSON value (iteratively: no recursion limit)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    kind: str = "api"  # "api" or "page": which security headers apply
    # Origins allowed to frame this page (an EHR) and to receive its forms (an EHR's authorize).
    frame_ancestors: tuple[str, ...] = ()
    form_action: tuple[str, ...] = ()
    # What to answer instead when the request came from a frame and this answer cannot be shown
    # there (a redirect to a sign-in page that refuses to be framed): see Callback.handle.
    in_frame: Callable[[], Response] | None = None
    # A body made as it is sent (a report's CSV): chunks, read once, instead of `body`.
    chunks: Iterable[bytes] | None = None

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        body = json.dumps(data, separators=(",", ":"), default=str).encode()
        return cls(status, body, "application/json", dict(headers or {}))

    @classmethod
    def html(cls, text: str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        return cls(status, text.encode(), "text/html; charset=utf-8", dict(headers or {}), "page")

    @classmethod
    def redirect(cls, location: str, status: int = 302) -> Response:
        return cls(status, b"", "text/plain; charset=utf-8", {"Location": location}, "page")
