"""Outbound HTTP to untrusted servers (EHRs today; write-back and other callers next).

Every URL we call comes from an admin (the FHIR base) or from a document the EHR serves
(discovery, OpenID configuration), so every call is treated as untrusted:

- SSRF guard (guard.py): https only, and every address the host name resolves to must be
  public. The same check runs again on the socket actually connected, so a DNS answer that changes
  between our look-up and the connection (DNS rebinding) is caught too. In local mode (a
  developer's machine) it is the other way round: http is allowed, and only loopback addresses.
- Redirects are never followed blindly: for GET, a redirect to the same host is followed (at most
  `max_redirects` hops); to another host it is refused. Other methods get the 3xx back.
- Bodies are streamed and cut off at `max_bytes`; the whole exchange has a deadline, so a server
  trickling bytes cannot hold a worker.
- 429 / 503 are retried by the caller's `RetryPolicy` (lib/net/retry.py), honouring Retry-After
  (seconds or HTTP date) only when the server asks for no longer than the policy allows.
- Under a request's budget (lib/net/budget.py) the timeouts, the deadline and every retry's wait
  are cut to what is left of it; a call with no time left is not started.
- Logs carry method, host, path (FHIR ids masked), status and duration; never query strings,
  headers or bodies.

Failures become `AppError` with the DISC-* transport codes of the catalogue; those meaning "the
server is not serving" (no answer, a reset, too slow) are `NotServing`, which a launch turns into
SRV-EHR-UNAVAILABLE while validation keeps the DISC-* code (a configuration problem).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

from lib.net.budget import may_wait, remaining, spent
from lib.net.guard import (
    AddressNotAllowed,
    Deadline,
    address_allowed,
    guarded_adapter_class,
    loopback,
    resolve_addresses,
)
from lib.net.retry import EHR_RETRIES, RetryPolicy
from lib.web.errors import AppError
from lib.web.http import whole_number

log = logging.getLogger(__name__)

Resolver = Callable[[str, int], list[str]]
# A form body, or a function building it for each attempt (a retried client assertion needs a
# fresh `jti`: servers refuse a replayed one).
FormData = Mapping[str, str] | Callable[[], Mapping[str, str]]
# A request body: a form (encoded by requests), or bytes sent as they are (a JSON Patch).
Body = FormData | bytes

_DEFAULT_PORTS = {"https": 443, "http": 80}
_REDIRECTS = {301, 302, 303, 307, 308}
# Path segments after these resource types are ids; masked in logs (F20: no patient data).
_FHIR_ID_IN_PATH = re.compile(
    r"(/(?:Patient|Practitioner|PractitionerRole|RelatedPerson|Person|Appointment|Encounter|"
    r"Location|Schedule|Slot|Observation|Condition|DocumentReference|Binary)/)[^/?#]+"
)


def host_of(url: str) -> str:
    """The host a URL talks to, lower-case, with the port when it is not the scheme's default.

    This is the form used for host pinning (`allowed_hosts`) and for comparing redirects.
    """
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        return host
    if port and port != _DEFAULT_PORTS.get(parts.scheme.lower()):
        return f"{host}:{port}"
    return host


def log_path(url: str) -> str:
    """The path of `url` as it may appear in logs: no query, FHIR resource ids masked."""
    return _FHIR_ID_IN_PATH.sub(r"\1{id}", urlsplit(url).path or "/")


def outbound_fields(
    method: str,
    url: str,
    status: int | None,
    started: float,
    error: str | None = None,
    path: str | None = None,
) -> dict[str, object]:
    """The structured fields of one outbound call's log line (EHRs here, Graph in lib/teams).

    `path`: the already-masked path, for callers whose URLs carry other ids than FHIR's.
    """
    return {
        "http_method": method,
        "http_host": host_of(url),
        "http_path": log_path(url) if path is None else path,
        "http_status": status,
        "duration_ms": int((time.monotonic() - started) * 1000),
        "error_code": error,
    }


@dataclass(frozen=True)
class HttpResponse:
    """A fully read response (the body is already capped)."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()

    def json(self, error_code: str = "DISC-NOT-JSON") -> Any:
        """The body as JSON (whatever the Content-Type says: some servers mislabel it)."""
        try:
            return json.loads(self.body)
        except (ValueError, RecursionError):
            what = self.content_type or "no content type"
            raise AppError(error_code, f"{host_of(self.url)} answered {what}, not JSON") from None


class NotServing(AppError):
    """The server did not serve: no answer, a reset, too slow, or (raised by the callers that
    read statuses) a 5xx / 429 that outlasted the retries. The code stays the caller's DISC-* or
    TOKEN-* code; what is about a launch makes it SRV-EHR-UNAVAILABLE."""


def _broken_off(exc: Exception) -> bool:
    """A TLS error that is a closed or reset connection (a server going away), not a
    certificate or protocol problem (which is configuration)."""
    text = str(exc)
    return "EOF" in text or "reset" in text.lower() or "Connection aborted" in text


