"""Config API authentication against the sandbox's Entra ID: each 401 and 403 case, precisely."""

from __future__ import annotations

import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from dev.stack import AUDIENCE, TENANT, settings_env
from lib.admin.auth import AdminAuth
from lib.admin.auth import AppRole as Role
from lib.net.http import OutboundHttp
from lib.net.jwks import JwksCache
from lib.settings import load_settings
from lib.web.errors import AppError
from lib.web.http import Headers, Request

OTHER_TENANT = "0b9e2f4c-1111-4222-8333-444455556666"


def make_auth(sandbox, min_refresh: float = 30) -> AdminAuth:
    settings = load_settings(settings_env(ENTRA_AUTHORITY_HOST=sandbox.entra.authority_host))
    http = OutboundHttp(local_mode=True)
    return AdminAuth(settings, JwksCache(http, min_refresh_seconds=min_refresh))


@pytest.fixture
def auth(sandbox, sandbox_trust):
    return make_auth(sandbox)


def call(token: str | None) -> Request:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return Request("GET", "http://x/api/config/endpoints", Headers(headers))


def claims(sandbox, **changes) -> dict:
    now = int(time.time())
    base = {
        "iss": sandbox.entra.issuer,
        "aud": AUDIENCE,
        "tid": TENANT,
        "oid": "00000000-0000-4000-8000-0000000000a1",
        "sub": "pairwise-subject-of-the-user",
        "scp": "Connector.Access",  # a delegated token (a user's), unless a test says otherwise
        "roles": ["Connector.Admin"],
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "ver": "2.0",
    }
    base.update(changes)
    return base


def code_of(auth: AdminAuth, request: Request, role: Role = Role.READER) -> str:
    with pytest.raises(AppError) as exc:
        auth.require(request, role)
    return exc.value.code


def test_admin_token_from_sandbox_is_accepted(auth, sandbox):
    token = sandbox.entra.mint(roles=["Connector.Admin"], user="admin")
    principal = auth.require(call(token), Role.ADMIN)
    assert principal.tid == TENANT and principal.has(Role.READER) and principal.oid


def test_no_token_is_401_with_challenge(auth):
    with pytest.raises(AppError) as exc:
        auth.require(call(None), Role.READER)
    assert exc.value.code == "AUTH-MISSING-TOKEN" and exc.value.status == 401
    assert exc.value.headers["WWW-Authenticate"].startswith("Bearer")


def test_not_a_jwt(auth):
    assert code_of(auth, call("not.a.jwt")) == "AUTH-INVALID-TOKEN"


def test_expired(auth, sandbox):
    token = sandbox.entra.keys.sign(claims(sandbox, exp=int(time.time()) - 3600))
    assert code_of(auth, call(token)) == "AUTH-EXPIRED-TOKEN"


def test_not_yet_valid(auth, sandbox):
    token = sandbox.entra.keys.sign(claims(sandbox, nbf=int(time.time()) + 3600))
    assert code_of(auth, call(token)) == "AUTH-INVALID-TOKEN"


def test_wrong_audience(auth, sandbox):
    token = sandbox.entra.mint(roles=["Connector.Admin"], user="admin", audience="api://other")
    assert code_of(auth, call(token)) == "AUTH-WRONG-AUDIENCE"


def test_wrong_tenant_is_403(auth, sandbox):
    iss = sandbox.entra.issuer.replace(TENANT, OTHER_TENANT)
    token = sandbox.entra.keys.sign(claims(sandbox, iss=iss, tid=OTHER_TENANT))
    with pytest.raises(AppError) as exc:
        auth.require(call(token), Role.READER)
    assert exc.value.code == "AUTH-WRONG-TENANT" and exc.value.status == 403


def test_bad_signature(auth, sandbox):
    forger = rsa.generate_private_key(65537, 2048)
    kid = sandbox.entra.keys.active.kid
    token = jwt.encode(claims(sandbox), forger, algorithm="RS256", headers={"kid": kid})
    assert code_of(auth, call(token)) == "AUTH-INVALID-TOKEN"


def test_unsigned_token_refused(auth, sandbox):
    token = jwt.encode(claims(sandbox), None, algorithm="none")
    assert code_of(auth, call(token)) == "AUTH-INVALID-TOKEN"


@pytest.mark.parametrize(
    ("roles", "needed", "allowed"),
    [
        (["Connector.Reader"], Role.ADMIN, False),
        (["Connector.Approver"], Role.ADMIN, False),
        (["Connector.Reader"], Role.APPROVER, False),
        (["Connector.Admin"], Role.APPROVER, False),
        (["Connector.Admin"], Role.READER, True),
        (["Connector.Approver"], Role.READER, True),
        ([], Role.READER, False),
        (["Something.Else"], Role.READER, False),
    ],
)
def test_roles(auth, sandbox, roles, needed, allowed):
    token = sandbox.entra.keys.sign(claims(sandbox, roles=roles))
    if allowed:
        principal = auth.require(call(token), needed)
        assert principal.has(needed) and principal.roles == frozenset(roles)
        assert principal.oid == claims(sandbox)["oid"]
    else:
        with pytest.raises(AppError) as exc:
            auth.require(call(token), needed)
        assert exc.value.code == "AUTH-FORBIDDEN-ROLE" and exc.value.status == 403


