"""Microsoft Graph over HTTPS with an app-only token: the one place lib/ talks to Graph.

- Token: msal's confidential client (client credentials, `{resource}/.default`). The msal app is
  built on first use and kept for the life of the process, keyed by (authority, client id,
  secret digest), so however many `GraphClient`s are made, msal's in-memory cache serves the same
  token until shortly before it expires: one token request per hour, not one per call.
- Retries: by `GRAPH_RETRIES` (lib/net/retry.py): 429 / 503 / 504 and connection failures,
  honouring Retry-After (seconds or an HTTP date), with a cap on attempts and on the waiting in
  all, so a launch never hangs. A 401 on a cached token gets one retry with a fresh token.
- Budget: under a request's budget (lib/net/budget.py) every call's timeouts and the whole
  exchange are cut to what is left, a retry is waited for only if time remains after it, and
  the token lock is waited on no longer than the budget.
- Failures become `AppError`: GRAPH-THROTTLED (still 429 after the retries; carries
  Retry-After), SRV-MICROSOFT-UNAVAILABLE (no answer in time, or still 502 / 503 / 504; carries
  Retry-After), GRAPH-FAILED (anything else; the detail is Graph's error code only, never its
  message, which may echo input).
- Logs: method, path with ids masked, status, duration, Graph's request-id; never bodies,
  query strings or tokens.

Trust: requests (and msal, which uses requests) read REQUESTS_CA_BUNDLE; against the local
sandbox that variable names the sandbox CA. `verify` overrides it per client when given.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from lib.net.budget import acquire, bounded_session, may_wait, note_success, unavailable
from lib.net.http import host_of, outbound_fields
from lib.net.retry import GRAPH_RETRIES, RetryPolicy, retry_after_seconds
from lib.teams.entra import confidential_client, entra_serving
from lib.web.errors import AppError

log = logging.getLogger(__name__)

GRAPH_BASE = "https://graph.microsoft.com"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
_UNAVAILABLE_STATUSES = frozenset({502, 503, 504})
# The longest a call waits for another thread's token request (itself bounded by its timeout).
_TOKEN_LOCK_WAIT = 20.0
# Ids in Graph paths (user object ids, meeting ids) are masked in logs.
_IDS_IN_PATH = re.compile(r"(/users/|/onlineMeetings/(?!createOrGet(?:$|/)))[^/?#]+")


def seg(value: str) -> str:
    """One path segment, percent-encoded (Graph meeting ids may hold `/`, `+`, `=`)."""
    return quote(value, safe="")


def log_path(url: str) -> str:
    """The path of `url` as logs may show it: no query, user and meeting ids masked."""
    return _IDS_IN_PATH.sub(r"\1{id}", urlsplit(url).path or "/")


# --- msal apps, one per (authority, client id, secret) per process ----------------------------


@dataclass
class _TokenSource:
    app: Any  # msal.ConfidentialClientApplication
    lock: threading.Lock = field(default_factory=threading.Lock)


_sources: dict[tuple[str, str, str], _TokenSource] = {}
_sources_lock = threading.Lock()


def _token_source(authority: str, client_id: str, secret: str, timeout: float) -> _TokenSource:
    key = (authority.rstrip("/"), client_id, hashlib.sha256(secret.encode()).hexdigest())
    with _sources_lock:
        source = _sources.get(key)
    if source is not None:
        return source
    # Built outside the lock: msal fetches the authority's metadata here, and a hung Entra must
    # not hold every other launch on this lock. Two first calls may both build; one is kept.
    try:
        app = confidential_client(authority, client_id, secret, timeout=timeout)
    except AppError:
        raise  # Entra not answering: SRV-MICROSOFT-UNAVAILABLE
    except Exception as exc:  # an authority msal cannot use (a 4xx, a bad document)
        log.warning("graph: Entra authority unusable (%s)", type(exc).__name__)
        raise AppError("GRAPH-FAILED", "token-authority-unavailable") from None
    with _sources_lock:
        return _sources.setdefault(key, _TokenSource(app))


def forget_tokens() -> None:
    """Drop every cached msal app and token in this process (tests; secret rotation)."""
    with _sources_lock:
        _sources.clear()


# --- responses -------------------------------------------------------------------------------


@dataclass(frozen=True)
class GraphResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes
    request_id: str | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> dict[str, Any]:
        """The body as a JSON object ({} for an empty body); GRAPH-FAILED when it is not."""
        if not self.body:
            return {}
        try:
            data = json.loads(self.body)
        except (ValueError, RecursionError):
            raise AppError("GRAPH-FAILED", "response-not-json") from None
        if not isinstance(data, dict):
            raise AppError("GRAPH-FAILED", "response-not-object")
        return data

    @property
    def error_code(self) -> str:
        """Graph's `error.code`, or `HTTP {status}` when the body has none."""
        try:
            error = json.loads(self.body).get("error") if self.body else None
        except (ValueError, RecursionError, AttributeError):
            error = None
        code = error.get("code") if isinstance(error, dict) else None
        if isinstance(code, str) and code and len(code) <= 100:
            return code
        return f"HTTP {self.status}"

    def raise_for_error(self) -> GraphResponse:
        if not self.ok:
            raise AppError("GRAPH-FAILED", self.error_code)
        return self


