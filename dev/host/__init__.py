"""A local Azure Functions host for Python v2-model apps, for machines without Core Tools.

    python -m dev.host [--app-dir DIR] [--port 7071] [--host 127.0.0.1]
                       [--settings local.settings.json] [--no-timers]

It reads the same files as `func start` (function_app.py, host.json, local.settings.json) and
knows no function by name: it asks the app what it registered and serves HTTP triggers with
Werkzeug, fires timer triggers on their NCRONTAB schedules and polls storage queues (Azurite)
for queue triggers, with the real host's retry and poison-queue rules. Queue output bindings
are sent after the function returns, whatever its trigger.

Where it differs from the real host, it says so in its docstrings; see LocalHost for the API.

The package, by the seams of the real host:

    settings.py     local.settings.json (like Core Tools), %NAME% expressions, host.json
    functions.py    function indexing: load function_app.py, ask the app what it registered
    routes.py       route templates compiled and ordered as ASP.NET routing does
    serving.py      the WSGI app: request -> function -> response
    invocation.py   calling a function: arguments, context, async, queue outputs
    timers.py       timer triggers (ncrontab.py: the NCRONTAB parser)
    queues.py       queue triggers and outputs on Azurite, with the poison queue
    local_host.py   LocalHost, which puts them together; __main__.py the command line
"""

from dev.host.local_host import DEFAULT_PORT, LocalHost
from dev.host.routes import RouteTemplate
from dev.host.settings import HostOptions, QueueOptions

__all__ = ["DEFAULT_PORT", "HostOptions", "LocalHost", "QueueOptions", "RouteTemplate"]