def _classify_failure(exc: Exception, host: str) -> tuple[str, str]:
    """Catalogue code and a short detail for a failed connection (no URL, no query)."""
    import requests

    if isinstance(exc, AddressNotAllowed):
        return "DISC-ADDRESS-NOT-ALLOWED", f"{host} connected to a non-public address"
    if isinstance(exc, requests.exceptions.SSLError) and not _broken_off(exc):
        return "DISC-TLS", f"TLS handshake with {host} failed"
    if isinstance(exc, requests.exceptions.SSLError):
        return "DISC-UNREACHABLE", f"{host} broke off the connection"
    if isinstance(exc, requests.exceptions.Timeout):
        return "DISC-UNREACHABLE", f"{host} timed out"
    return "DISC-UNREACHABLE", f"{host} could not be reached"


def _body(data: Body | None) -> bytes | dict[str, str] | None:
    if data is None or isinstance(data, bytes):
        return data
    return dict(data() if callable(data) else data)


class OutboundHttp:
    """requests.Session wrapper for every call this library makes to an EHR.

    `local_mode` turns the SSRF guard around: http is allowed and only loopback addresses are
    reached (the sandbox lives on 127.0.0.x, with a CA given through REQUESTS_CA_BUNDLE).
    `verify` is passed on every request because requests lets REQUESTS_CA_BUNDLE override a
    Session-level `verify`.
    """

    def __init__(
        self,
        *,
        local_mode: bool = False,
        verify: bool | str = True,
        connect_timeout: float = 5.0,
        read_timeout: float = 10.0,
        total_timeout: float = 30.0,
        max_bytes: int = 1 << 20,
        retries: RetryPolicy = EHR_RETRIES,
        max_redirects: int = 3,
        resolver: Resolver = resolve_addresses,
        sleep: Callable[[float], None] = time.sleep,
        user_agent: str = "ehr-virtual-visit-connector",
    ) -> None:
        import requests

        self.local_mode = local_mode
        self._verify = verify
        self._timeout = (connect_timeout, read_timeout)
        self._total_timeout = total_timeout
        self._max_bytes = max_bytes
        self._retries = retries
        self._max_redirects = max_redirects
        self._resolve = resolver
        self._sleep = sleep
        self._session = requests.Session()
        self._session.headers["User-Agent"] = user_agent
        adapter = guarded_adapter_class(local_mode)()
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> OutboundHttp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- public calls --------------------------------------------------------------------------

    def get(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        allowed_hosts: Collection[str] | None = None,
        max_bytes: int | None = None,
    ) -> HttpResponse:
        return self.request(
            "GET", url, headers=headers, allowed_hosts=allowed_hosts, max_bytes=max_bytes
        )

    def post_form(
        self,
        url: str,
        form: FormData,
        *,
        headers: Mapping[str, str] | None = None,
        allowed_hosts: Collection[str] | None = None,
    ) -> HttpResponse:
        """POST application/x-www-form-urlencoded (OAuth token requests)."""
        return self.request("POST", url, headers=headers, data=form, allowed_hosts=allowed_hosts)

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        data: Body | None = None,
        allowed_hosts: Collection[str] | None = None,
        max_bytes: int | None = None,
    ) -> HttpResponse:
        """One logical call: retries on 429/503 and same-host redirects (GET only) included.

        `allowed_hosts` pins the call (and any redirect) to those hosts (`host_of` form);
        a URL outside them raises DISC-HOSTS-MOVED before anything is sent.
        """
        method = method.upper()
        current = url
        for hop in range(self._max_redirects + 1):
            response = self._send_with_retries(
                method, current, headers, data, allowed_hosts, max_bytes
            )
            target = self._redirect_target(method, response)
            if target is None:
                return response
            if host_of(target) != host_of(current):
                raise AppError(
                    "DISC-REDIRECT", f"{host_of(current)} redirected to {host_of(target)}"
                )
            if hop == self._max_redirects:
                raise AppError("DISC-REDIRECT", f"more than {self._max_redirects} redirects")
            current = target
        raise AssertionError("unreachable")  # pragma: no cover

    # --- one hop ---------------------------------------------------------------------------------

    def _send_with_retries(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        data: Body | None,
        allowed_hosts: Collection[str] | None,
        max_bytes: int | None,
    ) -> HttpResponse:
        retry, waited = 1, 0.0
        while True:
            response = self._send(method, url, headers, data, allowed_hosts, max_bytes)
            if not self._retries.retries_status(response.status):
                return response
            wait = self._retries.wait_before(retry, response.headers.get("Retry-After"), waited)
            if wait is None or not may_wait(wait):
                return response  # out of tries, or the server asks for longer than we may wait
            self._sleep(wait)
            retry, waited = retry + 1, waited + wait

    def _send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        data: Body | None,
        allowed_hosts: Collection[str] | None,
        max_bytes: int | None,
    ) -> HttpResponse:
        self._check_url(url, allowed_hosts)
        started = time.monotonic()
        host = host_of(url)
        if spent():
            self._log(method, url, None, started, "DISC-UNREACHABLE")
            raise NotServing("DISC-UNREACHABLE", f"{host}: no time left to ask")
        with Deadline(remaining(self._total_timeout)) as deadline:
            return self._exchange(method, url, headers, data, max_bytes, started, host, deadline)

    def _exchange(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        data: Body | None,
        max_bytes: int | None,
        started: float,
        host: str,
        deadline: Deadline,
    ) -> HttpResponse:
        import requests

        try:
            raw = self._session.request(
                method,
                url,
                headers=dict(headers or {}),
                data=_body(data),
                timeout=tuple(remaining(t) for t in self._timeout),
                allow_redirects=False,
                stream=True,
                verify=self._verify,
            )
        except (AddressNotAllowed, requests.exceptions.RequestException) as exc:
            code, detail = _classify_failure(exc, host)
            if deadline.expired:
                code, detail = "DISC-UNREACHABLE", f"{host} was too slow to answer"
            self._log(method, url, None, started, code)
            raise (NotServing if code == "DISC-UNREACHABLE" else AppError)(code, detail) from None
        try:
            body = self._read_capped(raw, max_bytes or self._max_bytes, deadline, host)
            if deadline.expired:  # the socket was shut while the body was being read
                raise NotServing("DISC-UNREACHABLE", f"{host} was too slow to answer")
        except AppError as exc:
            self._log(method, url, raw.status_code, started, exc.code)
            raise
        finally:
            raw.close()
        self._log(method, url, raw.status_code, started)
        return HttpResponse(raw.status_code, raw.headers, body, url)

    def _read_capped(self, raw: Any, cap: int, deadline: Deadline, host: str) -> bytes:
        import requests

        declared = whole_number(raw.headers.get("Content-Length"), 18)
        if declared is not None and declared > cap:
            raise AppError("DISC-TOO-LARGE", f"{host} sent more than {cap} bytes")
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in raw.iter_content(16384):  # decoded bytes: a gzip bomb is cut off too
                size += len(chunk)
                if size > cap:
                    raise AppError("DISC-TOO-LARGE", f"{host} sent more than {cap} bytes")
                if deadline.expired:
                    raise NotServing("DISC-UNREACHABLE", f"{host} was too slow to answer")
                chunks.append(chunk)
        except (requests.exceptions.RequestException, OSError):
            if deadline.expired:
                raise NotServing("DISC-UNREACHABLE", f"{host} was too slow to answer") from None
            raise NotServing("DISC-UNREACHABLE", f"{host} broke off the answer") from None
        return b"".join(chunks)

    def _check_url(self, url: str, allowed_hosts: Collection[str] | None) -> None:
        parts = urlsplit(url)
        if parts.scheme.lower() not in _DEFAULT_PORTS or not parts.hostname:
            raise AppError("DISC-ADDRESS-NOT-ALLOWED", "not an absolute https URL")
        if parts.username or parts.password:
            raise AppError("DISC-ADDRESS-NOT-ALLOWED", "credentials in the URL")
        host = host_of(url)
        if allowed_hosts is not None and host not in {h.lower() for h in allowed_hosts}:
            raise AppError("DISC-HOSTS-MOVED", f"{host} is not one of the pinned hosts")
        if not self.local_mode and parts.scheme.lower() != "https":
            raise AppError("DISC-ADDRESS-NOT-ALLOWED", "only https URLs are allowed")
        self._check_resolved(parts.hostname, parts.port or _DEFAULT_PORTS[parts.scheme.lower()])

    def _check_resolved(self, hostname: str, port: int) -> None:
        try:
            addresses = self._resolve(hostname, port)
        except (OSError, UnicodeError):
            raise NotServing("DISC-UNREACHABLE", f"{hostname} could not be resolved") from None
        # Local mode reaches only this machine (the sandbox): an address typed into a local
        # run, or generated by a fuzzer, never makes it talk to the network.
        allowed, what = (loopback, "loopback") if self.local_mode else (address_allowed, "public")
        if not addresses or not all(allowed(a) for a in addresses):
            raise AppError("DISC-ADDRESS-NOT-ALLOWED", f"{hostname} is not a {what} address")

    @staticmethod
    def _redirect_target(method: str, response: HttpResponse) -> str | None:
        location = response.headers.get("Location")
        if response.status not in _REDIRECTS or not location or method not in ("GET", "HEAD"):
            return None
        return urljoin(response.url, location)

    @staticmethod
    def _log(
        method: str, url: str, status: int | None, started: float, error: str | None = None
    ) -> None:
        fields = outbound_fields(method, url, status, started, error)
        ms = fields["duration_ms"]
        level = logging.WARNING if error else logging.INFO
        outcome = status if error is None else error
        log.log(
            level,
            "outbound %s %s%s -> %s in %d ms",
            method,
            fields["http_host"],
            fields["http_path"],
            outcome,
            ms,
            extra=fields,
        )
