"""Which answers mean "the server is not serving" (NotServing: a launch says the EHR is not
answering) and which describe configuration (their DISC-* / TOKEN-* code stays)."""

from __future__ import annotations

import pytest

from lib.net.http import HttpResponse, NotServing
from lib.smart.client_auth import ClientSecretBasic
from lib.smart.discovery import fetch_discovery
from lib.smart.tokens import exchange_code
from lib.web.errors import AppError

BASE = "https://ehr.example.org/fhir"


class Answers:
    """An OutboundHttp stand-in answering every call with one status."""

    def __init__(self, status: int) -> None:
        self.status = status

    def get(self, url, **_):
        return HttpResponse(self.status, {}, b'{"error": "x"}', url)

    def post_form(self, url, form, **_):
        return HttpResponse(self.status, {}, b'{"error": "invalid_grant"}', url)


def redeem(status: int) -> AppError:
    with pytest.raises(AppError) as caught:
        exchange_code(Answers(status), f"{BASE}/token", "c", "https://app/cb", "v",
                      ClientSecretBasic("id", "secret"))  # fmt: skip
    return caught.value


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
def test_a_token_endpoint_not_serving(status):
    err = redeem(status)
    assert isinstance(err, NotServing) and err.code == "TOKEN-EXCHANGE-FAILED"


@pytest.mark.parametrize("status", [400, 401, 403])
def test_a_token_endpoint_refusing_is_a_sign_in_failure(status):
    err = redeem(status)
    assert not isinstance(err, NotServing) and err.code == "TOKEN-EXCHANGE-FAILED"


@pytest.mark.parametrize(("status", "down"), [(503, True), (429, True), (500, True), (403, False)])
def test_discovery_not_serving_keeps_its_code(status, down):
    with pytest.raises(AppError) as caught:
        fetch_discovery(Answers(status), BASE)
    assert caught.value.code == "DISC-HTTP-STATUS"  # what validation reports
    assert isinstance(caught.value, NotServing) is down  # what a launch makes of it
