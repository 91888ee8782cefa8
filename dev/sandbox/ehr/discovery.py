"""The discovery documents of a SMART on FHIR server: ``.well-known/smart-configuration``
(SMART App Launch 2.x), the ``metadata`` CapabilityStatement (with the ``oauth-uris`` security
extension older clients read) and the issuer's ``openid-configuration``."""

from __future__ import annotations

from typing import Any

from dev.sandbox.ehr import scopes as scope_tools

OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
AUTH_METHODS = ["client_secret_basic", "private_key_jwt"]
SIGNING_ALGS = ["RS384", "ES384"]
BASE_CAPABILITIES = [
    "launch-ehr",
    "launch-standalone",
    "authorize-post",
    "client-confidential-symmetric",
    "client-confidential-asymmetric",
    "context-ehr-patient",
    "context-ehr-encounter",
    "context-banner",
    "context-style",
    "sso-openid-connect",
    "permission-patient",
    "permission-user",
    "permission-v1",
]
FHIR_VERSIONS = {"R4": "4.0.1", "DSTU2": "1.0.2"}


def smart_configuration(
    *,
    issuer: str,
    jwks_uri: str,
    authorization_endpoint: str,
    token_endpoint: str,
    permission_v2: bool,
    iss_parameter: bool,
) -> dict[str, Any]:
    capabilities = list(BASE_CAPABILITIES)
    if permission_v2:
        capabilities.append("permission-v2")
    doc: dict[str, Any] = {
        "issuer": issuer,
        "jwks_uri": jwks_uri,
        "authorization_endpoint": authorization_endpoint,
        "token_endpoint": token_endpoint,
        "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "token_endpoint_auth_signing_alg_values_supported": list(SIGNING_ALGS),
        "grant_types_supported": ["authorization_code", "client_credentials"],
        "scopes_supported": scope_tools.supported(permission_v2),
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "capabilities": capabilities,
    }
    if iss_parameter:  # RFC 9207
        doc["authorization_response_iss_parameter_supported"] = True
    return doc


def capability_statement(
    smart: dict[str, Any], base: str, version: str, software: str, date: str
) -> dict[str, Any]:
    """The CapabilityStatement (R4) or Conformance (DSTU2) of ``base``; its oauth-uris follow
    the (possibly edited) smart-configuration."""
    uris = [
        {"url": name, "valueUri": smart[field]}
        for name, field in (("authorize", "authorization_endpoint"), ("token", "token_endpoint"))
        if smart.get(field)
    ]
    system = (
        "http://terminology.hl7.org/CodeSystem/restful-security-service"
        if version == "R4"
        else "http://hl7.org/fhir/restful-security-service"
    )
    security: dict[str, Any] = {
        "service": [{"coding": [{"system": system, "code": "SMART-on-FHIR"}]}],
        "description": "OAuth2 using SMART-on-FHIR profile (see http://docs.smarthealthit.org)",
    }
    if uris:
        security["extension"] = [{"url": OAUTH_URIS, "extension": uris}]
    resources = [
        {
            "type": name,
            "interaction": [{"code": "read"}]
            + ([{"code": "search-type"}] if name == "Appointment" else []),
            **(
                {
                    "searchParam": [
                        {"name": p, "type": t}
                        for p, t in (
                            ("date", "date"),
                            ("patient", "reference"),
                            ("practitioner", "reference"),
                            ("location", "reference"),
                        )
                    ]
                }
                if name == "Appointment"
                else {}
            ),
        }
        for name in scope_tools.RESOURCES
    ]
    return {
        "resourceType": "CapabilityStatement" if version == "R4" else "Conformance",
        "status": "active",
        "date": date,
        "publisher": "EVC connector local sandbox",
        "kind": "instance",
        "software": {"name": software, "version": "sandbox"},
        "implementation": {"description": software, "url": base},
        "fhirVersion": FHIR_VERSIONS[version],
        "format": ["json"],
        "rest": [{"mode": "server", "security": security, "resource": resources}],
    }


def openid_configuration(
    *, issuer: str, jwks_uri: str, authorization_endpoint: str, token_endpoint: str
) -> dict[str, Any]:
    return {
        "issuer": issuer,
        "authorization_endpoint": authorization_endpoint,
        "token_endpoint": token_endpoint,
        "jwks_uri": jwks_uri,
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "fhirUser", "profile"],
        "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "token_endpoint_auth_signing_alg_values_supported": list(SIGNING_ALGS),
        "claims_supported": [
            "iss",
            "sub",
            "aud",
            "exp",
            "iat",
            "nonce",
            "fhirUser",
            "preferred_username",
        ],
        "code_challenge_methods_supported": ["S256"],
    }
