"""Discovery documents: lenient parsing, the metadata fallback, validation, pinning, cache."""

from __future__ import annotations

import pytest

from lib.smart.discovery import (
    OAUTH_URIS,
    Discovery,
    DiscoveryCache,
    PinnedHosts,
    fhir_version_label,
    oauth_uris_from_metadata,
    parse_smart_configuration,
    validate,
)

EPIC_BASE = "https://ehr.example.org/interconnect-fhir-oauth/api/FHIR/R4"
EPIC_CONFIG = {
    "issuer": "https://ehr.example.org/interconnect-fhir-oauth/oauth2",
    "jwks_uri": "https://ehr.example.org/interconnect-fhir-oauth/api/epic/2019/Security/Open/PublicKeys/530005/OIDC",
    "authorization_endpoint": "https://ehr.example.org/interconnect-fhir-oauth/oauth2/authorize",
    "token_endpoint": "https://ehr.example.org/interconnect-fhir-oauth/oauth2/token",
    "token_endpoint_auth_methods_supported": [
        "client_secret_post",
        "client_secret_basic",
        "private_key_jwt",
    ],
    "scopes_supported": ["openid", "fhirUser", "launch"],
    "response_types_supported": ["code"],
    "capabilities": [
        "launch-ehr",
        "client-confidential-symmetric",
        "sso-openid-connect",
        "context-banner",
        "permission-v2",
    ],
    "code_challenge_methods_supported": ["S256"],
    "epic_custom": {"kept": True},
}
CERNER_BASE = "https://fhir-ehr-code.cerner.com/r4/ec2458f2-1e24-41c8-b71b-0e701af7583d"
CERNER_CONFIG = {
    "authorization_endpoint": "https://authorization.cerner.com/tenants/ec2458f2/protocols/oauth2/profiles/smart-v1/personas/provider/authorize",
    "token_endpoint": "https://authorization.cerner.com/tenants/ec2458f2/protocols/oauth2/profiles/smart-v1/token",
    "token_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_basic"],
    "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
    "issuer": "https://authorization.cerner.com/",
    "jwks_uri": "https://authorization.cerner.com/jwk",
    "capabilities": ["launch-ehr", "sso-openid-connect", "context-passthrough-banner"],
    "code_challenge_methods_supported": ["S256"],
}


def discovery(config: dict, *, base: str = EPIC_BASE, version: str = "R4", **kw) -> Discovery:
    return Discovery(
        base_url=base,
        config=parse_smart_configuration(config, base),
        source=kw.pop("source", "smart-configuration"),
        fhir_version=version,
        fhir_version_raw=kw.pop("raw", "4.0.1"),
        **kw,
    )


def codes(problems) -> list[str]:
    return [p.code for p in problems]


# --- parsing -------------------------------------------------------------------------------


def test_parse_keeps_extra_fields():
    config = parse_smart_configuration(EPIC_CONFIG, EPIC_BASE)
    assert config.model_extra == {"epic_custom": {"kept": True}}
    assert config.token_endpoint == EPIC_CONFIG["token_endpoint"]


def test_relative_urls_resolve_against_the_base_without_losing_the_last_segment():
    config = parse_smart_configuration(
        {
            "token_endpoint": "oauth2/token",
            "authorization_endpoint": "/oauth2/authorize",
            "jwks_uri": "//keys.example.org/jwks",
            "issuer": "https://ehr.example.org/oauth2",
        },
        EPIC_BASE,
    )
    assert config.token_endpoint == EPIC_BASE + "/oauth2/token"
    assert config.authorization_endpoint == "https://ehr.example.org/oauth2/authorize"
    assert config.jwks_uri == "https://keys.example.org/jwks"


def test_parse_is_lenient_about_shapes():
    config = parse_smart_configuration(
        {
            "capabilities": "launch-ehr sso-openid-connect",
            "scopes_supported": ["openid", 7],
            "token_endpoint": 42,
            "code_challenge_methods_supported": None,
        },
        EPIC_BASE,
    )
    assert config.capabilities == ["launch-ehr", "sso-openid-connect"]
    assert config.scopes_supported == ["openid"]
    assert config.token_endpoint is None
    assert config.code_challenge_methods_supported == []


