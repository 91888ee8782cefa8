"""Invocation: a function called with its trigger value, `context` and output bindings, as the
Python worker does; queue outputs are delivered after it returns."""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import azure.functions as func
from azure.functions import _abc  # TraceContext's interface is not exported

from dev.host.functions import FunctionInfo, binding_attr
from dev.host.settings import resolve_setting_expressions

if TYPE_CHECKING:
    from dev.host.queues import Queues

log = logging.getLogger("dev.host")


class Out(func.Out):
    """What a function parameter bound to an output binding receives."""

    def __init__(self) -> None:
        self._value: Any = None

    def set(self, val: Any) -> None:
        self._value = val

    def get(self) -> Any:
        return self._value


class TraceContext(_abc.TraceContext):
    """The invocation's W3C trace context, as the host's activity for it gives the worker."""

    def __init__(self, trace_parent: str) -> None:
        self._trace_parent = trace_parent

    @property
    def trace_parent(self) -> str:
        return self._trace_parent

    @property
    def trace_state(self) -> str:
        return ""

    @property
    def attributes(self) -> dict[str, str]:
        return {}


_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-[0-9a-f]{16}-([0-9a-f]{2})$")


def invocation_trace(incoming: str | None = None) -> TraceContext:
    """A new span for the invocation: in the caller's trace when it sent a valid `traceparent`
    (the host honours W3C trace context on HTTP), else in a trace of its own."""
    found = _TRACEPARENT.match((incoming or "").strip().lower())
    trace_id, flags = (found.group(1), found.group(2)) if found else (secrets.token_hex(16), "01")
    if trace_id == "0" * 32:  # W3C: an all-zero trace id is invalid
        trace_id = secrets.token_hex(16)
    return TraceContext(f"00-{trace_id}-{secrets.token_hex(8)}-{flags}")


class Context(func.Context):
    """The `context` argument the Python worker passes to functions that ask for it."""

    def __init__(
        self,
        invocation_id: str,
        function_name: str,
        function_directory: str,
        trace: TraceContext | None = None,
    ) -> None:
        self._trace = trace or invocation_trace()
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
    def trace_context(self) -> TraceContext:
        return self._trace

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

    def invoke(
        self, fn: FunctionInfo, trigger_value: Any, reason: str, traceparent: str | None = None
    ) -> Invocation:
        """`traceparent`: the caller's W3C trace context (an HTTP request's header)."""
        invocation_id = str(uuid.uuid4())
        log.debug("Executing 'Functions.%s' (Reason='%s', Id=%s)", fn.name, reason, invocation_id)
        started = time.perf_counter()
        try:
            outputs = {b.name: Out() for b in fn.outputs if b.name != "$return"}
            trace = invocation_trace(traceparent)
            kwargs = self._arguments(fn, trigger_value, outputs, invocation_id, trace)
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
        self,
        fn: FunctionInfo,
        trigger_value: Any,
        outputs: dict[str, Out],
        invocation_id: str,
        trace: TraceContext,
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
                kwargs[name] = Context(invocation_id, fn.name, fn.directory, trace)
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
