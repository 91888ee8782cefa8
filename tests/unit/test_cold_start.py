"""Cold start stays cheap, and settings are read on first use with a coded answer when wrong."""

from __future__ import annotations

import json
import subprocess
import sys

import azure.functions as func

from dev.procs import ROOT
from dev.stack import settings_env

# What the host's import of function_app may not pull in: each is tens of milliseconds, needed
# only once a function runs (and the warmup function loads them before an instance's traffic).
HEAVY = ("pydantic", "azure.data.tables", "azure.storage.queue", "msal", "cryptography", "jwt",
         "requests", "jinja2", "importlib.metadata")  # fmt: skip


def test_importing_function_app_leaves_the_heavy_libraries_for_first_use():
    probe = f"import sys, json, function_app; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"  # noqa: E501
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env={**settings_env(), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_a_missing_setting_is_a_coded_503_naming_nothing_secret(monkeypatch, caplog):
    import lib.settings
    from functions._http import handler

    def broken():
        raise lib.settings.SettingsError("Setting CONNECTOR_HASH_KEY is missing.")

    monkeypatch.setattr(lib.settings, "get_settings", broken)

    @handler()
    def needs_settings(request):
        return lib.settings.get_settings()

    req = func.HttpRequest("GET", "http://127.0.0.1/api/x", headers={}, body=b"")
    resp = needs_settings(req)
    assert resp.status_code == 503
    assert json.loads(resp.get_body())["code"] == "SRV-NOT-CONFIGURED"
    assert resp.headers["Retry-After"] == "300"
    assert "CONNECTOR_HASH_KEY is missing" in caplog.text