@pytest.mark.parametrize("declared", ["context-banner", "context-passthrough-banner"])
def test_both_banner_capability_names_are_accepted(declared):
    capabilities = discovery({"capabilities": [declared]}).capabilities
    assert {"context-banner", "context-passthrough-banner"} <= capabilities


@pytest.mark.parametrize(
    ("raw", "label"),
    [
        ("4.0.1", "R4"),
        ("4.0.0", "R4"),
        ("1.0.2", "DSTU2"),
        ("3.0.2", "STU3"),
        ("4.3.0", "R4B"),
        ("5.0.0", "R5"),
        ("9.9", "unknown"),
        (None, "unknown"),
        (4, "unknown"),
    ],
)
def test_fhir_version_label(raw, label):
    assert fhir_version_label(raw) == label


def test_oauth_uris_extension_of_older_servers():
    capability = {
        "resourceType": "CapabilityStatement",
        "fhirVersion": "4.0.1",
        "rest": [
            {
                "security": {
                    "extension": [
                        {
                            "url": OAUTH_URIS,
                            "extension": [
                                {
                                    "url": "authorize",
                                    "valueUri": "https://ehr.example.org/oauth2/authorize",
                                },
                                {"url": "token", "valueUri": "/oauth2/token"},
                                {"url": "unknown", "valueUri": "https://x/"},
                            ],
                        },
                        {
                            "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/capabilities",
                            "valueCode": "launch-ehr",
                        },
                    ]
                }
            }
        ],
    }
    config = oauth_uris_from_metadata(capability, EPIC_BASE)
    assert config.authorization_endpoint == "https://ehr.example.org/oauth2/authorize"
    assert config.token_endpoint == "https://ehr.example.org/oauth2/token"
    assert config.capabilities == ["launch-ehr"]


# --- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["client_secret_basic", "private_key_jwt"])
def test_epic_and_cerner_configs_are_usable(method):
    assert validate(discovery(EPIC_CONFIG), method) == []
    assert validate(discovery(CERNER_CONFIG, base=CERNER_BASE), method, signing_alg="ES384") == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"token_endpoint": None}, "DISC-MISSING-TOKEN-ENDPOINT"),
        ({"authorization_endpoint": None}, "DISC-MISSING-AUTHORIZE-ENDPOINT"),
        ({"code_challenge_methods_supported": []}, "DISC-NO-S256"),
        ({"code_challenge_methods_supported": ["S256", "plain"]}, "DISC-PLAIN-PKCE"),
        ({"token_endpoint_auth_methods_supported": ["client_secret_post"]}, "DISC-NO-CLIENT-AUTH"),
        ({"capabilities": ["launch-ehr"], "scopes_supported": ["launch"]}, "DISC-NO-OPENID"),
        ({"token_endpoint": "http://ehr.example.org/oauth2/token"}, "DISC-ADDRESS-NOT-ALLOWED"),
    ],
)
def test_each_problem_is_named(change, expected):
    problems = validate(discovery({**EPIC_CONFIG, **change}), "client_secret_basic")
    assert codes(problems) == [expected]
    assert all(p.message for p in problems)


def test_plain_only_gives_both_pkce_problems():
    config = {**EPIC_CONFIG, "code_challenge_methods_supported": ["plain"]}
    assert codes(validate(discovery(config), "private_key_jwt")) == [
        "DISC-NO-S256",
        "DISC-PLAIN-PKCE",
    ]


def test_absent_auth_methods_mean_client_secret_basic_only():
    config = {k: v for k, v in EPIC_CONFIG.items() if k != "token_endpoint_auth_methods_supported"}
    assert validate(discovery(config), "client_secret_basic") == []
    assert codes(validate(discovery(config), "private_key_jwt")) == ["DISC-NO-CLIENT-AUTH"]


def test_signing_algorithm_the_server_refuses():
    config = {**CERNER_CONFIG, "token_endpoint_auth_signing_alg_values_supported": ["RS384"]}
    problems = validate(discovery(config), "private_key_jwt", signing_alg="ES384")
    assert codes(problems) == ["DISC-NO-CLIENT-AUTH"]


