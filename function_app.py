"""The Functions app: one blueprint per module of functions/. The logic lives in lib/.

Kept cheap to import (the host imports it on every cold start): heavy libraries are imported
where they are used, and `bench/` measures this file's import time against bare azure.functions.
"""

import azure.functions as func

from functions import (
    cleanup,
    config_api,
    graph_notifications,
    graph_tasks,
    health,
    launch,
    portal,
    reminders,
    scheduling,
    sms,
    sms_events,
    visit_events,
    warmup,
    wellknown,
    writeback,
)
from lib.logs import configure_logging

# The level comes with the settings, read on first use or by the warmup function: the settings
# model (pydantic) is not needed to start. Telemetry starts with the services (lib/bootstrap.py).
configure_logging()

# Anonymous at the host level on purpose: the EHR and patients' browsers cannot send function
# keys, and the config API checks Entra ID bearer tokens itself (lib/admin/auth.py).
app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

modules = (
    health, config_api, graph_notifications, launch, portal, scheduling, sms, sms_events, wellknown,
)  # fmt: skip
timers_and_queues = (cleanup, graph_tasks, reminders, visit_events, warmup, writeback)
for module in (*modules, *timers_and_queues):
    app.register_functions(module.bp)
