"""A failed write, by what should happen next (the worker decides on this, nothing else).

- `later`: the EHR asked us to come back (429 / 503 with Retry-After): the job goes back on the
  queue with that delay; the function never sleeps.
- `transient`: no answer, a timeout, a 5xx, conflicts that did not settle: the queue retries it
  (visibilityTimeout), and after host.json's maxDequeueCount it is dead-lettered.
- `permanent`: the EHR said no in a way a retry cannot change (400, 401 after a fresh token,
  403, 404, 422), or there is nothing to write to: dead-lettered at once, with its reason.

`code` is from the error catalogue (WB-*); `detail` is safe to store and log: an HTTP status and
the EHR's OperationOutcome issue code, never a response body.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["later", "transient", "permanent"]


@dataclass
class WriteFailure(Exception):
    kind: Kind
    code: str
    detail: str = ""
    retry_after: float | None = None
    http_status: int | None = None

    def __post_init__(self) -> None:
        super().__init__(f"{self.code}: {self.detail}")

    @classmethod
    def later(cls, seconds: float, detail: str, status: int | None = None) -> WriteFailure:
        return cls("later", "WB-EHR-UNAVAILABLE", detail, seconds, status)

    @classmethod
    def transient(cls, code: str, detail: str, status: int | None = None) -> WriteFailure:
        return cls("transient", code, detail, None, status)

    @classmethod
    def permanent(cls, code: str, detail: str, status: int | None = None) -> WriteFailure:
        return cls("permanent", code, detail, None, status)
