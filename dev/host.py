"""A local Azure Functions host for Python v2-model apps, for machines without Core Tools.

    python -m dev.host [--app-dir DIR] [--port 7071] [--host 127.0.0.1]
                       [--settings local.settings.json] [--no-timers]

It reads the same files as `func start` (function_app.py, host.json, local.settings.json) and
knows no function by name: it asks the app what it registered and serves HTTP triggers with
Werkzeug, fires timer triggers on their NCRONTAB schedules and polls storage queues (Azurite)
for queue triggers, with the real host's retry and poison-queue rules. Queue output bindings
are sent after the function returns, whatever its trigger.

Where it differs from the real host, it says so in its docstrings; see LocalHost for the API.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import importlib.util
import inspect
import json
import logging
import os
import re
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import azure.functions as func
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from azure.functions import _abc as func_abc
from azure.functions.decorators.core import BindingDirection
from azure.functions.queue import QueueMessage
from azure.functions.timer import TimerRequest
from azure.storage.queue import QueueClient
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from dev.ncrontab import CronSchedule

log = logging.getLogger("dev.host")

DEFAULT_PORT = 7071
DEFAULT_CONNECTION = "AzureWebJobsStorage"
APP_MODULE = "function_app"
# The real host polls again after 100 ms when it found messages and doubles the wait up to
# maxPollingInterval when the queue is empty.
MIN_POLL_SECONDS = 0.1
# Messages stay invisible this long while a function works on them (the real host's default).
PROCESSING_VISIBILITY_SECONDS = 600
# A timer that fires later than this after its due time is reported as past due.
PAST_DUE_SECONDS = 1.0
# Hop-by-hop or length headers are the server's business, not the function's.
SERVER_HEADERS = {"content-length", "transfer-encoding", "connection"}


# --------------------------------------------------------------------------- settings


def read_local_settings(path: Path) -> dict[str, str]:
    """The "Values" of local.settings.json as strings; {} when the file does not exist."""
    if not path.is_file():
        return {}
    doc = json.loads(path.read_text(encoding="utf-8"))
    if doc.get("IsEncrypted"):
        raise ValueError(f"{path} is encrypted; dev/host.py only reads plain settings")
    values = doc.get("Values") or {}
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}


def local_http_port(path: Path) -> int | None:
    """Host.LocalHttpPort from local.settings.json, which Core Tools uses as the default port."""
    if not path.is_file():
        return None
    port = (json.loads(path.read_text(encoding="utf-8")).get("Host") or {}).get("LocalHttpPort")
    return int(port) if port else None


def apply_settings(
    values: Mapping[str, str], environ: MutableMapping[str, str] | None = None
) -> list[str]:
    """Copy settings into the environment, except those already set: the environment wins,
    as with Core Tools, so tests and shells can override a setting. Returns the names set."""
    environ = os.environ if environ is None else environ
    applied = [name for name in values if name not in environ]
    for name in applied:
        environ[name] = values[name]
    return applied


def resolve_setting_expressions(text: str) -> str:
    """Replace `%NAME%` with the app setting NAME, as the host does in binding attributes."""

    def setting(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise LookupError(f"'%{name}%' does not resolve to a value (setting {name} unset)")
        return os.environ[name]

    return re.sub(r"%([^%]+)%", setting, text)


def parse_timespan(value: str) -> float:
    """Seconds in a .NET TimeSpan string as host.json uses: `hh:mm:ss[.fff]`, `d.hh:mm:ss`."""
    match = re.fullmatch(r"(?:(\d+)\.)?(\d{1,2}):(\d{2})(?::(\d{2})(\.\d+)?)?", value.strip())
    if not match:
        raise ValueError(f"'{value}' is not a TimeSpan like 00:00:30")
    days, hours, minutes, seconds, fraction = match.groups()
    return (
        int(days or 0) * 86400
        + int(hours) * 3600
        + int(minutes) * 60
        + int(seconds or 0)
        + float(fraction or 0)
    )


@dataclass(frozen=True)
class QueueOptions:
    """host.json extensions.queues, with the real host's defaults."""

    batch_size: int = 16
    visibility_timeout: float = 0.0
    max_dequeue_count: int = 5
    max_polling_interval: float = 60.0
    message_encoding: str = "base64"

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> QueueOptions:
        encoding = str(doc.get("messageEncoding", cls.message_encoding)).lower()
        if encoding not in ("base64", "none"):
            raise ValueError(f"host.json messageEncoding '{encoding}' is not base64 or none")
        return cls(
            # The queue service hands out at most 32 messages per request.
            batch_size=max(1, min(32, int(doc.get("batchSize", cls.batch_size)))),
            visibility_timeout=parse_timespan(doc.get("visibilityTimeout", "00:00:00")),
            max_dequeue_count=int(doc.get("maxDequeueCount", cls.max_dequeue_count)),
            max_polling_interval=max(
                MIN_POLL_SECONDS, parse_timespan(doc.get("maxPollingInterval", "00:01:00"))
            ),
            message_encoding=encoding,
        )


