"""Graph's subscriptions and the change notifications they deliver, as Graph does them.

- Creating (or moving) a subscription validates its ``notificationUrl`` and
  ``lifecycleNotificationUrl`` first: a POST with ``?validationToken=`` that must be answered
  200, ``text/plain``, with the token, within 10 seconds; otherwise no subscription.
- Resources: ``communications/onlineMeetings(joinWebUrl='{url-encoded}')/meetingCallEvents``
  (beta: call started, call ended, roster updated, with resource data encrypted to the
  subscriber's certificate) and ``communications/callRecords`` (``created``, no resource data).
- Deliveries: ``{"value": [notification]}`` posted from a thread of their own, in order, retried
  (1, 2, 4 s) on a non-2xx answer or a lost connection, then dropped, as Graph drops what it
  cannot deliver. A fault on the family ``graph-notifications`` (``/graph/_notify/{subscription
  id}``) drops a delivery before it is sent: what a missed notification looks like to the app.
- Deliveries with resource data carry ``validationTokens``, as Graph's do: one JWT for the
  subscribing app, minted by the sandbox Entra's signing keys for Graph's change-notification
  publisher (``azp``, v2.0), reused while it is fresh. ``validation_token`` makes them bad for
  tests (``TOKEN_MODES``; restored on reset).
- Lifecycle notifications (``reauthorizationRequired``, ``subscriptionRemoved``, ``missed``) go
  to the lifecycle URL when a test sends them (``lifecycle``).

Encryption of resource data, as Graph documents it: a fresh AES-256 key, the resource JSON
AES-CBC / PKCS#7 with the key's first 16 bytes as IV; ``dataSignature`` HMAC-SHA256 of the
ciphertext under that key; ``dataKey`` the key, RSA-OAEP (SHA-1) to the certificate's key.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import requests

from dev.sandbox.directory import TENANT_ID
from dev.sandbox.outbox import Outbox

if TYPE_CHECKING:
    from dev.sandbox.state import SandboxState

log = logging.getLogger("dev.sandbox.graph")

MEETING_EVENTS, CALL_RECORDS = "meetingCallEvents", "callRecords"
MAX_MINUTES = {MEETING_EVENTS: 4320, CALL_RECORDS: 4230}
RETRIES = (1.0, 2.0, 4.0)
VALIDATION_TIMEOUT = 10.0
# What the validationTokens of rich deliveries are: good (v2.0, as Graph's today), good-v1 (a
# v1.0 token: iss sts.windows.net, appid), or a fault: missing, expired, wrong-audience,
# wrong-publisher, forged (signed by a key the tenant never published, under its kid).
TOKEN_MODES = ("good", "good-v1", "missing", "expired", "wrong-audience", "wrong-publisher",
               "forged")  # fmt: skip
TOKEN_REUSE_SECONDS = 600.0  # Graph repeats a token across deliveries for a while


class SubscriptionRefused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class Subscription:
    id: str
    app_id: str
    resource: str
    kind: str  # meetingCallEvents | callRecords
    change_type: str
    notification_url: str
    lifecycle_url: str | None
    client_state: str | None
    expires: dt.datetime
    version: str  # v1.0 | beta
    join_web_url: str | None = None
    certificate: bytes | None = None  # DER
    certificate_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The subscription resource, as Graph returns it (clientState included)."""
        return {
            "id": self.id,
            "resource": self.resource,
            "applicationId": self.app_id,
            "changeType": self.change_type,
            "clientState": self.client_state,
            "notificationUrl": self.notification_url,
            "lifecycleNotificationUrl": self.lifecycle_url,
            "expirationDateTime": _time(self.expires),
            "includeResourceData": self.certificate is not None,
            "encryptionCertificateId": self.certificate_id,
            "notificationContentType": "application/json",
        }


