"""Sending one text through `azure-communication-sms`, with what happened said plainly.

The outcome decides what the ledger may do next (lib/sms/sending.py):
- `accepted`: the service took it (202 and the recipient's line successful).
- `refused`: the service answered and will not send it (the recipient's line failed, e.g.
  "sender blocked for given recipient" after a STOP; `blocked` says which).
- `retry`: the service answered without taking it (429, 5xx) or the request never left (no
  connection): sending again cannot make a second text.
- `unknown`: the request may have reached the service and no answer came (a timeout, a reset
  after sending): it may have been sent, so it is never sent again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lib.web.http import whole_number

TIMEOUTS = {"connection_timeout": 5, "read_timeout": 15, "retry_total": 0}  # retries are ours
BLOCKED = "blocked for given recipient"


@dataclass(frozen=True)
class SendResult:
    outcome: str  # accepted | refused | retry | unknown
    message_id: str | None = None
    reason: str = ""
    retry_after: int | None = None

    @property
    def blocked(self) -> bool:
        return self.outcome == "refused" and BLOCKED in self.reason.lower()


class SmsSender:
    def __init__(self, connection_string: str | None, read_timeout: float = 15) -> None:
        self._connection_string = connection_string
        self._read_timeout = read_timeout
        self._client: Any = None

    @property
    def configured(self) -> bool:
        return bool(self._connection_string)

    def _sms(self) -> Any:
        if self._client is None:
            from azure.communication.sms import SmsClient

            options = {**TIMEOUTS, "read_timeout": self._read_timeout}
            self._client = SmsClient.from_connection_string(self._connection_string, **options)
        return self._client

    def send(self, sender: str, to: str, text: str, tag: str) -> SendResult:
        from azure.core.exceptions import (
            HttpResponseError,
            ServiceRequestError,
            ServiceResponseError,
        )

        try:
            [line] = self._sms().send(
                from_=sender, to=to, message=text, enable_delivery_report=True, tag=tag
            )
        except ServiceRequestError as exc:  # never reached the service
            return SendResult("retry", reason=type(exc).__name__)
        except ServiceResponseError as exc:  # sent; the answer was lost
            return SendResult("unknown", reason=type(exc).__name__)
        except HttpResponseError as exc:
            status = exc.status_code or 0
            if status == 429 or status >= 500:
                return SendResult("retry", reason=f"HTTP {status}", retry_after=_retry_after(exc))
            return SendResult("refused", reason=f"HTTP {status}: {_message(exc)}")
        if line.successful:
            return SendResult("accepted", message_id=line.message_id)
        return SendResult(
            "refused",
            message_id=line.message_id,
            reason=f"{line.http_status_code}: {line.error_message or ''}"[:200],
        )


def _retry_after(exc: Any) -> int | None:
    value = exc.response.headers.get("Retry-After") if exc.response is not None else None
    return whole_number(value)


def _message(exc: Any) -> str:
    return str(getattr(getattr(exc, "error", None), "message", "") or exc.reason or "")[:200]