def test_rotated_key_is_fetched_once(sandbox, sandbox_trust, clean_sandbox):
    auth = make_auth(sandbox, min_refresh=0)  # the rate limit is tested below; here: the refresh
    auth.require(call(sandbox.entra.mint(roles=["Connector.Reader"], user="reader")), Role.READER)
    sandbox.entra.rotate_key()
    before = len(sandbox.journal.entries(stand_in="entra"))
    token = sandbox.entra.mint(roles=["Connector.Reader"], user="reader")
    auth.require(call(token), Role.READER)
    auth.require(call(token), Role.READER)
    fetched = sandbox.journal.entries(stand_in="entra")[before:]
    # the keys once; the tenant's openid-configuration (its jwks_uri) stays cached
    assert len(fetched) == 1 and "keys" in fetched[0].path


def test_unknown_kid_does_not_refetch_within_the_interval(sandbox, sandbox_trust):
    auth = make_auth(sandbox)
    token = sandbox.entra.mint(roles=["Connector.Reader"], user="reader")
    auth.require(call(token), Role.READER)  # keys fetched now
    before = len(sandbox.journal.entries(stand_in="entra"))
    key = sandbox.entra.keys.active.private_key
    for _ in range(5):
        forged = jwt.encode(claims(sandbox), key, algorithm="RS256", headers={"kid": "unknown"})
        assert code_of(auth, call(forged)) == "AUTH-INVALID-TOKEN"
    assert len(sandbox.journal.entries(stand_in="entra")) == before


def test_an_id_token_is_not_an_access_token(auth, sandbox):
    token = sandbox.entra.keys.sign(claims(sandbox, nonce="abc", aud=AUDIENCE))
    assert code_of(auth, call(token)) == "AUTH-INVALID-TOKEN"


# --- what makes an Entra access token for this API (PROTOCOLS: Entra ID tokens) --------------
CLIENT_ID = "5f0c4a1e-7a1b-4c2d-8e3f-00000000c0e1"  # ENTRA_CLIENT_ID in settings_env


@pytest.mark.parametrize("aud", [AUDIENCE, CLIENT_ID, [CLIENT_ID, "other"]])
def test_the_app_id_uri_and_the_client_id_are_both_our_audience(auth, sandbox, aud):
    token = sandbox.entra.keys.sign(claims(sandbox, aud=aud))
    assert auth.require(call(token), Role.ADMIN).has(Role.ADMIN)


def test_a_delegated_token_needs_the_apis_scope(auth, sandbox):
    for scp in ("User.Read", "", "Connector.Accessible"):
        token = sandbox.entra.keys.sign(claims(sandbox, scp=scp))
        assert code_of(auth, call(token)) == "AUTH-INVALID-TOKEN"
    good = sandbox.entra.keys.sign(claims(sandbox, scp="User.Read Connector.Access"))
    assert auth.require(call(good), Role.ADMIN)


def test_an_app_only_token_is_accepted_by_its_roles(auth, sandbox):
    minted = sandbox.entra.mint(roles=["Connector.Reader"])  # no user: client credentials
    principal = auth.require(call(minted), Role.READER)
    assert principal.oid and not principal.has(Role.ADMIN)
    sp = "00000000-0000-4000-8000-0000000000b2"
    no_idtyp = {"scp": None, "oid": sp, "sub": sp, "roles": ["Connector.Admin"]}
    token = sandbox.entra.keys.sign({k: v for k, v in claims(sandbox, **no_idtyp).items() if v})
    assert auth.require(call(token), Role.ADMIN).oid == sp


def test_an_id_token_with_roles_and_our_client_id_is_refused(auth, sandbox):
    """It carries aud = our client id and the user's roles, no nonce: still not an access
    token (no scp, and not the service principal's own token)."""
    lookalike = {k: v for k, v in claims(sandbox, aud=CLIENT_ID).items() if k != "scp"}
    assert code_of(auth, call(sandbox.entra.keys.sign(lookalike))) == "AUTH-INVALID-TOKEN"


def test_an_api_with_its_own_registration(sandbox, sandbox_trust):
    """Two registrations: the API (ENTRA_API_CLIENT_ID) and the connector's client app."""
    api = "0a9f0c11-2222-4333-8444-000000000a91"
    settings = load_settings(
        settings_env(ENTRA_AUTHORITY_HOST=sandbox.entra.authority_host, ENTRA_API_CLIENT_ID=api)
    )
    two = AdminAuth(settings, JwksCache(OutboundHttp(local_mode=True)))
    assert two.require(call(sandbox.entra.keys.sign(claims(sandbox, aud=api))), Role.ADMIN)
    assert two.require(call(sandbox.entra.keys.sign(claims(sandbox, aud=AUDIENCE))), Role.ADMIN)
    wrong = sandbox.entra.keys.sign(claims(sandbox, aud=CLIENT_ID))  # the client app's id
    assert code_of(two, call(wrong)) == "AUTH-WRONG-AUDIENCE"
