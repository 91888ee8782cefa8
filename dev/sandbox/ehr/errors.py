"""OAuth 2.0 errors as SMART servers send them: ``error`` + ``error_description`` (+ Cerner's
``error_uri``), in a JSON body at the token endpoint or in the redirect after authorize."""

from __future__ import annotations


class SmartError(Exception):
    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status