@dataclass(frozen=True)
class HostOptions:
    """What dev/host.py reads from host.json."""

    route_prefix: str = "api"
    queues: QueueOptions = field(default_factory=QueueOptions)
    functions: tuple[str, ...] | None = None  # host.json "functions": only these run

    @classmethod
    def load(cls, app_dir: Path) -> HostOptions:
        path = app_dir / "host.json"
        doc = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        extensions = doc.get("extensions") or {}
        prefix = (extensions.get("http") or {}).get("routePrefix", "api")
        only = doc.get("functions")
        return cls(
            route_prefix=prefix.strip("/"),
            queues=QueueOptions.from_json(extensions.get("queues") or {}),
            functions=tuple(only) if only is not None else None,
        )


# --------------------------------------------------------------------------- the app


def load_app(app_dir: Path) -> func.FunctionRegister:
    """Execute app_dir/function_app.py afresh and return its one FunctionApp.

    A fresh module each time, because get_functions() may be called only once per app object
    (it raises on a second call) and a LocalHost may be started twice in one process."""
    path = app_dir / f"{APP_MODULE}.py"
    spec = importlib.util.spec_from_file_location(APP_MODULE, path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"no {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[APP_MODULE] = module
    spec.loader.exec_module(module)
    return find_app(module)


def find_app(module: ModuleType) -> func.FunctionRegister:
    apps = [v for v in vars(module).values() if isinstance(v, func.FunctionRegister)]
    if len(apps) != 1:
        raise ValueError(f"{module.__file__} needs exactly one FunctionApp, not {len(apps)}")
    return apps[0]


def binding_attr(binding: Any, *names: str) -> Any:
    """A binding attribute by its snake_case name, or the camelCase one generic bindings use."""
    for name in names:
        value = getattr(binding, name, None)
        if value is not None:
            return value
    return None


@dataclass
class FunctionInfo:
    """One registered function, as the host sees it."""

    name: str
    trigger: Any
    user_function: Callable[..., Any]
    inputs: list[Any]  # input bindings besides the trigger
    outputs: list[Any]
    parameters: list[str]
    directory: str

    @property
    def trigger_type(self) -> str:
        return self.trigger.type

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.user_function)

    def output(self, binding_type: str) -> list[Any]:
        return [b for b in self.outputs if b.type == binding_type]


def index_functions(app: func.FunctionRegister, directory: str) -> list[FunctionInfo]:
    """Ask the app what it registered. This is the one get_functions() call for this app."""
    infos = []
    for fn in app.get_functions():
        user_function, trigger = fn.get_user_function(), fn.get_trigger()
        bindings = [b for b in fn.get_bindings() if b is not trigger]
        outputs = [b for b in bindings if b.direction == BindingDirection.OUT.value]
        infos.append(
            FunctionInfo(
                name=fn.get_function_name(),
                trigger=trigger,
                user_function=user_function,
                inputs=[b for b in bindings if b not in outputs],
                outputs=outputs,
                parameters=list(inspect.signature(user_function).parameters),
                directory=directory,
            )
        )
    return infos


def is_disabled(name: str) -> bool:
    """The app setting AzureWebJobs.<name>.Disabled switches a function off, as in Azure."""
    return os.environ.get(f"AzureWebJobs.{name}.Disabled", "").lower() in ("true", "1")


# --------------------------------------------------------------------------- queues


def connection_string(setting: str | None) -> str:
    """The connection string a binding's `connection` setting names (AzureWebJobsStorage)."""
    name = setting or DEFAULT_CONNECTION
    for candidate in (name, f"AzureWebJobs{name}"):
        if os.environ.get(candidate):
            return os.environ[candidate]
    raise LookupError(
        f"storage connection setting '{name}' is not set (dev/host.py needs a connection "
        f"string such as UseDevelopmentStorage=true, not {name}__queueServiceUri)"
    )


def encode_message(body: bytes, encoding: str) -> str:
    if encoding == "base64":
        return base64.b64encode(body).decode("ascii")
    return body.decode("utf-8")


def decode_message(content: str, encoding: str) -> bytes:
    if encoding == "base64":
        try:
            return base64.b64decode(content, validate=True)
        except binascii.Error as exc:
            raise ValueError("queue message is not base64 (host.json messageEncoding)") from exc
    return content.encode("utf-8")


def output_bodies(value: Any) -> list[bytes]:
    """Message bodies from what a function gave a queue output: str, bytes, QueueMessage, or a
    list of those (the types the Python worker accepts)."""
    if isinstance(value, str):
        return [value.encode("utf-8")]
    if isinstance(value, bytes | bytearray):
        return [bytes(value)]
    if isinstance(value, func_abc.QueueMessage):
        return [value.get_body()]
    if isinstance(value, list | tuple):
        return [body for item in value for body in output_bodies(item)]
    raise TypeError(f"a queue output takes str, bytes or a list of them, not {type(value)}")


def ensure_queue(client: QueueClient) -> None:
    with contextlib.suppress(ResourceExistsError):
        client.create_queue()


