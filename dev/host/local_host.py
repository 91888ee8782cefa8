"""LocalHost: the host as a Python object. It loads settings and the app, sets each function up
by its trigger (a function whose setup fails is reported, the others run) and serves."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from werkzeug.serving import BaseWSGIServer, make_server

from dev.host.functions import (
    APP_MODULE,
    FunctionInfo,
    index_functions,
    is_disabled,
    load_app,
)
from dev.host.invocation import AsyncRunner, Invoker
from dev.host.queues import QueueListener, Queues
from dev.host.routes import Route, build_route
from dev.host.serving import HttpApp, QuietRequestHandler, serve_tls
from dev.host.settings import HostOptions, apply_settings, read_local_settings
from dev.host.timers import TimerRunner

log = logging.getLogger("dev.host")

DEFAULT_PORT = 7071


class LocalHost:
    """The host as a Python object, for tests and dev/run.py.

        host = LocalHost("path/to/app", port=0, env={"FLAG": "1"}).start()
        requests.get(f"{host.url}/api/health")
        host.stop()

    port=0 picks a free port (see .port). `env` is applied before local.settings.json, so it
    wins; stop() puts os.environ, sys.path and sys.modules back as they were. `tls`: a
    certificate and key (PEM files) to serve https with, as `func start --useHttps --cert`."""

    def __init__(
        self,
        app_dir: str | Path = ".",
        port: int = DEFAULT_PORT,
        host: str = "127.0.0.1",
        settings: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        timers: bool = True,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        self.tls = tls
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
        self._warmups: list[FunctionInfo] = []
        self._invoker: Invoker | None = None
        self._saved_env: dict[str, str | None] = {}
        self._saved_module = sys.modules.get(APP_MODULE)
        self._path_added = False

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def start(self) -> LocalHost:
        """Load the app and start serving; returns once the port is listening. A LocalHost
        starts once; make a new one to start again."""
        try:
            routes = self._load()
        except BaseException:
            self.stop()
            raise
        self._runner.start()
        self._warm_up()
        for thread in self._threads:
            thread.start()
        self._announce(routes)
        return self

    def _warm_up(self) -> None:
        """Like Azure adding an instance: the warmup function runs before any traffic (the
        port is bound, requests wait in its backlog). Its failure is logged, not fatal."""
        from azure.functions.warmup import WarmUpContext

        for fn in self._warmups:
            with contextlib.suppress(Exception):  # logged by the invoker
                self._invoker.invoke(fn, WarmUpContext(), "Warmup")  # type: ignore[union-attr]

    def _load(self) -> list[Route]:
        """Settings, host.json and the app; binds the port. Starts no thread yet."""
        self._prepare_environment()
        options = HostOptions.load(self.app_dir)
        self._queues = Queues(options.queues.message_encoding)
        invoker = self._invoker = Invoker(self._queues, self._runner)
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
        elif kind == "warmupTrigger":
            self._warmups.append(fn)
        elif kind == "queueTrigger":
            listener = QueueListener(fn, invoker, options.queues, self._stopping)
            self._threads.append(listener.thread)
        else:
            log.warning("'%s' has a %s trigger, which dev/host does not run", fn.name, kind)
        return None

    def _warn_unsupported(self, fn: FunctionInfo) -> None:
        """Only queue and HTTP outputs are supported: say so rather than fail obscurely."""
        for binding in fn.inputs:
            log.warning(
                "'%s': %s input '%s' is not supported by dev/host (gets None)",
                fn.name,
                binding.type,
                binding.name,
            )
        for binding in fn.outputs:
            if binding.type not in ("queue", "http"):
                log.warning(
                    "'%s': %s output '%s' is not delivered by dev/host",
                    fn.name,
                    binding.type,
                    binding.name,
                )

    def _serve(self, app: HttpApp) -> None:
        self._server = make_server(
            self.host, self.port, app, threaded=True, request_handler=QuietRequestHandler
        )
        self.port = self._server.port
        if self.tls is not None:
            serve_tls(self._server, *self.tls)
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
