"""Communication Services phone numbers, through ``azure-communication-phonenumbers``.

Buying a number is a search (Communication Services reserves one) then a purchase, each a
long-running operation of up to minutes. The SDK's pollers wait in a thread of the process that
started them; a Functions instance can be recycled at any moment, so we never wait: each call
moves an operation on by **one** status request (``_OneStep``) and hands back the SDK's
continuation token, which the caller stores. Any instance, after any restart, resumes from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lib.net.budget import unavailable
from lib.net.retry import retry_after_seconds
from lib.web.errors import AppError

TIMEOUTS = {"connection_timeout": 5, "read_timeout": 20, "retry_total": 1}
SMS_CAPABLE = ("inbound+outbound", "outbound")


@dataclass(frozen=True)
class Step:
    """Where an operation stands after one status request."""

    status: str  # notStarted | running | succeeded | failed
    token: str  # the continuation token to resume from next time
    result: Any = None  # the search result once a search succeeded
    problem: str | None = None


def _one_step(lro_options: dict[str, str] | None, endpoint: str) -> Any:
    from azure.core.polling.base_polling import LROBasePolling, OperationFailed

    class _OneStep(LROBasePolling):
        """One status GET per run (plus the final GET once it succeeded), never a wait loop."""

        def _poll(self) -> None:
            if not self.finished():
                self.update_status()
            if not self.finished():
                return
            if self.status().lower() in ("failed", "canceled", "cancelled"):
                raise OperationFailed("Operation failed or canceled")
            final = self._operation.get_final_get_url(self._pipeline_response)
            if final:
                self._pipeline_response = self.request_status(final)

    return _OneStep(0, lro_options=lro_options, path_format_arguments={"endpoint": endpoint})


class PhoneNumbers:
    def __init__(self, connection_string: str | None) -> None:
        self._connection_string = connection_string

    @property
    def configured(self) -> bool:
        return bool(self._connection_string)

    def _client(self) -> Any:
        if not self._connection_string:
            raise AppError("SMS-NOT-CONFIGURED")
        from azure.communication.phonenumbers import PhoneNumbersClient

        return PhoneNumbersClient.from_connection_string(self._connection_string, **TIMEOUTS)

    @property
    def _endpoint(self) -> str:
        from lib.settings import acs_parts

        return acs_parts(self._connection_string or "")[0]

    # --- reads ------------------------------------------------------------------------------
    def owned(self) -> list[dict[str, Any]]:
        """The resource's numbers that can text."""
        with _translated():
            found = list(self._client().list_purchased_phone_numbers())
        return [_number_view(n) for n in found if n.capabilities.sms in SMS_CAPABLE]

    def owns(self, number: str) -> bool:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            with _translated():
                found = self._client().get_purchased_phone_number(number)
        except ResourceNotFoundError:
            return False
        return found.capabilities.sms in SMS_CAPABLE

    # --- the order: search, then purchase ---------------------------------------------------
    def start_search(self, country: str, area_code: str | None) -> Step:
        from azure.communication.phonenumbers import (
            PhoneNumberAssignmentType,
            PhoneNumberCapabilities,
            PhoneNumberCapabilityType,
            PhoneNumberType,
        )

        capabilities = PhoneNumberCapabilities(
            calling=PhoneNumberCapabilityType.NONE, sms=PhoneNumberCapabilityType.INBOUND_OUTBOUND
        )
        options = {"area_code": area_code} if area_code else {}
        with _translated():
            poller = self._client().begin_search_available_phone_numbers(
                country,
                PhoneNumberType.TOLL_FREE,
                PhoneNumberAssignmentType.APPLICATION,
                capabilities,
                quantity=1,
                polling=self._search_polling(),
                **options,
            )
        return _step(poller)

    def step_search(self, token: str) -> Step:
        with _translated():
            poller = self._client().begin_search_available_phone_numbers(
                "US",
                "tollFree",
                "application",
                None,
                continuation_token=token,
                polling=self._search_polling(),
            )
        return _step(poller)

    def start_purchase(self, search_id: str) -> Step:
        with _translated():
            poller = self._client().begin_purchase_phone_numbers(
                search_id, agree_to_not_resell=True, polling=_one_step(None, self._endpoint)
            )
        return _step(poller, wants_result=False)

    def step_purchase(self, token: str) -> Step:
        with _translated():
            poller = self._client().begin_purchase_phone_numbers(
                "", continuation_token=token, polling=_one_step(None, self._endpoint)
            )
        return _step(poller, wants_result=False)

    def _search_polling(self) -> Any:
        return _one_step({"final-state-via": "location"}, self._endpoint)


def _step(poller: Any, wants_result: bool = True) -> Step:
    from azure.core.exceptions import HttpResponseError

    method = poller.polling_method()
    token = poller.continuation_token()
    try:
        poller.wait()  # the one status request, in the poller's own thread
    except HttpResponseError as exc:  # OperationFailed and bad answers alike
        return Step("failed", token, problem=_reason(exc))
    status = method.status().lower()
    if status == "succeeded" and wants_result:
        return Step(status, token, poller.result())
    return Step(status, token)


def _reason(exc: Exception) -> str:
    error = getattr(exc, "error", None)
    message = getattr(error, "message", None) or getattr(exc, "message", None) or ""
    return str(message)[:200] or type(exc).__name__


def _number_view(found: Any) -> dict[str, Any]:
    return {
        "number": found.phone_number,
        "number_type": found.phone_number_type,
        "country": found.country_code,
        "sms": found.capabilities.sms,
    }


class _translated:
    """Communication Services failures as the catalogue's codes (no stack traces, no keys)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        if exc is None:
            return False
        from azure.core.exceptions import (
            ClientAuthenticationError,
            HttpResponseError,
            ResourceNotFoundError,
            ServiceRequestError,
            ServiceResponseError,
        )

        if isinstance(exc, ClientAuthenticationError):
            raise AppError(
                "SMS-PROVIDER-REFUSED", "Communication Services refused the key."
            ) from None
        if isinstance(exc, ResourceNotFoundError):
            return False  # the caller decides what a missing number means
        if isinstance(exc, ServiceRequestError | ServiceResponseError):
            raise unavailable("sms", "phone numbers: no answer") from None
        if isinstance(exc, HttpResponseError):
            status = exc.status_code or 0
            if status == 429 or status >= 500:
                after = (
                    retry_after_seconds(exc.response.headers.get("Retry-After"))
                    if exc.response
                    else None
                )
                raise unavailable("sms", f"phone numbers: {status}", retry_after=after) from None
            raise AppError("SMS-PROVIDER-REFUSED", _reason(exc)) from None
        return False
