"""The config API's SMS handlers (F12), routed by lib/admin/api.ROUTES under config/sms.

Kept apart from api.py so that file stays one screen of routes; like the other handlers they
import the SMS rooms on first use (the route table is imported at every cold start).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from lib.admin.calls import if_match
from lib.web.errors import AppError
from lib.web.http import Response

if TYPE_CHECKING:
    from lib.admin.calls import Call
    from lib.sms.config import SmsConfig

# While an order runs, how long a poller should wait before asking again.
ORDER_POLL_SECONDS = "5"
ORDER_ID = r"^[0-9a-f]{16}$"  # secrets.token_hex(8), as lib/sms/config.py makes them


def _sms(call: Call) -> SmsConfig:
    return call.svc.sms


def _with_etag(data: dict[str, Any], etag: str | None, status: int = 200) -> Response:
    return Response.json(data, status, {"ETag": etag} if etag else None)


def _if_match(call: Call) -> str | None:
    return if_match(call.request)


def get_consent(call: Call) -> Response:
    found = _sms(call).consent()
    if found is None:
        return Response.json({"sends_on_behalf_of_organization": None, "attendees_consented": None})
    return _with_etag(found.public(), found.etag)


def put_consent(call: Call) -> Response:
    found = _sms(call).grant(call.body, _if_match(call), call.principal.actor)
    return _with_etag(found.public(), found.etag)


def list_numbers(call: Call) -> Response:
    items = _sms(call).numbers()
    return Response.json({"items": items, "count": len(items)})


def link_number(call: Call) -> Response:
    import re

    from lib.sms.models import E164

    number = call.param("number")
    if not re.fullmatch(E164, number):
        raise AppError("REQ-NOT-FOUND", "A number is E.164: + and up to 15 digits.")
    row = _sms(call).link(number, call.body, _if_match(call), call.principal.actor)
    return _with_etag(row.public(), row.etag)


def _order_answer(order: Any, status: int = 200) -> Response:
    from lib.sms.models import OrderState

    headers = {"Location": f"/api/config/sms/number-orders/{order.id}"}
    if order.state in (OrderState.SEARCHING, OrderState.PURCHASING):
        headers["Retry-After"] = ORDER_POLL_SECONDS
    return Response.json(order.public(), status, headers)


def create_order(call: Call) -> Response:
    return _order_answer(_sms(call).order(call.body, call.principal.actor), 202)


def get_order(call: Call) -> Response:
    order_id = call.param("order")
    if not re.fullmatch(ORDER_ID, order_id):
        raise AppError("SMS-ORDER-NOT-FOUND")
    return _order_answer(_sms(call).poll(order_id))


def get_settings(call: Call) -> Response:
    sms = _sms(call)
    endpoint_id = call.param("id")
    found = sms.settings(endpoint_id)
    return _with_etag(found.public(sms.number_for(endpoint_id)), found.etag)


def patch_settings(call: Call) -> Response:
    sms = _sms(call)
    endpoint_id = call.param("id")
    found = sms.update_settings(endpoint_id, call.body, _if_match(call), call.principal.actor)
    return _with_etag(found.public(sms.number_for(endpoint_id)), found.etag)


def _environment(call: Call) -> Any:
    from lib.endpoints.models import Environment

    try:
        return Environment(call.param("environment"))
    except ValueError:
        raise AppError("REQ-NOT-FOUND", "The environment is test or production.") from None


def get_certificate(call: Call) -> Response:
    found = _sms(call).certificate(_environment(call))
    if found is None:
        raise AppError("SMS-CERTIFICATE-NOT-FOUND")
    return _with_etag(found.public(), found.etag)


def put_certificate(call: Call) -> Response:
    environment = _environment(call)
    found = _sms(call).upload_certificate(
        environment, call.body.certificate, _if_match(call), call.principal.actor
    )
    return _with_etag(found.public(), found.etag)