def test_openid_is_lenient():
    # `openid` in scopes_supported will do, without the capability or issuer / jwks_uri
    config = {**EPIC_CONFIG, "capabilities": ["launch-ehr"], "issuer": None, "jwks_uri": None}
    assert validate(discovery(config), "client_secret_basic") == []
    bare = {**config, "scopes_supported": None}
    assert codes(validate(discovery(bare), "client_secret_basic")) == ["DISC-NO-OPENID"]
    assert validate(discovery(bare), "client_secret_basic", needs_openid=False) == []


def test_standalone_sign_in_may_skip_authorize_and_https_in_local_mode():
    config = {
        **EPIC_CONFIG,
        "authorization_endpoint": None,
        "token_endpoint": "http://127.0.0.1:9000/token",
    }
    options = {"needs_authorize": False, "require_https": False}
    assert validate(discovery(config), "client_secret_basic", **options) == []


@pytest.mark.parametrize(
    ("version", "raw", "problem", "fragment"),
    [
        ("DSTU2", "1.0.2", None, "DSTU2 (1.0.2)"),
        ("unknown", None, "/metadata answered HTTP 401", "HTTP 401"),
    ],
)
def test_fhir_version_must_be_r4(version, raw, problem, fragment):
    found = discovery(EPIC_CONFIG, version=version, raw=raw, metadata_problem=problem)
    problems = validate(found, "client_secret_basic")
    assert codes(problems) == ["DISC-FHIR-VERSION"]
    assert fragment in problems[0].message
    assert validate(found, "client_secret_basic", needs_r4=False) == []


def test_metadata_only_server_cannot_prove_s256():
    config = {
        "authorization_endpoint": "https://e/a",
        "token_endpoint": "https://e/t",
        "scopes_supported": ["openid"],
    }
    problems = validate(discovery(config, source="metadata"), "client_secret_basic")
    assert codes(problems) == ["DISC-NO-S256"]
    assert "no smart-configuration" in problems[0].message


def test_discovery_carries_what_the_endpoint_keeps():
    found = discovery(CERNER_CONFIG, base=CERNER_BASE)
    assert validate(found, "private_key_jwt") == []
    assert found.fhir_version == "R4"
    assert found.permission_v2 is False
    assert "context-banner" in found.capabilities
    assert found.hosts == PinnedHosts(
        authorize="authorization.cerner.com",
        token="authorization.cerner.com",
        issuer="authorization.cerner.com",
        jwks="authorization.cerner.com",
    )
    assert found.hosts.all() == {"authorization.cerner.com"}
    assert discovery(EPIC_CONFIG).permission_v2 is True


def test_hosts_pin_keeps_non_default_ports():
    config = {**EPIC_CONFIG, "token_endpoint": "https://127.0.0.1:8443/epic/oauth2/token"}
    assert discovery(config).hosts.token == "127.0.0.1:8443"


def test_pinned_hosts_compare_as_a_whole():
    """What a launch checks (EndpointClient.discovery): any host moving, appearing or vanishing."""
    pinned = discovery(EPIC_CONFIG).hosts
    assert pinned == discovery(dict(EPIC_CONFIG)).hosts
    moved = {**EPIC_CONFIG, "token_endpoint": "https://elsewhere.example.com/token"}
    assert pinned != discovery(moved).hosts
    no_issuer = {**EPIC_CONFIG, "issuer": None}
    assert pinned != discovery(no_issuer).hosts


# --- cache ---------------------------------------------------------------------------------


def test_cache_expires_after_ttl_and_keys_by_base_and_headers():
    now = [0.0]
    cache = DiscoveryCache(ttl_seconds=3600, clock=lambda: now[0])
    found = discovery(EPIC_CONFIG)
    key = DiscoveryCache.key(EPIC_BASE + "/")
    cache.put(key, found)
    assert cache.get(DiscoveryCache.key(EPIC_BASE)) is found  # trailing slash: same base
    assert cache.get(DiscoveryCache.key(EPIC_BASE, {"Epic-Client-ID": "x"})) is None
    now[0] = 3599
    assert cache.get(key) is found
    now[0] = 3601
    assert cache.get(key) is None