class Queues:
    """Queue clients by connection and name; the host creates queues it writes to, and tells
    its own listeners when it added a message so they poll at once (as the real host does)."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        self._clients: dict[tuple[str, str], QueueClient] = {}
        self._lock = threading.Lock()
        self._wakeups: dict[str, list[threading.Event]] = {}

    def client(self, connection: str | None, queue: str) -> QueueClient:
        key = (connection_string(connection), queue)
        with self._lock:
            client = self._clients.get(key)
        if client is None:
            # Few retries: locally a storage error is a stopped Azurite, and the listeners
            # back off on their own.
            client = QueueClient.from_connection_string(key[0], queue, retry_total=2)
            ensure_queue(client)  # outside the lock: it is a network call
            with self._lock:
                client = self._clients.setdefault(key, client)
        return client

    def send(self, connection: str | None, queue: str, value: Any) -> None:
        client = self.client(connection, queue)
        for body in output_bodies(value):
            client.send_message(encode_message(body, self.encoding))
        self.wake(queue)

    def watch(self, queue: str) -> threading.Event:
        event = threading.Event()
        with self._lock:
            self._wakeups.setdefault(queue, []).append(event)
        return event

    def wake(self, queue: str | None = None) -> None:
        with self._lock:
            events = [e for q, es in self._wakeups.items() if queue in (None, q) for e in es]
        for event in events:
            event.set()


# --------------------------------------------------------------------------- invocation


class Out(func.Out):
    """What a function parameter bound to an output binding receives."""

    def __init__(self) -> None:
        self._value: Any = None

    def set(self, val: Any) -> None:
        self._value = val

    def get(self) -> Any:
        return self._value


class Context(func.Context):
    """The `context` argument the Python worker passes to functions that ask for it."""

    def __init__(self, invocation_id: str, function_name: str, function_directory: str) -> None:
        self._invocation_id = invocation_id
        self._function_name = function_name
        self._function_directory = function_directory
        self._local = threading.local()
        self._local.invocation_id = invocation_id

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> threading.local:
        return self._local

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._function_directory

    @property
    def trace_context(self) -> None:
        return None

    @property
    def retry_context(self) -> None:
        return None


class AsyncRunner:
    """One event loop in its own thread for every `async def` function, as the worker has one
    loop: clients created in one invocation can be reused in the next."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="dev-host-asyncio", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
        if not self._loop.is_running():
            self._loop.close()


@dataclass
class Invocation:
    result: Any
    outputs: dict[str, Out]


class Invoker:
    """Calls a function with its trigger value, then delivers its queue outputs."""

    def __init__(self, queues: Queues, runner: AsyncRunner) -> None:
        self.queues = queues
        self.runner = runner

    def invoke(self, fn: FunctionInfo, trigger_value: Any, reason: str) -> Invocation:
        invocation_id = str(uuid.uuid4())
        log.debug("Executing 'Functions.%s' (Reason='%s', Id=%s)", fn.name, reason, invocation_id)
        started = time.perf_counter()
        try:
            outputs = {b.name: Out() for b in fn.outputs if b.name != "$return"}
            kwargs = self._arguments(fn, trigger_value, outputs, invocation_id)
            result = self._call(fn, kwargs)
            self._deliver(fn, result, outputs)
        except Exception:
            ms = (time.perf_counter() - started) * 1000
            log.exception(
                "Executed 'Functions.%s' (Failed, Id=%s, Duration=%.0fms)",
                fn.name,
                invocation_id,
                ms,
            )
            raise
        ms = (time.perf_counter() - started) * 1000
        log.info(
            "Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%.0fms)",
            fn.name,
            invocation_id,
            ms,
        )
        return Invocation(result, outputs)

    def _arguments(
        self, fn: FunctionInfo, trigger_value: Any, outputs: dict[str, Out], invocation_id: str
    ) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        unsupported_inputs = {b.name for b in fn.inputs}
        for name in fn.parameters:
            if name == fn.trigger.name:
                kwargs[name] = trigger_value
            elif name in outputs:
                kwargs[name] = outputs[name]
            elif name in unsupported_inputs:
                kwargs[name] = None
            elif name == "context":
                kwargs[name] = Context(invocation_id, fn.name, fn.directory)
        return kwargs

    def _call(self, fn: FunctionInfo, kwargs: dict[str, Any]) -> Any:
        if fn.is_async:
            return self.runner.run(fn.user_function(**kwargs))
        return fn.user_function(**kwargs)

    def _deliver(self, fn: FunctionInfo, result: Any, outputs: dict[str, Out]) -> None:
        """Send queue outputs; a failure here fails the invocation, as in the real host."""
        for binding in fn.output("queue"):
            value = result if binding.name == "$return" else outputs[binding.name].get()
            if value is not None:
                queue = binding_attr(binding, "queue_name", "queueName")
                connection = binding_attr(binding, "connection")
                self.queues.send(connection, resolve_setting_expressions(queue), value)


# --------------------------------------------------------------------------- HTTP routes

GUID = r"\{?[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}\}?"
NUMBER = r"-?\d+(?:\.\d+)?"
TYPE_PATTERNS = {
    "int": r"-?\d+",
    "long": r"-?\d+",
    "alpha": r"[a-z]+",
    "bool": r"true|false",
    "guid": GUID,
    "decimal": NUMBER,
    "double": NUMBER,
    "float": NUMBER,
    "datetime": r"[^/]+",
}
INT_LIMITS = {"int": 2**31, "long": 2**63}
# Precedence of a segment, lower wins: as ASP.NET routing orders templates.
LITERAL, COMPLEX, CONSTRAINED, PARAMETER, CATCH_ALL = 1, 2, 3, 4, 5


