"""Control endpoints under ``/_sandbox/`` (never journaled) and the index page at ``/``.

GET    /_sandbox/health               {"ok": true}
GET    /_sandbox/ca.pem               the CA certificate, to trust it in a browser
GET    /_sandbox/requests             journal; filters: stand_in, method, path (glob), since
POST   /_sandbox/reset                clear journal + faults, restore latency
GET    /_sandbox/config               {"latency": s, "latency_per_stand_in": {...}}
POST   /_sandbox/config               same shape; keys given are changed
GET    /_sandbox/faults               pending faults
POST   /_sandbox/faults               add one: {"path": glob, "status": 503, "count": 2, ...};
                                      {"family": "ehr-token", "kind": "hang", "seconds": 20,
                                      "duration": 5}: see `Fault` in state.py
DELETE /_sandbox/faults               drop all
POST   /_sandbox/connector            where our app runs: {"redirect_uri", "jwks_url",
                                      "launch_base", "epic_secret", "cerner_secret"}; kept
                                      across resets (``Sandbox.configure_connector``)
*      /_sandbox/{stand-in}/...       that stand-in's own controls (``StandIn.control_routes``)
"""

from __future__ import annotations

import dataclasses
import html
from pathlib import Path
from typing import Any

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from dev.sandbox.standin import html_response, json_response, read_json
from dev.sandbox.state import Fault, SandboxState

_FAULT_FIELDS = {f.name for f in dataclasses.fields(Fault)} - {"added_at"}


class ControlPanel:
    def __init__(self, state: SandboxState, ca_file: Path) -> None:
        self.state = state
        self.ca_file = ca_file
        self.url_map = Map(
            [
                Rule("/", endpoint=self.index, methods=["GET"]),
                Rule("/_sandbox/", endpoint=self.index, methods=["GET"]),
                Rule("/_sandbox/health", endpoint=self.health, methods=["GET"]),
                Rule("/_sandbox/ca.pem", endpoint=self.ca_pem, methods=["GET"]),
                Rule("/_sandbox/requests", endpoint=self.requests, methods=["GET"]),
                Rule("/_sandbox/reset", endpoint=self.reset, methods=["POST"]),
                Rule("/_sandbox/config", endpoint=self.get_config, methods=["GET"]),
                Rule("/_sandbox/config", endpoint=self.set_config, methods=["POST"]),
                Rule("/_sandbox/faults", endpoint=self.list_faults, methods=["GET"]),
                Rule("/_sandbox/faults", endpoint=self.add_fault, methods=["POST"]),
                Rule("/_sandbox/faults", endpoint=self.clear_faults, methods=["DELETE"]),
                Rule("/_sandbox/connector", endpoint=self.connector, methods=["POST"]),
            ],
            strict_slashes=False,
        )

    def dispatch(self, request: Request) -> Response:
        prefix, _, rest = request.path.removeprefix("/_sandbox/").partition("/")
        stand_in = self.state.stand_ins.get(prefix)
        if request.path.startswith("/_sandbox/") and stand_in is not None:
            return stand_in.dispatch_control(request, "/" + rest)
        adapter = self.url_map.bind_to_environ(request.environ)
        try:
            handler, values = adapter.match()
            return handler(request, **values)
        except HTTPException as exc:
            return exc.get_response(request.environ)

    def health(self, request: Request) -> Response:
        return json_response({"ok": True, "stand_ins": sorted(self.state.stand_ins)})

    def ca_pem(self, request: Request) -> Response:
        return Response(self.ca_file.read_bytes(), content_type="application/x-pem-file")

    def requests(self, request: Request) -> Response:
        args = request.args
        since = args.get("since", type=float)
        entries = self.state.journal.entries(
            stand_in=args.get("stand_in"),
            method=args.get("method"),
            path=args.get("path"),
            since=since,
        )
        return json_response({"requests": [e.to_json() for e in entries]})

    def reset(self, request: Request) -> Response:
        names = read_json(request).get("stand_ins")
        self.state.reset(names)
        return json_response({"ok": True})

    def get_config(self, request: Request) -> Response:
        return json_response(self._config())

    def set_config(self, request: Request) -> Response:
        body = read_json(request)
        try:
            self.state.set_latency(body.get("latency"), body.get("latency_per_stand_in"))
        except (TypeError, ValueError, AttributeError):
            return json_response({"error": "latency values must be numbers (seconds)"}, 400)
        return json_response(self._config())

    def _config(self) -> dict[str, Any]:
        latency = self.state.latency
        return {"latency": latency.default, "latency_per_stand_in": latency.per_stand_in}

    def list_faults(self, request: Request) -> Response:
        return json_response({"faults": [f.to_json() for f in self.state.faults.pending()]})

    def add_fault(self, request: Request) -> Response:
        body = read_json(request)
        unknown = set(body) - _FAULT_FIELDS
        if not ({"path", "family"} & set(body)) or unknown:
            return json_response(
                {
                    "error": f"need 'path' or 'family'; unknown keys: {sorted(unknown)}",
                    "fields": sorted(_FAULT_FIELDS),
                },
                400,
            )
        try:
            fault = self.state.faults.add(**body)
        except TypeError as exc:
            return json_response({"error": str(exc)}, 400)
        return json_response(fault.to_json(), 201)

    def clear_faults(self, request: Request) -> Response:
        self.state.faults.reset()
        return json_response({"ok": True})

    def connector(self, request: Request) -> Response:
        body = read_json(request)
        if not body or not all(isinstance(v, str | list) for v in body.values()):
            return json_response({"error": "give where the connector runs, e.g. redirect_uri"}, 400)
        try:
            self.state.configure_connector(**body)
        except (TypeError, ValueError) as exc:
            return json_response({"error": str(exc)}, 400)
        return json_response({"ok": True})

    def index(self, request: Request) -> Response:
        rows = []
        for name, stand_in in sorted(self.state.stand_ins.items()):
            links = "".join(
                f"<li>{html.escape(label)}: <code>{html.escape(url)}</code></li>"
                for label, url in stand_in.describe().items()
            )
            rows.append(f"<h2>{html.escape(stand_in.title or name)}</h2><ul>{links}</ul>")
        body = (
            "<!doctype html><html><head><meta charset='utf-8'><title>EVC sandbox</title></head>"
            "<body style='font-family:system-ui;max-width:52rem;margin:2rem auto'>"
            "<h1>EVC connector sandbox</h1><p>Local stand-ins for every outside party. "
            "Not Microsoft, not Epic, not Oracle.</p>"
            f"{''.join(rows)}"
            "<h2>Control</h2><ul><li><a href='/_sandbox/ca.pem'>CA certificate</a></li>"
            "<li><a href='/_sandbox/requests'>request journal</a></li>"
            "<li><a href='/_sandbox/faults'>pending faults</a></li>"
            "<li><a href='/_sandbox/config'>config</a></li></ul></body></html>"
        )
        return html_response(body)


def fault_response(fault: Fault) -> Response:
    headers = dict(fault.headers)
    if fault.retry_after is not None:
        headers["Retry-After"] = str(fault.retry_after)
    body = fault.body
    if body is None:
        body = {
            "error": {
                "code": "SandboxInjectedFault",
                "message": f"Injected by the sandbox: HTTP {fault.status}.",
            }
        }
    if isinstance(body, dict | list):
        return json_response(body, fault.status, headers)
    content_type = headers.pop("Content-Type", "text/plain; charset=utf-8")
    return Response(body, status=fault.status, headers=headers, content_type=content_type)