@dataclass
class Delivery:
    subscription_id: str
    kind: str  # change | lifecycle
    attempt: int
    status: int  # 0: connection failed; -1: dropped by a fault
    at: float
    body: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class Subscriptions:
    state: SandboxState
    ca_file: str
    items: dict[str, Subscription] = field(default_factory=dict)
    deliveries: list[Delivery] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _outbox: Outbox = field(init=False)
    validation_token: str = "good"  # one of TOKEN_MODES
    _tokens: dict[tuple[str, str, str], tuple[float, str]] = field(default_factory=dict)

    # -- the subscription resource -----------------------------------------------------------------
    def create(
        self, app_id: str, body: dict[str, Any], version: str, meetings: Any
    ) -> Subscription:
        resource = str(body.get("resource") or "").lstrip("/")
        kind, join_url = _resource_kind(resource)
        if kind == MEETING_EVENTS and version != "beta":
            raise SubscriptionRefused(400, "InvalidRequest", "meetingCallEvents is in beta only.")
        if kind == MEETING_EVENTS and not any(
            m.join_web_url == join_url for m in meetings.values()
        ):
            raise SubscriptionRefused(404, "NotFound", "No online meeting has this joinWebUrl.")
        url = _https(body.get("notificationUrl"), "notificationUrl")
        lifecycle = body.get("lifecycleNotificationUrl")
        lifecycle = _https(lifecycle, "lifecycleNotificationUrl") if lifecycle else None
        rich = bool(body.get("includeResourceData"))
        certificate = None
        if rich:
            if kind == CALL_RECORDS:
                raise SubscriptionRefused(
                    400, "InvalidRequest", "callRecords does not support includeResourceData."
                )
            certificate = _certificate(body.get("encryptionCertificate"))
            if not body.get("encryptionCertificateId"):
                raise SubscriptionRefused(400, "InvalidRequest", "encryptionCertificateId missing.")
        state = body.get("clientState")
        if state is not None and (not isinstance(state, str) or len(state) > 128):
            raise SubscriptionRefused(400, "InvalidRequest", "clientState: at most 128 chars.")
        sub = Subscription(
            id=str(uuid.uuid4()),
            app_id=app_id,
            resource=resource,
            kind=kind,
            change_type=str(body.get("changeType") or ""),
            notification_url=url,
            lifecycle_url=lifecycle,
            client_state=state,
            expires=_expiry(body.get("expirationDateTime"), kind),
            version=version,
            join_web_url=join_url,
            certificate=certificate,
            certificate_id=str(body.get("encryptionCertificateId") or "") or None,
        )
        if not sub.change_type:
            raise SubscriptionRefused(400, "InvalidRequest", "changeType is required.")
        for target in dict.fromkeys(u for u in (url, lifecycle) if u):
            self._validate(target)
        with self._lock:
            self.items[sub.id] = sub
        return sub

    def get(self, app_id: str, subscription_id: str) -> Subscription:
        with self._lock:
            sub = self.items.get(subscription_id)
        if sub is None or sub.app_id != app_id:
            raise SubscriptionRefused(404, "ResourceNotFound", "The object was not found.")
        return sub

    def update(self, app_id: str, subscription_id: str, body: dict[str, Any]) -> Subscription:
        sub = self.get(app_id, subscription_id)
        if "expirationDateTime" in body:
            sub.expires = _expiry(body["expirationDateTime"], sub.kind)
        if body.get("notificationUrl"):
            url = _https(body["notificationUrl"], "notificationUrl")
            self._validate(url)
            sub.notification_url = url
        return sub

    def delete(self, app_id: str, subscription_id: str) -> None:
        self.get(app_id, subscription_id)
        with self._lock:
            self.items.pop(subscription_id, None)

    def matching(self, kind: str, join_url: str | None = None) -> list[Subscription]:
        now = dt.datetime.now(dt.UTC)
        with self._lock:
            return [
                s
                for s in self.items.values()
                if s.kind == kind
                and s.expires > now
                and (join_url is None or s.join_web_url == join_url)
            ]

    def reset(self) -> None:
        """Subscriptions outlive a reset, as the app's own record of them does (like Graph)."""
        self.deliveries.clear()
        self.validation_token = "good"

    # -- notifications --------------------------------------------------------------------------
    def notify(self, sub: Subscription, resource: str, data: dict[str, Any], change: str) -> None:
        """A change notification; ``data`` is the resource (encrypted when subscribed so)."""
        item: dict[str, Any] = {
            "subscriptionId": sub.id,
            "subscriptionExpirationDateTime": _time(sub.expires),
            "changeType": change,
            "resource": resource,
            "clientState": sub.client_state,
            "tenantId": TENANT_ID,
            "resourceData": {
                "@odata.type": data.get("@odata.type"),
                "@odata.id": resource,
                "id": data.get("id"),
            },
        }
        body: dict[str, Any] = {"value": [item]}
        if sub.certificate is not None:
            item["encryptedContent"] = encrypt(data, sub.certificate, sub.certificate_id or "")
            tokens = self._validation_tokens(sub.app_id)
            if tokens:
                body["validationTokens"] = tokens
        self._send(sub, body, "change", sub.notification_url)

    def _validation_tokens(self, app_id: str) -> list[str]:
        """Graph's proof of origin for a rich delivery to `app_id` (see TOKEN_MODES)."""
        mode = self.validation_token
        entra = self.state.stand_ins.get("entra")
        if mode == "missing" or entra is None:
            return []
        if mode == "expired":
            return [entra.graph_validation_token(app_id, expires_in=-3600)]  # type: ignore[attr-defined]
        if mode == "wrong-audience":
            return [entra.graph_validation_token(str(uuid.uuid4()))]  # type: ignore[attr-defined]
        if mode == "wrong-publisher":
            return [entra.graph_validation_token(app_id, publisher=app_id)]  # type: ignore[attr-defined]
        if mode == "forged":
            return [entra.graph_validation_token(app_id, forged=True)]  # type: ignore[attr-defined]
        version = "1.0" if mode == "good-v1" else "2.0"
        kid = entra.keys.active.kid  # type: ignore[attr-defined]
        now = time.monotonic()
        with self._lock:
            cached = self._tokens.get((app_id, version, kid))
        if cached and now - cached[0] < TOKEN_REUSE_SECONDS:
            return [cached[1]]
        token = entra.graph_validation_token(app_id, version=version)  # type: ignore[attr-defined]
        with self._lock:
            self._tokens[(app_id, version, kid)] = (now, token)
        return [token]

    def lifecycle(self, subscription_id: str, event: str) -> None:
        """Send a lifecycle notification now (tests: reauthorizationRequired, missed, ...)."""
        with self._lock:
            sub = self.items.get(subscription_id)
        if sub is None:
            raise KeyError(subscription_id)
        if event == "subscriptionRemoved":
            with self._lock:
                self.items.pop(subscription_id, None)
        item = {
            "subscriptionId": sub.id,
            "subscriptionExpirationDateTime": _time(sub.expires),
            "lifecycleEvent": event,
            "resource": sub.resource,
            "clientState": sub.client_state,
            "tenantId": TENANT_ID,
            "organizationId": TENANT_ID,
        }
        self._send(sub, {"value": [item]}, "lifecycle", sub.lifecycle_url or sub.notification_url)

    def __post_init__(self) -> None:
        self._outbox = Outbox("sandbox:graph:notify", self._run)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        return self._outbox.wait_idle(timeout)

    def _send(self, sub: Subscription, body: dict[str, Any], kind: str, url: str) -> None:
        self._outbox.put((time.monotonic(), 0, sub.id, kind, url, body))

    def _run(self, outbox: Outbox) -> None:
        while (item := outbox.get()) is not None:
            due, attempt, sub_id, kind, url, body = item
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)  # in order: a retry holds the later ones back, as for one URL
            status = self._post(sub_id, url, body)
            self.deliveries.append(Delivery(sub_id, kind, attempt, status, time.time(), body))
            if status == -1 or 200 <= status < 300 or attempt >= len(RETRIES):
                outbox.finished()
                continue
            retry = (time.monotonic() + RETRIES[attempt], attempt + 1, sub_id, kind, url, body)
            outbox.put(retry, new=False)

    def _post(self, sub_id: str, url: str, body: dict[str, Any]) -> int:
        if self.state.faults.take("POST", f"/graph/_notify/{sub_id}") is not None:
            log.info("graph notification for %s dropped (fault)", sub_id)
            return -1
        try:
            return _session(self.ca_file).post(url, json=body, timeout=30).status_code
        except requests.RequestException:
            return 0

    def _validate(self, url: str) -> None:
        token = secrets.token_urlsafe(24) + "+/="  # Graph's tokens need URL-decoding too
        try:
            answer = _session(self.ca_file).post(
                url,
                params={"validationToken": token},
                headers={"Content-Type": "text/plain; charset=utf-8"},
                data=b"",
                timeout=VALIDATION_TIMEOUT,
            )
        except requests.RequestException as exc:
            raise SubscriptionRefused(
                400,
                "ValidationError",
                f"Subscription validation request failed: {type(exc).__name__}.",
            ) from None
        ctype = answer.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if answer.status_code != 200 or answer.text != token or ctype != "text/plain":
            raise SubscriptionRefused(
                400,
                "ValidationError",
                "Subscription validation request failed. Notification endpoint must respond "
                "with 200 OK and the validation token as text/plain.",
            )