def _is_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _constraint_check(name: str, arg: str | None) -> Callable[[str], bool]:
    args = [a.strip() for a in arg.split(",")] if arg is not None else []
    if name in INT_LIMITS:
        limit = INT_LIMITS[name]
        return lambda v: -limit <= int(v) < limit
    if name == "datetime":
        return _is_datetime
    if name in TYPE_PATTERNS:
        return lambda v: True  # the pattern says it all
    checks: dict[str, Callable[[str], bool]] = {
        "min": lambda v: int(v) >= int(args[0]),
        "max": lambda v: int(v) <= int(args[0]),
        "range": lambda v: int(args[0]) <= int(v) <= int(args[-1]),
        "minlength": lambda v: len(v) >= int(args[0]),
        "maxlength": lambda v: len(v) <= int(args[0]),
        "length": lambda v: int(args[0]) <= len(v) <= int(args[-1]),
        "regex": lambda v: re.search(arg or "", v, re.IGNORECASE) is not None,
    }
    if name not in checks:
        raise ValueError(f"route constraint '{name}' is not known")
    numeric = name in ("min", "max", "range")
    check = checks[name]
    return (lambda v: re.fullmatch(r"-?\d+", v) is not None and check(v)) if numeric else check


def _split_constraints(text: str) -> list[str]:
    """`id:int:range(1,5)` -> ['id', 'int', 'range(1,5)'], leaving ':' inside () alone."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == ":" and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [*parts, current]


@dataclass
class RouteParam:
    name: str
    pattern: str = r"[^/]+"
    checks: list[Callable[[str], bool]] = field(default_factory=list)
    optional: bool = False
    catch_all: bool = False
    default: str | None = None

    @classmethod
    def parse(cls, spec: str) -> RouteParam:
        catch_all = spec.startswith("*")
        spec = spec.lstrip("*")
        optional = spec.endswith("?")
        name, *constraints = _split_constraints(spec.rstrip("?"))
        name, _, default = name.partition("=")
        if constraints and "=" in constraints[-1] and "(" not in constraints[-1]:
            constraints[-1], _, default = constraints[-1].partition("=")
        param = cls(name.strip(), optional=optional, catch_all=catch_all, default=default or None)
        for constraint in constraints:
            param.constrain(constraint.strip())
        return param

    def constrain(self, constraint: str) -> None:
        match = re.fullmatch(r"(\w+)(?:\((.*)\))?", constraint, re.DOTALL)
        if not match:
            raise ValueError(f"route constraint '{constraint}' cannot be read")
        name, arg = match.group(1).lower(), match.group(2)
        if name in TYPE_PATTERNS:
            self.pattern = TYPE_PATTERNS[name]
        self.checks.append(_constraint_check(name, arg))

    @property
    def rank(self) -> int:
        if self.catch_all:
            return CATCH_ALL
        return CONSTRAINED if self.checks else PARAMETER

    def accepts(self, value: str) -> bool:
        return all(check(value) for check in self.checks)


@dataclass
class RouteTemplate:
    """A Functions route template compiled to one regular expression."""

    template: str
    regex: re.Pattern[str]
    params: list[RouteParam]
    precedence: tuple[int, ...]

    @classmethod
    def compile(cls, template: str) -> RouteTemplate:
        params: list[RouteParam] = []
        pieces, precedence = [], []
        segments = [s for s in template.strip("/").split("/")] if template.strip("/") else []
        for index, segment in enumerate(segments):
            piece, rank = _compile_segment(segment, params, last=index == len(segments) - 1)
            pieces.append(piece)
            precedence.append(rank)
        regex = re.compile("^" + "".join(pieces) + "/?$", re.IGNORECASE | re.DOTALL)
        return cls(template, regex, params, tuple(precedence))

    def match(self, path: str) -> dict[str, str] | None:
        found = self.regex.match(path)
        if not found:
            return None
        values: dict[str, str] = {}
        for index, param in enumerate(self.params):
            value = found.group(f"p{index}")
            if value is None or (value == "" and param.catch_all):
                if param.default is not None:
                    values[param.name] = param.default
                continue
            if not param.accepts(value):
                return None
            values[param.name] = value
        return values


def _compile_segment(segment: str, params: list[RouteParam], last: bool) -> tuple[str, int]:
    if not segment:
        raise ValueError("a route template has an empty segment")
    whole = re.fullmatch(r"\{([^{}]+)\}", segment)
    if whole:
        param = RouteParam.parse(whole.group(1))
        group = f"(?P<p{len(params)}>{'.*' if param.catch_all else f'(?:{param.pattern})'})"
        params.append(param)
        if param.catch_all and not last:
            raise ValueError("a catch-all parameter must be the last segment")
        optional = param.optional or param.catch_all or param.default is not None
        return (f"(?:/{group})?" if optional else f"/{group}"), param.rank
    pieces, has_param = [], False
    for token in re.split(r"(\{[^{}]+\})", segment):
        if token.startswith("{"):
            param = RouteParam.parse(token[1:-1])
            # Greedy, so `{name}.{ext}` splits `a.b.pdf` at the last dot, as ASP.NET does.
            pieces.append(f"(?P<p{len(params)}>(?:{param.pattern}))")
            params.append(param)
            has_param = True
        elif token:
            pieces.append(re.escape(token))
    return "/" + "".join(pieces), COMPLEX if has_param else LITERAL


@dataclass
class Route:
    fn: FunctionInfo
    template: RouteTemplate
    methods: frozenset[str] | None  # None: every method

    def allows(self, method: str) -> bool:
        return self.methods is None or method in self.methods


def build_route(fn: FunctionInfo, route_prefix: str) -> Route:
    route = binding_attr(fn.trigger, "route")
    route = resolve_setting_expressions(fn.name if route is None else route)
    template = "/".join(p for p in (route_prefix, route.strip("/")) if p)
    methods = binding_attr(fn.trigger, "methods")
    allowed = frozenset(str(getattr(m, "value", m)).upper() for m in methods) if methods else None
    return Route(fn, RouteTemplate.compile(template), allowed)


# --------------------------------------------------------------------------- HTTP serving


def to_http_request(request: Request, route_params: dict[str, str]) -> func.HttpRequest:
    return func.HttpRequest(
        method=request.method,
        url=request.url,
        headers=dict(request.headers.items()),
        params=dict(request.args.items()),
        route_params=route_params,
        body=request.get_data(),
    )


def _header_items(headers: Any) -> Iterator[tuple[str, str]]:
    # werkzeug Headers (what func.HttpResponse holds) keeps repeated names, e.g. Set-Cookie.
    yield from (headers.items() if hasattr(headers, "items") else headers)


def to_wsgi_response(answer: Any) -> Response:
    """Turn what an HTTP function returned into a response, as the Python worker does:
    str and bytes become 200 bodies, None an empty 204."""
    if answer is None:
        return Response(status=204)
    if isinstance(answer, str):
        answer = func.HttpResponse(answer)
    elif isinstance(answer, bytes | bytearray):
        answer = func.HttpResponse(bytes(answer), mimetype="application/octet-stream")
    if not isinstance(answer, func_abc.HttpResponse):
        raise TypeError(f"an HTTP function must return func.HttpResponse, not {type(answer)}")
    headers = [(k, v) for k, v in _header_items(answer.headers) if k.lower() not in SERVER_HEADERS]
    if not any(k.lower() == "content-type" for k, _ in headers):
        mimetype = answer.mimetype
        if mimetype.startswith("text/"):
            mimetype = f"{mimetype}; charset={answer.charset}"
        headers.append(("Content-Type", mimetype))
    return Response(answer.get_body(), status=answer.status_code, headers=headers)


def plain(status: int, text: str, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(text, status=status, headers=headers, content_type="text/plain; charset=utf-8")


class HttpApp:
    """The WSGI application: routes a request to a function and logs one line per request,
    without the query string (it may carry tokens)."""

    def __init__(self, routes: list[Route], invoker: Invoker) -> None:
        self.routes = sorted(routes, key=lambda r: r.template.precedence)
        self.invoker = invoker

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        started = time.perf_counter()
        response = self.dispatch(request)
        ms = (time.perf_counter() - started) * 1000
        log.info("%s %s %d %.0fms", request.method, request.path, response.status_code, ms)
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        matched = [(r, p) for r in self.routes if (p := r.template.match(request.path)) is not None]
        if not matched:
            return plain(404, "Not Found")
        for route, params in matched:
            if route.allows(request.method):
                return self.call(route.fn, request, params)
        allowed = sorted({m for r, _ in matched for m in (r.methods or ())})
        return plain(405, "Method Not Allowed", [("Allow", ", ".join(allowed))])

    def call(self, fn: FunctionInfo, request: Request, params: dict[str, str]) -> Response:
        try:
            invocation = self.invoker.invoke(fn, to_http_request(request, params), "HTTP request")
        except Exception:  # the invoker logged the traceback, as the real host does
            return plain(500, "Internal Server Error")
        try:
            return to_wsgi_response(http_answer(fn, invocation))
        except Exception:
            log.exception("'%s' returned something that is not an HTTP response", fn.name)
            return plain(500, "Internal Server Error")


def http_answer(fn: FunctionInfo, invocation: Invocation) -> Any:
    """The response is the return value, or what was set on a named HTTP output."""
    for binding in fn.output("http"):
        if binding.name != "$return":
            return invocation.outputs[binding.name].get()
    return invocation.result


class QuietRequestHandler(WSGIRequestHandler):
    """Werkzeug's own request line includes the query string; HttpApp logs a safer one."""

    disable_nagle_algorithm = True  # small answers leave at once, as from the real host

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