# --- the client ------------------------------------------------------------------------------


class GraphClient:
    """App-only Microsoft Graph calls (`/v1.0/...`) for one app registration."""

    def __init__(
        self,
        authority: str,
        client_id: str,
        client_secret: str,
        graph_base: str = GRAPH_BASE,
        http: Any | None = None,
        *,
        scope: str = GRAPH_SCOPE,
        verify: bool | str | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 20.0,
        retries: RetryPolicy = GRAPH_RETRIES,
        sleep: Callable[[float], None] = time.sleep,
        user_agent: str = "ehr-virtual-visit-connector",
    ) -> None:
        """`authority`: `{ENTRA_AUTHORITY_HOST}/{ENTRA_TENANT_ID}`. `http`: a requests.Session
        (or alike) to use; by default one is made on first use. `scope`: the token's resource
        (`https://graph.microsoft.com/.default`, also against the sandbox)."""
        if not client_id or not client_secret:
            raise ValueError("GraphClient needs ENTRA_CLIENT_ID and ENTRA_CLIENT_SECRET")
        self.authority = authority.rstrip("/")
        self.client_id = client_id
        self._secret = client_secret
        self.graph_base = graph_base.rstrip("/")
        self.scope = scope
        self._http = http
        self._owns_http = False
        self._http_lock = threading.Lock()
        self._verify = verify
        self._timeout = (connect_timeout, read_timeout)
        self.retries = retries
        self._sleep = sleep
        self._user_agent = user_agent

    def __repr__(self) -> str:  # never the secret
        return f"GraphClient({self.graph_base!r}, client_id={self.client_id!r})"

    # --- public calls -----------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        version: str = "v1.0",
    ) -> GraphResponse:
        """`send`, and GRAPH-FAILED (detail: Graph's error code) for any non-2xx answer."""
        return self.send(
            method, path, json_body=json_body, params=params, version=version
        ).raise_for_error()

    def send(
        self,
        method: str,
        path: str,
        *,
        json_body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        version: str = "v1.0",
    ) -> GraphResponse:
        """One logical call to `{graph_base}/{version}{path}` (path segments already
        `seg`-encoded). `version`: `beta` for what Graph offers only there (meetingCallEvents).

        Returns the final answer whatever its status, after retries; raises GRAPH-THROTTLED
        when Graph still throttles and GRAPH-FAILED when it cannot be reached at all.
        """
        import requests

        method = method.upper()
        if version not in ("v1.0", "beta"):
            raise ValueError("Graph versions are v1.0 and beta")
        url = f"{self.graph_base}/{version}{path}"
        waited = 0.0
        attempt = 0
        fresh_token_tried = False
        first_started = time.monotonic()
        while True:
            attempt += 1
            started = time.monotonic()
            client_request_id = str(uuid.uuid4())
            try:
                raw = self._session().request(
                    method,
                    url,
                    headers={
                        "Authorization": f"Bearer {self._token()}",
                        "Accept": "application/json",
                        "client-request-id": client_request_id,
                        "User-Agent": self._user_agent,
                    },
                    json=dict(json_body) if json_body is not None else None,
                    params=dict(params) if params else None,
                    timeout=self._timeout,
                    allow_redirects=False,
                    **({"verify": self._verify} if self._verify is not None else {}),
                )
            except requests.exceptions.RequestException as exc:
                detail = (
                    "timeout" if isinstance(exc, requests.exceptions.Timeout) else "unreachable"
                )
                self._log(method, url, None, started, attempt, None, detail)
                wait = self.retries.wait_before(attempt, None, waited)
                if wait is not None and self.retries.connection_errors and may_wait(wait):
                    self._sleep(wait)
                    waited += wait
                    continue
                host = host_of(url)
                raise unavailable("microsoft", detail, host=host, started=first_started) from None
            response = GraphResponse(
                raw.status_code,
                raw.headers,
                raw.content,
                raw.headers.get("request-id"),
            )
            self._log(method, url, raw.status_code, started, attempt, response.request_id)
            if response.status == 401 and not fresh_token_tried:
                # A cached token Graph refuses (revoked, keys rolled): one retry with a new one.
                fresh_token_tried = True
                self._drop_token()
                attempt -= 1
                continue
            if response.ok:
                note_success("microsoft")
            if not self.retries.retries_status(response.status):
                return self._unless_unavailable(response, url, first_started)
            after = retry_after_seconds(response.headers.get("Retry-After"))
            wait = self.retries.wait_before(attempt, response.headers.get("Retry-After"), waited)
            if wait is not None and may_wait(wait):
                self._sleep(wait)
                waited += wait
                continue
            if response.status == 429:
                headers = {"Retry-After": str(max(1, round(after)))} if after is not None else {}
                raise AppError("GRAPH-THROTTLED", response.error_code, headers=headers)
            return self._unless_unavailable(response, url, first_started)

    @staticmethod
    def _unless_unavailable(response: GraphResponse, url: str, started: float) -> GraphResponse:
        """The answer, unless it says Graph is not serving (502 / 503 / 504 after the retries)."""
        if response.status not in _UNAVAILABLE_STATUSES:
            return response
        after = retry_after_seconds(response.headers.get("Retry-After"))
        raise unavailable(
            "microsoft", f"Graph answered HTTP {response.status}", host=host_of(url),
            started=started, retry_after=after,
        )  # fmt: skip

    def get_user(
        self, user_id: str, select: tuple[str, ...] = ("id", "displayName", "userPrincipalName")
    ) -> dict[str, Any] | None:
        """A directory user (object id or UPN), or None when Graph does not know them.

        Not on a path yet: reports resolve the organizer's name at report time (F18).
        """
        response = self.send(
            "GET",
            f"/users/{seg(user_id)}",
            params={"$select": ",".join(select)} if select else None,
        )
        if response.status == 404:
            return None
        return response.raise_for_error().json()

    def close(self) -> None:
        """Close the HTTP session we made (an injected one belongs to the caller)."""
        with self._http_lock:
            if self._http is not None and self._owns_http:
                self._http.close()
                self._http = None

    # --- internals --------------------------------------------------------------------------

    def _session(self) -> Any:
        with self._http_lock:
            if self._http is None:
                self._http = bounded_session()
                self._owns_http = True
            return self._http

    def _source(self) -> _TokenSource:
        return _token_source(self.authority, self.client_id, self._secret, self._timeout[1])

    def _token(self) -> str:
        source = self._source()
        # One token request at a time (cache hits are microseconds); a hung one holds the others
        # no longer than their budget.
        if not acquire(source.lock, _TOKEN_LOCK_WAIT):
            raise unavailable("microsoft", "Entra token: another request is still waiting")
        try:
            with entra_serving("token", self.authority):
                result = source.app.acquire_token_for_client(scopes=[self.scope])
        except AppError:
            raise
        except Exception as exc:  # msal's own errors: an answer it could not use
            log.warning("graph: token request failed (%s)", type(exc).__name__)
            raise AppError("GRAPH-FAILED", "token-unavailable") from None
        finally:
            source.lock.release()
        token = result.get("access_token") if isinstance(result, dict) else None
        if not token:
            error = result.get("error") if isinstance(result, dict) else None
            log.warning("graph: token refused (%s)", error or "no access_token")
            raise AppError("GRAPH-FAILED", str(error or "token-refused")[:100])
        return str(token)

    def _drop_token(self) -> None:
        source = self._source()
        with source.lock:
            source.app.remove_tokens_for_client()

    @staticmethod
    def _log(
        method: str,
        url: str,
        status: int | None,
        started: float,
        attempt: int,
        request_id: str | None,
        error: str | None = None,
    ) -> None:
        fields = {
            **outbound_fields(method, url, status, started, error, path=log_path(url)),
            "attempt": attempt,
            "graph_request_id": request_id,
        }
        ms = fields["duration_ms"]
        failed = error is not None or (status is not None and status >= 400)
        log.log(
            logging.WARNING if failed else logging.INFO,
            "graph %s %s -> %s in %d ms (attempt %d, request-id %s)",
            method,
            fields["http_path"],
            status if error is None else error,
            ms,
            attempt,
            request_id or "-",
            extra=fields,
        )
