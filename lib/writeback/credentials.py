"""How write-back calls authenticate: SMART Backend Services, or Epic's service account.

Backend Services: a client_credentials token for the endpoint's backend client, with a JWT
assertion signed by our key (RS384 or ES384, the JWKS we publish), at the token endpoint that
validation pinned. Tokens are cached per endpoint (token URL, client, scopes) until a minute
before they expire (lib/smart/tokens.py `BackendTokenCache`); a 401 from the EHR forgets the
token, and the adapter asks once more with a new one.

Service account (Epic's telehealth web service): Basic with the account's password from its app
setting, plus `Epic-Client-ID` (and `Epic-User-ID` / `Epic-User-IDType` when configured).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from lib.endpoints.client import key_for
from lib.endpoints.models import BackendServicesAuth, Endpoint, ServiceAccountAuth
from lib.endpoints.writeback_check import backend_scopes
from lib.net.http import NotServing, OutboundHttp, host_of
from lib.settings import setting_value
from lib.smart.client_auth import PrivateKeyJwt
from lib.smart.keys import KeySet
from lib.smart.tokens import BackendTokenCache
from lib.web.errors import AppError
from lib.writeback.errors import WriteFailure


@dataclass
class Credentials:
    http: OutboundHttp
    keys: KeySet | None
    tokens: BackendTokenCache

    def headers(self, endpoint: Endpoint) -> dict[str, str]:
        """The auth headers of one write-back call to `endpoint`."""
        auth = endpoint.writeback.auth
        if isinstance(auth, ServiceAccountAuth):  # Epic names the calling app by its client id
            return {"Epic-Client-ID": endpoint.client_id, **_basic(auth)}
        if isinstance(auth, BackendServicesAuth):  # the token names the backend app
            return {"Authorization": f"Bearer {self._token(endpoint, auth)}"}
        raise WriteFailure.permanent("WB-NOT-CONFIGURED", "writeback.auth is not set")

    def forget(self, endpoint: Endpoint) -> None:
        """The EHR refused our token: the next `headers` asks for a new one."""
        auth = endpoint.writeback.auth
        if isinstance(auth, BackendServicesAuth):
            token_url, scopes = self._where(endpoint, auth)
            self.tokens.invalidate(token_url, auth.client_id, scopes)

    def _where(self, endpoint: Endpoint, auth: BackendServicesAuth) -> tuple[str, list[str]]:
        validation = endpoint.validation
        if validation is None or not validation.token_endpoint:
            raise WriteFailure.permanent("WB-NOT-CONFIGURED", "the endpoint was never validated")
        return validation.token_endpoint, backend_scopes(auth, validation.permission_v2)

    def _token(self, endpoint: Endpoint, auth: BackendServicesAuth) -> str:
        token_url, scopes = self._where(endpoint, auth)
        key = key_for(self.keys, auth.alg)
        if key is None:
            raise WriteFailure.permanent("WB-NOT-CONFIGURED", f"no {auth.alg} signing key")
        pinned = endpoint.validation.pinned_hosts if endpoint.validation else None
        hosts = pinned.all() if pinned else {host_of(token_url)}
        try:
            token = self.tokens.get(
                self.http,
                token_url,
                scopes,
                PrivateKeyJwt(auth.client_id, key),
                allowed_hosts=hosts,
            )
        except NotServing as err:
            raise WriteFailure.transient("WB-EHR-UNAVAILABLE", f"token: {err.detail}") from None
        except AppError as err:
            raise WriteFailure.permanent("WB-TOKEN-REFUSED", f"token: {err.detail}") from None
        return token.access_token


def _basic(auth: ServiceAccountAuth) -> dict[str, str]:
    password = setting_value(auth.secret_setting)
    if not password:
        raise WriteFailure.permanent("WB-NOT-CONFIGURED", f"{auth.secret_setting} is not set")
    pair = base64.b64encode(f"{auth.username}:{password}".encode()).decode("ascii")
    headers = {"Authorization": f"Basic {pair}"}
    if auth.user_id:
        headers["Epic-User-ID"] = auth.user_id
    if auth.user_id_type:
        headers["Epic-User-IDType"] = auth.user_id_type
    return headers