# --------------------------------------------------------------------------- timers


@dataclass(frozen=True)
class IntervalSchedule:
    """A TimeSpan schedule such as `00:05:00`: every interval from start-up."""

    seconds: float

    def next_after(self, when: datetime) -> datetime:
        return when + timedelta(seconds=self.seconds)


def parse_schedule(text: str) -> CronSchedule | IntervalSchedule:
    if re.fullmatch(r"(\d+\.)?\d{1,2}:\d{2}(:\d{2})?", text.strip()):
        return IntervalSchedule(parse_timespan(text))
    return CronSchedule.parse(text)


def timer_clock() -> Callable[[], datetime]:
    """Timers run on local wall-clock time, as with Core Tools (in Azure that is UTC), or on
    WEBSITE_TIME_ZONE when it names an IANA zone."""
    zone_name = os.environ.get("WEBSITE_TIME_ZONE")
    if zone_name:
        try:
            zone = ZoneInfo(zone_name)
            return lambda: datetime.now(zone)
        except (ZoneInfoNotFoundError, ValueError):
            log.warning("WEBSITE_TIME_ZONE '%s' is not an IANA zone; using local time", zone_name)
    return datetime.now


def timer_request(
    due: datetime, fired: datetime, last: datetime | None, upcoming: datetime
) -> TimerRequest:
    status = {
        "Last": last.isoformat() if last else None,
        "Next": upcoming.isoformat(),
        "LastUpdated": fired.isoformat(),
    }
    # func.TimerRequest is the abstract interface; the worker passes this concrete class.
    return TimerRequest(
        past_due=(fired - due).total_seconds() > PAST_DUE_SECONDS,
        schedule_status=status,
        schedule={"AdjustForDST": True},
    )