def encrypt(data: dict[str, Any], certificate_der: bytes, certificate_id: str) -> dict[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, padding
    from cryptography.hazmat.primitives.asymmetric import padding as asym
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    cert = x509.load_der_x509_certificate(certificate_der)
    key = os.urandom(32)
    padder = padding.PKCS7(128).padder()
    plain = padder.update(json.dumps(data).encode()) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    cipher = encryptor.update(plain) + encryptor.finalize()
    oaep = asym.OAEP(asym.MGF1(hashes.SHA1()), hashes.SHA1(), None)  # noqa: S303 - Graph's
    return {
        "data": base64.b64encode(cipher).decode(),
        "dataSignature": base64.b64encode(hmac.new(key, cipher, hashlib.sha256).digest()).decode(),
        "dataKey": base64.b64encode(cert.public_key().encrypt(key, oaep)).decode(),
        "encryptionCertificateId": certificate_id,
        "encryptionCertificateThumbprint": hashlib.sha1(certificate_der).hexdigest().upper(),  # noqa: S324
    }


def _resource_kind(resource: str) -> tuple[str, str | None]:
    if resource == "communications/callRecords":
        return CALL_RECORDS, None
    prefix, suffix = "communications/onlineMeetings(joinWebUrl='", "')/meetingCallEvents"
    if resource.startswith(prefix) and resource.endswith(suffix):
        return MEETING_EVENTS, unquote(resource[len(prefix) : -len(suffix)])
    raise SubscriptionRefused(
        400, "InvalidRequest", f"Resource '{resource[:200]}' is not supported by the sandbox."
    )


def _https(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.startswith("https://"):
        raise SubscriptionRefused(400, "InvalidRequest", f"{name} must be an https URL.")
    return value


def _certificate(value: Any) -> bytes:
    from cryptography import x509

    try:
        der = base64.b64decode(str(value or ""), validate=True)
        x509.load_der_x509_certificate(der)
    except ValueError:
        raise SubscriptionRefused(
            400, "InvalidRequest", "encryptionCertificate must be a base64 X.509 certificate."
        ) from None
    return der


def _expiry(value: Any, kind: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise SubscriptionRefused(
            400, "InvalidRequest", "expirationDateTime is required."
        ) from None
    when = when if when.tzinfo else when.replace(tzinfo=dt.UTC)
    now = dt.datetime.now(dt.UTC)
    if when <= now:
        raise SubscriptionRefused(400, "InvalidRequest", "expirationDateTime is in the past.")
    if when > now + dt.timedelta(minutes=MAX_MINUTES[kind]):
        raise SubscriptionRefused(
            400,
            "InvalidRequest",
            f"Subscription expiration can only be {MAX_MINUTES[kind]} minutes in the future.",
        )
    return when


def _time(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _session(ca_file: str) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # the app's certificate is from this sandbox's CA
    session.verify = ca_file or True
    return session
