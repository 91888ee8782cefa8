"""Who is calling the token endpoint: client secret (post or basic) or a signed JWT assertion."""

from __future__ import annotations

import base64
import hmac
import threading
import time
from dataclasses import dataclass
from urllib.parse import unquote_plus

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from werkzeug.wrappers import Request

from dev.sandbox.directory import AppRegistration
from dev.sandbox.entra.errors import OAuthError
from dev.sandbox.entra.keys import b64url

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

# Values of the `azpacr` claim: how the client proved itself.
ACR_PUBLIC, ACR_SECRET, ACR_CERT = "0", "1", "2"


@dataclass(frozen=True)
class ClientCredentials:
    client_id: str | None
    secret: str | None
    assertion: str | None


def read_credentials(request: Request) -> ClientCredentials:
    """client_secret_basic (RFC 6749 2.3.1: url-encoded inside Basic) or form fields."""
    form = request.form
    client_id, secret = form.get("client_id"), form.get("client_secret")
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(header[6:]).decode()
        except ValueError as exc:
            raise OAuthError(401, "invalid_client", 7000216, "Malformed Basic header.") from exc
        user, _, password = decoded.partition(":")
        client_id, secret = unquote_plus(user), unquote_plus(password)
    assertion = None
    if form.get("client_assertion_type") == JWT_BEARER:
        assertion = form.get("client_assertion")
    return ClientCredentials(client_id, secret, assertion)


class ClientAuthenticator:
    def __init__(self, apps: dict[str, AppRegistration], secrets: dict[str, str]) -> None:
        self.apps = apps
        self.secrets = secrets
        self.certificates: dict[str, list[x509.Certificate]] = {}
        self._seen_jti: dict[str, float] = {}
        self._lock = threading.Lock()

    def reset(self, secrets: dict[str, str]) -> None:
        """Back to the configured secrets and no certificates (between tests)."""
        with self._lock:
            self.secrets = dict(secrets)
            self.certificates = {}

    def add_certificate(self, client_id: str, cert: x509.Certificate) -> None:
        with self._lock:
            self.certificates.setdefault(client_id, []).append(cert)

    def authenticate(
        self, creds: ClientCredentials, token_endpoints: list[str]
    ) -> tuple[AppRegistration, str]:
        """The calling app and its `azpacr`; raises OAuthError like Entra would."""
        app = self.apps.get(creds.client_id or "")
        if app is None:
            raise OAuthError(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{creds.client_id}' was not found in the directory.",
            )
        if creds.assertion is not None:
            self._check_assertion(app, creds.assertion, token_endpoints)
            return app, ACR_CERT
        if creds.secret is not None:
            self._check_secret(app, creds.secret)
            return app, ACR_SECRET
        if not app.is_public:
            raise OAuthError(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: "
                "'client_assertion' or 'client_secret'.",
            )
        return app, ACR_PUBLIC

    def _check_secret(self, app: AppRegistration, secret: str) -> None:
        if app.is_public:
            raise OAuthError(
                401,
                "invalid_client",
                700025,
                "Client is public so neither 'client_assertion' nor "
                "'client_secret' should be presented.",
            )
        expected = self.secrets.get(app.client_id, "")
        if not expected or not hmac.compare_digest(secret.encode(), expected.encode()):
            raise OAuthError(
                401,
                "invalid_client",
                7000215,
                f"Invalid client secret provided. Ensure the secret being sent "
                f"in the request is the client secret value, not the client "
                f"secret ID, for a secret added to app '{app.client_id}'.",
            )

    def _check_assertion(
        self, app: AppRegistration, assertion: str, token_endpoints: list[str]
    ) -> None:
        cert = self._certificate_for(app, assertion)
        try:
            claims = jwt.decode(
                assertion,
                cert.public_key(),  # type: ignore[arg-type]
                algorithms=["RS256", "PS256"],
                audience=token_endpoints,
                issuer=app.client_id,
                options={"require": ["exp", "aud", "iss", "sub"]},
            )
        except jwt.InvalidTokenError as exc:
            raise OAuthError(
                401,
                "invalid_client",
                700027,
                f"Client assertion failed signature validation: {exc}.",
            ) from exc
        if claims.get("sub") != app.client_id:
            raise OAuthError(
                401, "invalid_client", 700021, "Client assertion 'sub' must be the client id."
            )
        self._check_replay(claims)

    def _certificate_for(self, app: AppRegistration, assertion: str) -> x509.Certificate:
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.InvalidTokenError as exc:
            raise OAuthError(401, "invalid_client", 50027, "Malformed client assertion.") from exc
        # msal keeps base64 padding on thumbprints; RFC 7515 says unpadded. Accept both.
        wanted = {str(header[h]).rstrip("=") for h in ("x5t#S256", "x5t", "kid") if h in header}
        with self._lock:
            certs = list(self.certificates.get(app.client_id, []))
        for cert in certs:
            sha1 = hashes.SHA1()  # noqa: S303 - x5t names a certificate; it secures nothing
            thumbprints = {
                b64url(cert.fingerprint(hashes.SHA256())),
                b64url(cert.fingerprint(sha1)),
            }
            if wanted & thumbprints:
                return cert
        raise OAuthError(
            401,
            "invalid_client",
            700027,
            "Client assertion contains an invalid signature: the key was not "
            f"found for app '{app.client_id}'.",
        )

    def _check_replay(self, claims: dict) -> None:
        jti = claims.get("jti")
        if not jti:
            return
        now = time.time()
        with self._lock:
            self._seen_jti = {k: exp for k, exp in self._seen_jti.items() if exp > now}
            if jti in self._seen_jti:
                raise OAuthError(
                    401,
                    "invalid_client",
                    700023,
                    "Client assertion has been used before (jti replay).",
                )
            self._seen_jti[jti] = float(claims["exp"])