class TimerRunner:
    """Fires one timer function. Runs happen in this thread, so a run never overlaps the next:
    occurrences that pass while the function is still running are skipped."""

    def __init__(self, fn: FunctionInfo, invoker: Invoker, stopping: threading.Event) -> None:
        self.fn = fn
        self.invoker = invoker
        self.stopping = stopping
        expression = resolve_setting_expressions(binding_attr(fn.trigger, "schedule"))
        self.schedule = parse_schedule(expression)
        self.now = timer_clock()
        self.schedule.next_after(self.now())  # a schedule that never fires fails at start-up
        self.run_on_startup = bool(binding_attr(fn.trigger, "run_on_startup", "runOnStartup"))
        self.thread = threading.Thread(target=self.run, name=f"timer-{fn.name}", daemon=True)

    def run(self) -> None:
        last: datetime | None = None
        if self.run_on_startup:
            now = self.now()
            self.fire(now, now, last)
            last = now
        due = self.schedule.next_after(self.now())
        while self.sleep_until(due):
            self.fire(due, self.now(), last)
            last = due
            due = self.schedule.next_after(max(due, self.now()))

    def sleep_until(self, due: datetime) -> bool:
        """Wait for `due`; False when the host is stopping."""
        while (remaining := due.timestamp() - time.time()) > 0:
            if self.stopping.wait(remaining):
                return False
        return not self.stopping.is_set()

    def fire(self, due: datetime, fired: datetime, last: datetime | None) -> None:
        request = timer_request(due, fired, last, self.schedule.next_after(max(due, fired)))
        with contextlib.suppress(Exception):  # logged by the invoker; the timer keeps going
            self.invoker.invoke(self.fn, request, "Timer fired")


# --------------------------------------------------------------------------- queue triggers


