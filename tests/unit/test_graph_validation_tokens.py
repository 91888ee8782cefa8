"""Graph's validationTokens (lib/notifications/validation.py): each decision the validator makes,
over the real JWKS cache fed by a fake issuer (no network), and the webhook's use of it."""

from __future__ import annotations

import json
import logging
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from dev.sandbox.entra.keys import KeySet, generate_key
from dev.sandbox.entra.tokens import graph_validation_claims
from lib.net.http import HttpResponse, NotServing
from lib.net.jwks import JwksCache
from lib.notifications.validation import GRAPH_PUBLISHER, ValidationTokens
from lib.notifications.webhook import NotificationReceiver
from lib.web.errors import AppError
from tests.helpers import Clock
from tests.unit.test_graph_notifications import (
    PRIVACY,
    Published,
    Subscriptions,
    cert,  # noqa: F401 - the fixture
    notification,
    post,
)

TENANT = "7d3a1c2e-0000-4000-8000-00000000e11a"
CLIENT = "5f0c4a1e-7a1b-4c2d-8e3f-00000000c0e1"
AUTHORITY = "https://login.example.test"
ISSUER = f"{AUTHORITY}/{TENANT}/v2.0"
JWKS_URI = f"{AUTHORITY}/{TENANT}/discovery/v2.0/keys"


class Issuer:
    """What OutboundHttp gives the JWKS cache: the tenant's openid-configuration and keys."""

    def __init__(self, keys: KeySet) -> None:
        self.keys = keys
        self.down = False
        self.fetches: list[str] = []

    def get(self, url, headers=None, allowed_hosts=None) -> HttpResponse:
        self.fetches.append(url)
        if self.down:
            raise NotServing("DISC-UNREACHABLE", "keys not answering")
        if url.endswith("/openid-configuration"):
            doc = {"issuer": ISSUER, "jwks_uri": JWKS_URI}
        else:
            doc = self.keys.jwks(ISSUER)
        return HttpResponse(
            200, {"Content-Type": "application/json"}, json.dumps(doc).encode(), url
        )


@pytest.fixture
def keys() -> KeySet:
    return KeySet(generate_key())


@pytest.fixture
def issuer(keys) -> Issuer:
    return Issuer(keys)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def validator(issuer, clock) -> ValidationTokens:
    jwks = JwksCache(issuer, min_refresh_seconds=30, clock=clock)  # type: ignore[arg-type]
    return ValidationTokens(jwks, issuer=ISSUER, tenant_id=TENANT, client_id=CLIENT)


def token(keys: KeySet, version: str = "2.0", lifetime: int = 3600, **changes) -> str:
    claims = graph_validation_claims(ISSUER, TENANT, CLIENT, int(time.time()), lifetime, version)
    claims.update(changes)
    return keys.sign({k: v for k, v in claims.items() if v is not None})


def test_graphs_token_proves_the_collection_in_either_version(validator, keys):
    assert validator.trusted([token(keys)])
    assert validator.trusted([token(keys, version="1.0")])
    claims = jwt.decode(token(keys), options={"verify_signature": False})
    assert claims["azp"] == GRAPH_PUBLISHER and claims["iss"] == ISSUER


@pytest.mark.parametrize("tokens", [None, [], "a-token", [3], ["not-a-jwt"]])
def test_no_token_no_trust(validator, tokens):
    assert not validator.trusted(tokens)


def test_without_our_client_id_nothing_is_trusted(issuer, keys):
    jwks = JwksCache(issuer)  # type: ignore[arg-type]
    assert not ValidationTokens(jwks, issuer=ISSUER, tenant_id=TENANT, client_id=None).trusted(
        [token(keys)]
    )


@pytest.mark.parametrize(
    "version, changes",
    [
        ("2.0", {"exp": int(time.time()) - 3600}),  # expired, beyond the leeway
        ("2.0", {"nbf": int(time.time()) + 3600}),  # not yet
        ("2.0", {"aud": "another-app"}),
        ("2.0", {"iss": f"{AUTHORITY}/another-tenant/v2.0"}),
        ("2.0", {"iss": f"https://sts.windows.net/{TENANT}/"}),  # a v1 issuer on a v2 token
        ("2.0", {"azp": CLIENT}),  # another app asked for it: not Graph's publisher
        ("2.0", {"azp": None, "appid": GRAPH_PUBLISHER}),  # v2 names the publisher in azp
        ("1.0", {"appid": CLIENT}),
        ("1.0", {"appid": None, "azp": GRAPH_PUBLISHER}),  # v1 names it in appid
        ("1.0", {"iss": "https://sts.windows.net/another-tenant/"}),
    ],
)
def test_each_claim_is_checked(validator, keys, version, changes):
    assert not validator.trusted([token(keys, version=version, **changes)])


def test_a_forged_signature_under_a_real_kid_is_refused(validator, keys):
    claims = jwt.decode(token(keys), options={"verify_signature": False})
    kid = keys.active.kid
    forged = jwt.encode(claims, generate_key().private_key, "RS256", headers={"kid": kid})
    assert not validator.trusted([forged])


