"""dev/settings.py: local.settings.json follows the sample without losing a developer's values."""

from __future__ import annotations

import json
from pathlib import Path

from dev.settings import SAMPLE, sync


def write(path: Path, values: dict[str, str]) -> Path:
    path.write_text(json.dumps({"IsEncrypted": False, "Values": values}))
    return path


def test_an_old_http_public_url_moves_to_https_and_a_chosen_one_stays(tmp_path: Path) -> None:
    keys = {"CONNECTOR_SIGNING_KEYS": "-----BEGIN PRIVATE KEY-----x-----END PRIVATE KEY-----"}
    old = write(tmp_path / "old.json", {"CONNECTOR_PUBLIC_URL": "http://127.0.0.1:7071", **keys})
    assert "CONNECTOR_PUBLIC_URL (moved)" in sync(old, SAMPLE)
    assert json.loads(old.read_text())["Values"]["CONNECTOR_PUBLIC_URL"] == "https://127.0.0.1:7071"
    mine = write(tmp_path / "mine.json", {"CONNECTOR_PUBLIC_URL": "http://127.0.0.1:9000", **keys})
    sync(mine, SAMPLE)
    assert json.loads(mine.read_text())["Values"]["CONNECTOR_PUBLIC_URL"] == "http://127.0.0.1:9000"