class QueueListener:
    """Polls one queue for one function with the real host's rules: batches of batchSize,
    delete on success, release after visibilityTimeout on failure, and once a failed message
    has been dequeued maxDequeueCount times, copy it unchanged to `<queue>-poison`."""

    def __init__(
        self, fn: FunctionInfo, invoker: Invoker, options: QueueOptions, stopping: threading.Event
    ) -> None:
        self.fn = fn
        self.invoker = invoker
        self.options = options
        self.stopping = stopping
        self.queues = invoker.queues
        self.connection = binding_attr(fn.trigger, "connection")
        self.queue_name = resolve_setting_expressions(
            binding_attr(fn.trigger, "queue_name", "queueName")
        )
        connection_string(self.connection)  # fail at start-up, not in the polling thread
        self.wakeup = self.queues.watch(self.queue_name)
        self.last_error: str | None = None
        self.pool = ThreadPoolExecutor(options.batch_size, thread_name_prefix=f"queue-{fn.name}")
        self.thread = threading.Thread(target=self.run, name=f"queue-{fn.name}", daemon=True)

    def run(self) -> None:
        delay = MIN_POLL_SECONDS
        while not self.stopping.is_set():
            found = self.poll_once()
            delay = MIN_POLL_SECONDS if found else min(delay * 2, self.options.max_polling_interval)
            if not found and self.wakeup.wait(delay):
                self.wakeup.clear()
                delay = MIN_POLL_SECONDS
        self.pool.shutdown(wait=False, cancel_futures=True)

    def poll_once(self) -> bool:
        """Fetch one batch and process it; True when there were messages."""
        try:
            client = self.queues.client(self.connection, self.queue_name)
            messages = self.receive(client)
        except Exception as exc:
            self.report(exc)
            return False
        self.last_error = None
        list(self.pool.map(lambda m: self.process(client, m), messages))
        return bool(messages)

    def receive(self, client: QueueClient) -> list[Any]:
        try:
            return list(
                client.receive_messages(
                    messages_per_page=self.options.batch_size,
                    max_messages=self.options.batch_size,
                    visibility_timeout=PROCESSING_VISIBILITY_SECONDS,
                )
            )
        except ResourceNotFoundError:  # the queue was deleted behind our back: make it again
            ensure_queue(client)
            return []

    def report(self, exc: Exception) -> None:
        """Warn once per distinct error, not on every poll while Azurite is down."""
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if text != self.last_error:
            log.warning("polling queue '%s' failed: %s", self.queue_name, text)
        self.last_error = text

    def process(self, client: QueueClient, message: Any) -> None:
        try:
            if message.dequeue_count > self.options.max_dequeue_count:
                self.poison(client, message)  # a host died while it held the message
                return
            succeeded = self.invoke(message)
            if succeeded:
                self.delete(client, message)
            elif message.dequeue_count >= self.options.max_dequeue_count:
                self.poison(client, message)
            else:
                self.release(client, message)
        except Exception:
            log.exception("handling message %s from '%s' failed", message.id, self.queue_name)

    def invoke(self, message: Any) -> bool:
        """Run the function on one message; False when it failed (and was logged)."""
        try:
            body = decode_message(message.content, self.options.message_encoding)
        except ValueError as exc:  # counts as a failed run, so it ends in the poison queue
            log.error("message %s on '%s': %s", message.id, self.queue_name, exc)
            return False
        try:
            self.invoker.invoke(self.fn, to_queue_message(message, body), "New queue message")
        except Exception:  # the invoker logged the traceback
            return False
        return True

    def delete(self, client: QueueClient, message: Any) -> None:
        with message_may_be_gone():
            client.delete_message(message.id, message.pop_receipt)

    def release(self, client: QueueClient, message: Any) -> None:
        with message_may_be_gone():
            client.update_message(
                message.id,
                message.pop_receipt,
                visibility_timeout=round(self.options.visibility_timeout),
            )

    def poison(self, client: QueueClient, message: Any) -> None:
        poison_name = f"{self.queue_name}-poison"
        log.warning(
            "Message has reached MaxDequeueCount of %d. Moving message to queue '%s'.",
            self.options.max_dequeue_count,
            poison_name,
        )
        # The stored text, still encoded, so the poison message reads exactly as the original.
        self.queues.client(self.connection, poison_name).send_message(message.content)
        self.delete(client, message)


@contextlib.contextmanager
def message_may_be_gone() -> Iterator[None]:
    """Like the real host, shrug when the message or queue is gone (404), someone else took
    the message over (400, pop receipt mismatch) or the queue is being deleted (409)."""
    try:
        yield
    except HttpResponseError as exc:
        if exc.status_code not in (400, 404, 409):
            raise


def to_queue_message(message: Any, body: bytes) -> QueueMessage:
    return QueueMessage(
        id=message.id,
        body=body,
        dequeue_count=message.dequeue_count,
        expiration_time=message.expires_on,
        insertion_time=message.inserted_on,
        time_next_visible=message.next_visible_on,
        pop_receipt=message.pop_receipt,
    )


# --------------------------------------------------------------------------- the host


