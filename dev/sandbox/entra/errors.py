"""Entra-shaped OAuth errors: `error`, an AADSTS code in `error_codes` and the description.

The AADSTS numbers follow Entra's public error catalogue as closely as we know it; clients
should branch on `error`, never on the number.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from dev.sandbox.oauth import OAuthProblem, Problem


class OAuthError(Exception):
    def __init__(self, status: int, error: str, code: int, description: str) -> None:
        super().__init__(f"{error}: AADSTS{code}")
        self.status = status
        self.error = error
        self.code = code
        self.description = description

    def body(self) -> dict[str, Any]:
        trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        return {
            "error": self.error,
            "error_description": (
                f"AADSTS{self.code}: {self.description} Trace ID: {trace} "
                f"Correlation ID: {correlation} Timestamp: {stamp}"
            ),
            "error_codes": [self.code],
            "timestamp": stamp,
            "trace_id": trace,
            "correlation_id": correlation,
        }


def unknown_tenant(tenant: str) -> OAuthError:
    return OAuthError(
        400,
        "invalid_tenant",
        90002,
        f"Tenant '{tenant}' not found. Check to make sure you have the correct "
        "tenant ID and are signing into the correct cloud.",
    )


# How Entra words the refusals of the shared OAuth core (dev/sandbox/oauth.py, which gives the
# RFC 6749 error): the AADSTS number and sentence.
WORDING: dict[Problem, tuple[int, str]] = {
    Problem.CHALLENGE_MISSING: (9002325, "Proof Key for Code Exchange (S256) is required."),
    Problem.METHOD_NOT_S256: (501491, "Invalid code_challenge_method: use S256."),
    Problem.CODE_UNKNOWN: (70000, "The provided value for the 'code' parameter is not valid."),
    Problem.CODE_USED: (
        54005,
        "OAuth2 Authorization code was already redeemed, please retry with a "
        "new valid code or use an existing refresh token.",
    ),
    Problem.CODE_EXPIRED: (70008, "The provided authorization code or refresh token has expired."),
    Problem.CODE_OTHER_CLIENT: (70000, "The code was issued to a different client."),
    Problem.REDIRECT_MISMATCH: (
        50148,
        "The redirect_uri does not match the one used to obtain the code.",
    ),
    Problem.VERIFIER_MISSING: (
        900144,
        "The request body must contain the following parameter: 'code_verifier'.",
    ),
    Problem.VERIFIER_MISMATCH: (
        501481,
        "The Code_Verifier does not match the code_challenge supplied in "
        "the authorization request.",
    ),
}


def from_problem(exc: OAuthProblem) -> OAuthError:
    number, description = WORDING[exc.problem]
    return OAuthError(400, exc.problem.error, number, description)
