"""Entra-shaped OAuth errors: `error`, an AADSTS code in `error_codes` and the description.

The AADSTS numbers follow Entra's public error catalogue as closely as we know it; clients
should branch on `error`, never on the number.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any


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