class LocalHost:
    """The host as a Python object, for tests and dev/run.py.

        host = LocalHost("path/to/app", port=0, env={"FLAG": "1"}).start()
        requests.get(f"{host.url}/api/health")
        host.stop()

    port=0 picks a free port (see .port). `env` is applied before local.settings.json, so it
    wins; stop() puts os.environ, sys.path and sys.modules back as they were."""

    def __init__(
        self,
        app_dir: str | Path = ".",
        port: int = DEFAULT_PORT,
        host: str = "127.0.0.1",
        settings: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        timers: bool = True,
    ) -> None:
        self.app_dir = Path(app_dir).resolve()
        self.port = port
        self.host = host
        self.settings_path = Path(settings) if settings else self.app_dir / "local.settings.json"
        self.env = dict(env or {})
        self.timers = timers
        self.functions: list[FunctionInfo] = []
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._server: BaseWSGIServer | None = None
        self._queues: Queues | None = None
        self._runner = AsyncRunner()
        self._saved_env: dict[str, str | None] = {}
        self._saved_module = sys.modules.get(APP_MODULE)
        self._path_added = False

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> LocalHost:
        """Load the app and start serving; returns once the port is listening. A LocalHost
        starts once; make a new one to start again."""
        try:
            routes = self._load()
        except BaseException:
            self.stop()
            raise
        self._runner.start()
        for thread in self._threads:
            thread.start()
        self._announce(routes)
        return self

    def _load(self) -> list[Route]:
        """Settings, host.json and the app; binds the port. Starts no thread yet."""
        self._prepare_environment()
        options = HostOptions.load(self.app_dir)
        self._queues = Queues(options.queues.message_encoding)
        invoker = Invoker(self._queues, self._runner)
        sys.path.insert(0, str(self.app_dir))  # so the app imports its own packages
        self._path_added = True
        app = load_app(self.app_dir)
        functions = self._select(index_functions(app, str(self.app_dir)), options)
        routes = self._start_triggers(functions, invoker, options)
        self._serve(HttpApp(routes, invoker))
        return routes

    def stop(self) -> None:
        """Stop serving and polling; waits a few seconds for functions still running."""
        self._stopping.set()
        if self._queues is not None:
            self._queues.wake()  # listeners sleep on their wake-up events
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        deadline = time.monotonic() + 5  # for all threads together, not each
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=max(0.0, deadline - time.monotonic()))
        self._runner.stop()
        self._restore_environment()

    def __enter__(self) -> LocalHost:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _prepare_environment(self) -> None:
        for name, value in self.env.items():
            self._saved_env.setdefault(name, os.environ.get(name))
            os.environ[name] = value
        values = read_local_settings(self.settings_path)
        for name in values:
            self._saved_env.setdefault(name, os.environ.get(name))
        apply_settings(values)

    def _restore_environment(self) -> None:
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env.clear()
        if self._path_added:
            sys.path.remove(str(self.app_dir))  # the first entry: the one start() put there
            self._path_added = False
        if self._saved_module is None:
            sys.modules.pop(APP_MODULE, None)
        else:
            sys.modules[APP_MODULE] = self._saved_module

    def _select(self, functions: list[FunctionInfo], options: HostOptions) -> list[FunctionInfo]:
        selected = []
        for fn in functions:
            if options.functions is not None and fn.name not in options.functions:
                continue
            if is_disabled(fn.name):
                log.info("Function '%s' is disabled (AzureWebJobs.%s.Disabled)", fn.name, fn.name)
                continue
            selected.append(fn)
        return selected

    def _start_triggers(
        self, functions: list[FunctionInfo], invoker: Invoker, options: HostOptions
    ) -> list[Route]:
        """Set up each function by its trigger. Like the real host, a function whose setup
        fails (an unset %SETTING%, a bad schedule) is reported and the others still run."""
        routes, started = [], []
        for fn in functions:
            try:
                route = self._start_trigger(fn, invoker, options)
            except (LookupError, ValueError) as exc:
                log.error("The '%s' function is in error: %s", fn.name, exc)
                continue
            started.append(fn)
            if route is not None:
                routes.append(route)
        self.functions = started
        return routes

    def _start_trigger(
        self, fn: FunctionInfo, invoker: Invoker, options: HostOptions
    ) -> Route | None:
        kind = fn.trigger_type
        self._warn_unsupported(fn)
        if kind == "httpTrigger":
            return build_route(fn, options.route_prefix)
        if kind == "timerTrigger":
            if self.timers:
                self._threads.append(TimerRunner(fn, invoker, self._stopping).thread)
        elif kind == "queueTrigger":
            listener = QueueListener(fn, invoker, options.queues, self._stopping)
            self._threads.append(listener.thread)
        else:
            log.warning("'%s' has a %s trigger, which dev/host.py does not run", fn.name, kind)
        return None

    def _warn_unsupported(self, fn: FunctionInfo) -> None:
        """Only queue and HTTP outputs are supported: say so rather than fail obscurely."""
        for binding in fn.inputs:
            log.warning(
                "'%s': %s input '%s' is not supported by dev/host.py (gets None)",
                fn.name,
                binding.type,
                binding.name,
            )
        for binding in fn.outputs:
            if binding.type not in ("queue", "http"):
                log.warning(
                    "'%s': %s output '%s' is not delivered by dev/host.py",
                    fn.name,
                    binding.type,
                    binding.name,
                )

    def _serve(self, app: HttpApp) -> None:
        self._server = make_server(
            self.host, self.port, app, threaded=True, request_handler=QuietRequestHandler
        )
        self.port = self._server.port
        thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="dev-host-http",
            daemon=True,
        )
        self._threads.append(thread)

    def _announce(self, routes: list[Route]) -> None:
        lines = [f"Functions in {self.app_dir}:"]
        by_function = {r.fn.name: r for r in routes}
        for fn in self.functions:
            route = by_function.get(fn.name)
            if route is not None:
                methods = ",".join(sorted(route.methods)) if route.methods else "ALL"
                lines.append(f"  {fn.name}: [{methods}] {self.url}/{route.template.template}")
            else:
                lines.append(f"  {fn.name}: {fn.trigger_type}")
        lines.append(f"Host listening on {self.url}")
        log.info("\n".join(lines))


# --------------------------------------------------------------------------- command line


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m dev.host", description="Run a Python Azure Functions app locally."
    )
    parser.add_argument("--app-dir", default=".", help="folder with function_app.py, host.json")
    parser.add_argument("--port", type=int, help="default: Host.LocalHttpPort or 7071; 0: any")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--settings", help="settings file (default APP_DIR/local.settings.json)")
    parser.add_argument("--no-timers", action="store_true", help="do not fire timer triggers")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("azure").setLevel(logging.WARNING)  # one line per storage call otherwise
    app_dir = Path(args.app_dir)
    settings = Path(args.settings) if args.settings else app_dir / "local.settings.json"
    port = args.port if args.port is not None else local_http_port(settings) or DEFAULT_PORT
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    host = LocalHost(app_dir, port, args.host, settings, timers=not args.no_timers).start()
    try:
        while not stopping.wait(1):
            pass
    finally:
        log.info("Stopping the host")
        host.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