def test_alg_none_and_hs256_are_refused_unread(validator, keys, issuer):
    claims = jwt.decode(token(keys), options={"verify_signature": False})
    kid = keys.active.kid
    public_pem = keys.active.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    unsigned = jwt.encode(claims, None, "none", headers={"kid": kid})
    # The classic confusion: HMAC keyed with the public key someone could fetch.
    import hashlib
    import hmac

    header = jwt.utils.base64url_encode(json.dumps({"alg": "HS256", "kid": kid}).encode())
    body = jwt.utils.base64url_encode(json.dumps(claims).encode())
    mac = hmac.new(public_pem, header + b"." + body, hashlib.sha256).digest()
    hs256 = b".".join([header, body, jwt.utils.base64url_encode(mac)]).decode()
    assert not validator.trusted([unsigned]) and not validator.trusted([hs256])
    assert issuer.fetches == []  # refused before any key was looked up


def test_an_unknown_kid_refreshes_the_keys_once_for_the_rotation(validator, keys, issuer, clock):
    assert validator.trusted([token(keys)])
    fetched = len(issuer.fetches)
    keys.rotate()  # Entra's daily rotation: the new key signs
    clock.now += 31
    assert validator.trusted([token(keys)])
    assert len(issuer.fetches) == fetched + 1  # one JWKS refresh
    keys.rotate()
    assert not validator.trusted([token(keys)])  # refreshed just now: not again so soon
    assert len(issuer.fetches) == fetched + 1


def test_keys_unavailable_is_a_503_never_trust(validator, keys, issuer):
    issuer.down = True
    with pytest.raises(AppError) as err:
        validator.trusted([token(keys)])
    assert err.value.code == "SRV-MICROSOFT-UNAVAILABLE" and err.value.status == 503
    assert "Retry-After" in err.value.headers


def test_a_token_that_passed_is_remembered_briefly(issuer, keys, clock):
    jwks = JwksCache(issuer, ttl_seconds=0)  # type: ignore[arg-type]  # every look: a fetch
    validator = ValidationTokens(jwks, issuer=ISSUER, tenant_id=TENANT, client_id=CLIENT,
                                 clock=clock)  # fmt: skip
    good = token(keys)
    assert validator.trusted([good])
    fetched = len(issuer.fetches)
    assert validator.trusted([good])  # a retry of the same batch: no keys looked at
    assert len(issuer.fetches) == fetched
    clock.now += 301  # forgotten: verified again
    assert validator.trusted([good]) and len(issuer.fetches) > fetched


def test_one_good_token_is_enough_and_the_others_are_logged_without_content(
    validator, keys, caplog
):
    bad = token(keys, aud="another-app")
    with caplog.at_level(logging.WARNING, logger="lib.notifications.validation"):
        assert validator.trusted([bad, token(keys)])
    record = next(r for r in caplog.records if r.message == "graph validation tokens failed")
    assert record.reasons == ["audience"] and record.passed == 1  # type: ignore[attr-defined]
    assert all(bad not in str(r.__dict__) for r in caplog.records)


# -- the webhook ---------------------------------------------------------------------------------
def webhook(cert_, validator, published) -> NotificationReceiver:
    return NotificationReceiver(Subscriptions(cert_), published, None, PRIVACY, TENANT, validator)  # type: ignore[arg-type]


def test_a_rich_collection_without_a_valid_token_is_refused_whole(cert, validator, keys):  # noqa: F811
    published = Published()
    hook = webhook(cert, validator, published)
    for tokens in (None, [token(keys, azp=CLIENT)]):
        body = {"value": [notification(cert), notification(cert)]}
        if tokens:
            body["validationTokens"] = tokens
        with pytest.raises(AppError) as err:
            hook.receive(_request(body))
        assert err.value.code == "GRAPH-NOTIFICATION-REFUSED"
    assert not published
    body = {"value": [notification(cert)], "validationTokens": [token(keys)]}
    assert hook.receive(_request(body)).status == 202 and len(published) == 1


def test_notifications_without_resource_data_need_no_token(cert, validator, issuer):  # noqa: F811
    lifecycle = notification(cert, lifecycleEvent="missed")
    del lifecycle["encryptedContent"]
    published = Published()

    class Tasks(list):
        def send(self, task, delay_seconds=None) -> None:
            self.append(task)

    hook = NotificationReceiver(Subscriptions(cert), published, Tasks(), PRIVACY, TENANT, validator)  # type: ignore[arg-type]
    assert post(hook, lifecycle).status == 202
    assert issuer.fetches == []  # no keys looked at


def _request(body: dict):
    from tests.unit.test_graph_notifications import request

    return request(body=json.dumps(body).encode())


def test_warmup_fetches_the_keys_so_the_first_notification_fetches_nothing(validator, keys, issuer):
    validator.ready()
    fetched = len(issuer.fetches)
    assert fetched == 2  # the issuer's openid-configuration, then its keys
    assert validator.trusted([token(keys)])
    assert len(issuer.fetches) == fetched
