"""The Functions app: one blueprint per module of functions/. The logic lives in lib/.

Kept cheap to import (the host imports it on every cold start): heavy libraries are imported
where they are used, and `bench/` measures this file's import time against bare azure.functions.
"""

import azure.functions as func

from functions import (
    cleanup,
    config_api,
    health,
    launch,
    reminders,
    scheduling,
    sms,
    sms_events,
    wellknown,
)
from lib.logs import configure_logging
from lib.settings import get_settings

configure_logging(get_settings().log_level)

# Anonymous at the host level on purpose: the EHR and patients' browsers cannot send function
# keys, and the config API checks Entra ID bearer tokens itself (lib/admin/auth.py).
app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

modules = (health, config_api, launch, scheduling, sms, sms_events, wellknown, cleanup, reminders)
for module in modules:
    app.register_functions(module.bp)
