"""How the connector authenticates to an endpoint's token URL, from the endpoint's settings."""

from __future__ import annotations

from lib.admin.models import ClientSecretBasic, EndpointRecord
from lib.settings import setting_value
from lib.smart.client_auth import ClientAuth
from lib.smart.keys import KeySet, SigningKey
from lib.web.errors import AppError


def key_for(keys: KeySet | None, alg: str) -> SigningKey | None:
    """Our signing key for an algorithm (RS384 or ES384), or None."""
    return next((k for k in keys.keys if k.alg == alg), None) if keys else None


def client_auth_for(record: EndpointRecord, keys: KeySet | None) -> ClientAuth:
    from lib.smart import client_auth

    auth = record.client_auth
    if isinstance(auth, ClientSecretBasic):
        secret = setting_value(auth.secret_setting)
        if not secret:
            raise AppError("CFG-SECRET-SETTING-MISSING", f"{auth.secret_setting} is not set.")
        return client_auth.ClientSecretBasic(record.client_id, secret)
    key = key_for(keys, auth.alg)
    if key is None:
        raise AppError("CFG-SIGNING-KEY-MISSING", f"No {auth.alg} key is configured.")
    return client_auth.PrivateKeyJwt(record.client_id, key)
