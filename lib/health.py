"""What /api/health reports: who we are and whether our storage answers."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

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
    return {
        "status": "ok" if reachable else "degraded",
        "version": app_version(),
        "storage": "reachable" if reachable else "unreachable",
    }
