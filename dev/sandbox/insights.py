"""Application Insights' ingestion endpoint at the root of its own origin, as the regional
``https://<region>.in.applicationinsights.azure.com/`` serves it: ``POST /v2.1/track`` takes a
JSON array (or gzip of one) of telemetry items, the Azure Monitor exporter's "Breeze" protocol,
and answers ``itemsReceived`` / ``itemsAccepted``, naming each item it refuses by index.

Connection string: ``InstrumentationKey=<INSTRUMENTATION_KEY>;IngestionEndpoint=<origin>/``
(see ``connection_string``). What arrives is kept for tests and for the privacy suite's scan:
``items`` (every accepted item), ``operations()`` (items by trace), ``/_sandbox/insights/items``.
"""

from __future__ import annotations

import gzip
import json
import threading
from typing import Any, ClassVar

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from dev.sandbox.standin import StandIn, json_response

INSTRUMENTATION_KEY = "00000000-0000-4000-8000-0000000a1b2c"  # local only
MAX_BODY = 64 * 1024 * 1024  # ingestion refuses more (413)
REQUIRED = ("name", "time", "iKey", "data")


class InsightsStandIn(StandIn):
    name = "insights"
    title = "Application Insights ingestion (what the app's telemetry exports)"
    serves_root: ClassVar[bool] = True  # /v2.1/track at the root, as in Azure

    def __init__(self, state: Any) -> None:
        self.items: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        super().__init__(state)

    def routes(self) -> list[Rule]:
        return [Rule("/v2.1/track", endpoint=self.track, methods=["POST"])]

    def control_routes(self) -> list[Rule]:
        return [Rule("/items", endpoint=self.list_items, methods=["GET"])]

    @property
    def connection_string(self) -> str:
        return f"InstrumentationKey={INSTRUMENTATION_KEY};IngestionEndpoint={self.origin}/"

    def describe(self) -> dict[str, str]:
        return {self.name: f"{self.origin}/v2.1/track"}

    def on_reset(self) -> None:
        with self._lock:
            self.items.clear()

    # -- the protocol ---------------------------------------------------------------------------
    def track(self, request: Request) -> Response:
        raw = request.get_data()
        if len(raw) > MAX_BODY:
            return json_response({"itemsReceived": 0, "itemsAccepted": 0, "errors": []}, 413)
        if request.headers.get("Content-Encoding", "").lower() == "gzip":
            raw = gzip.decompress(raw)
        try:
            batch = json.loads(raw)
        except ValueError:
            return json_response({"error": "the body is not JSON"}, 400)
        batch = batch if isinstance(batch, list) else [batch]
        errors, accepted = [], []
        for index, item in enumerate(batch):
            problem = _problem(item)
            if problem:
                errors.append({"index": index, "statusCode": 400, "message": problem})
            else:
                accepted.append(item)
        with self._lock:
            self.items.extend(accepted)
        answer = {"itemsReceived": len(batch), "itemsAccepted": len(accepted), "errors": errors}
        return json_response(answer, 206 if errors and accepted else 400 if errors else 200)

    def list_items(self, request: Request) -> Response:
        return json_response({"items": self.snapshot()})

    # -- for tests ------------------------------------------------------------------------------
    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.items)

    def operations(self) -> dict[str, list[dict[str, Any]]]:
        """Accepted items by operation (trace) id, in arrival order."""
        found: dict[str, list[dict[str, Any]]] = {}
        for item in self.snapshot():
            found.setdefault(item.get("tags", {}).get("ai.operation.id", ""), []).append(item)
        return found


def _problem(item: Any) -> str | None:
    if not isinstance(item, dict):
        return "an item is a JSON object"
    missing = [k for k in REQUIRED if k not in item]
    if missing:
        return f"missing {', '.join(missing)}"
    if item["iKey"] != INSTRUMENTATION_KEY:
        return "unknown instrumentation key"
    return None
