"""What /api/health reports: who we are, whether our storage answers, and which outside
dependencies (the EHRs, Microsoft, Communication Services) failed their last call in this
process in the last five minutes. Only storage makes the answer 503: an EHR being down is not a
reason for the platform to take this instance out of rotation."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from lib.net.budget import DEPENDENCY_CODES, recent_failures

if TYPE_CHECKING:  # the settings model is built on first use, not at cold start
    from lib.settings import Settings


def app_version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # ~10 ms: not at cold start

    try:
        return version("ehr-virtual-visit-connector")
    except PackageNotFoundError:
        # Not installed as a package (the usual case for a Functions app): read pyproject.
        pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
        for line in pyproject.read_text().splitlines() if pyproject.exists() else []:
            if line.startswith("version"):
                return line.split("=", 1)[1].strip().strip('"')
        return "unknown"


def health_report(settings: Settings) -> dict:
    # on first use: the storage package pulls in pydantic, which cold start does without
    from lib.storage.account import storage_reachable

    reachable = storage_reachable(settings)
    failing = recent_failures()
    return {
        "status": "ok" if reachable else "degraded",
        "version": app_version(),
        "storage": "reachable" if reachable else "unreachable",
        "dependencies": {
            name: f"failing: {failing[name]}" if name in failing else "ok"
            for name in DEPENDENCY_CODES
            if name != "storage"
        },
    }
