"""Schemathesis against the running config API: no 5xx, every answer matches the OpenAPI file."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from lib.admin.api import ROUTES

ROUTE_OPERATIONS = ROUTES


def test_config_api_conforms_to_its_openapi(app, tmp_path: Path):
    token = app.token("admin")
    cmd = [
        sys.executable, "-m", "schemathesis.cli", "run", app.api("openapi.json"),
        "--header", f"Authorization: Bearer {token}",
        "--checks", "not_a_server_error,response_schema_conformance",
        "--max-examples", "12",
        "--phases", "examples,fuzzing",
        "--seed", "7",
        "--request-timeout", "30",
    ]  # fmt: skip
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "", "NO_COLOR": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    report = result.stdout[-6000:] + result.stderr[-3000:]
    assert result.returncode == 0, report
    # It must have really run: every operation tested and a good number of generated cases.
    ran = re.search(r"(\d+) generated, (\d+) passed", result.stdout)
    assert ran and int(ran.group(1)) >= 50 and ran.group(1) == ran.group(2), report
    assert re.search(r"Tested: (\d+)", result.stdout).group(1) == str(len(ROUTE_OPERATIONS)), report
