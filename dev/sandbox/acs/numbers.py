"""The phone numbers API (``azure-communication-phonenumbers``): search and purchase as
long-running operations, and the resource's purchased numbers.

A search (``POST /availablePhoneNumbers/countries/{cc}/:search``) and a purchase
(``POST /availablePhoneNumbers/:purchase``) answer 202 with ``Operation-Location`` (polled at
``GET /phoneNumbers/operations/{id}``: notStarted -> running -> succeeded | failed) and, for a
search, ``Location`` (the search result). Each takes ``ACS_OPERATION_SECONDS`` (default 3 s;
minutes in Azure). Numbers come from 555-01xx, reserved for fiction: toll-free +1 833 555 01xx.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

COST = {"amount": 2.0, "currencyCode": "USD", "billingFrequency": "monthly"}
SEARCH_LIFETIME_S = 16 * 60  # a search holds its numbers this long, as the service does
SEED_NUMBER = "+18335550100"  # purchased from the start, so the demo needs no purchase


def now_iso(at: float | None = None) -> str:
    at = time.time() if at is None else at
    return dt.datetime.fromtimestamp(at, dt.UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Operation:
    id: str
    kind: str  # search | purchase
    created: float
    ready_at: float
    resource_location: str | None
    fail: str | None = None  # an error message when the operation is to fail

    def status(self, now: float) -> str:
        if now < self.created + 0.2:
            return "notStarted"
        if now < self.ready_at:
            return "running"
        return "failed" if self.fail else "succeeded"

    def to_json(self, now: float) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "operationType": self.kind,
            "status": self.status(now),
            "createdDateTime": now_iso(self.created),
            "lastActionDateTime": now_iso(min(now, self.ready_at)),
            "resourceLocation": self.resource_location,
        }
        if self.fail and data["status"] == "failed":
            data["error"] = {"code": "OperationFailed", "message": self.fail}
        return data


@dataclass
class Search:
    id: str
    numbers: list[str]
    request: dict[str, Any]
    expires: float
    purchased: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "searchId": self.id,
            "phoneNumbers": self.numbers,
            "phoneNumberType": self.request.get("phoneNumberType", "tollFree"),
            "assignmentType": self.request.get("assignmentType", "application"),
            "capabilities": self.request.get("capabilities")
            or {"calling": "none", "sms": "inbound+outbound"},
            "cost": COST,
            "searchExpiresBy": now_iso(self.expires),
        }


@dataclass
class NumberStore:
    seconds: float = 3.0
    operations: dict[str, Operation] = field(default_factory=dict)
    searches: dict[str, Search] = field(default_factory=dict)
    purchased: dict[str, dict[str, Any]] = field(default_factory=dict)
    fail_next: str | None = None  # the next operation fails with this message
    _next: int = 1
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._own(SEED_NUMBER, {"phoneNumberType": "tollFree"}, time.time())

    def search(
        self, country: str, request: dict[str, Any], results_url: str
    ) -> tuple[Operation, Search]:
        quantity = int(request.get("quantity") or 1)
        now = time.time()
        with self._lock:
            numbers = [self._fresh_number() for _ in range(quantity)]
            found = Search(
                str(uuid.uuid4()),
                numbers,
                {**request, "countryCode": country},
                now + SEARCH_LIFETIME_S,
            )
            self.searches[found.id] = found
            op = self._operation("search", now, results_url.format(search_id=found.id))
        return op, found

    def purchase(self, search_id: str) -> Operation | str:
        """The purchase operation, or why it cannot start (400)."""
        now = time.time()
        with self._lock:
            found = self.searches.get(search_id)
            if found is None:
                return "Unknown searchId."
            if found.purchased:
                return "This search was already purchased."
            if now > found.expires:
                return "The search has expired; search again."
            found.purchased = True
            op = self._operation("purchase", now, None)
        if not op.fail:
            threading.Timer(
                max(0.0, op.ready_at - now), lambda: self._complete(found, op.ready_at)
            ).start()
        return op

    def operation(self, op_id: str) -> Operation | None:
        return self.operations.get(op_id)

    def numbers(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.purchased.values())

    def owns(self, number: str) -> bool:
        return number in self.purchased

    def _operation(self, kind: str, now: float, location: str | None) -> Operation:
        op = Operation(
            f"{kind}_{uuid.uuid4()}", kind, now, now + self.seconds, location, self.fail_next
        )
        self.fail_next = None
        self.operations[op.id] = op
        return op

    def _complete(self, found: Search, at: float) -> None:
        with self._lock:
            for number in found.numbers:
                self._own(number, found.request, at)

    def _own(self, number: str, request: dict[str, Any], at: float) -> None:
        self.purchased[number] = {
            "id": number.lstrip("+"),
            "phoneNumber": number,
            "countryCode": request.get("countryCode", "US"),
            "phoneNumberType": request.get("phoneNumberType", "tollFree"),
            "capabilities": request.get("capabilities")
            or {"calling": "none", "sms": "inbound+outbound"},
            "assignmentType": request.get("assignmentType", "application"),
            "purchaseDate": now_iso(at),
            "cost": COST,
        }

    def _fresh_number(self) -> str:
        while True:
            number = f"+1833555{100 + self._next:04d}"
            self._next += 1
            taken = number in self.purchased or any(
                number in s.numbers for s in self.searches.values()
            )
            if not taken:
                return number

    def reset(self) -> None:
        with self._lock:
            self.fail_next = None
