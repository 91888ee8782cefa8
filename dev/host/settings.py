"""Settings as Core Tools reads them: local.settings.json (the environment wins), `%NAME%`
expressions in binding attributes, and what the host reads from host.json."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The real host polls again after 100 ms when it found messages and doubles the wait up to
# maxPollingInterval when the queue is empty.
MIN_POLL_SECONDS = 0.1


def read_local_settings(path: Path) -> dict[str, str]:
    """The "Values" of local.settings.json as strings; {} when the file does not exist."""
    if not path.is_file():
        return {}
    doc = json.loads(path.read_text(encoding="utf-8"))
    if doc.get("IsEncrypted"):
        raise ValueError(f"{path} is encrypted; dev/host only reads plain settings")
    values = doc.get("Values") or {}
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}


def local_http_port(path: Path) -> int | None:
    """Host.LocalHttpPort from local.settings.json, which Core Tools uses as the default port."""
    if not path.is_file():
        return None
    port = (json.loads(path.read_text(encoding="utf-8")).get("Host") or {}).get("LocalHttpPort")
    return int(port) if port else None


def apply_settings(
    values: Mapping[str, str], environ: MutableMapping[str, str] | None = None
) -> list[str]:
    """Copy settings into the environment, except those already set: the environment wins,
    as with Core Tools, so tests and shells can override a setting. Returns the names set."""
    environ = os.environ if environ is None else environ
    applied = [name for name in values if name not in environ]
    for name in applied:
        environ[name] = values[name]
    return applied


def resolve_setting_expressions(text: str) -> str:
    """Replace `%NAME%` with the app setting NAME, as the host does in binding attributes."""

    def setting(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise LookupError(f"'%{name}%' does not resolve to a value (setting {name} unset)")
        return os.environ[name]

    return re.sub(r"%([^%]+)%", setting, text)


def parse_timespan(value: str) -> float:
    """Seconds in a .NET TimeSpan string as host.json uses: `hh:mm:ss[.fff]`, `d.hh:mm:ss`."""
    match = re.fullmatch(r"(?:(\d+)\.)?(\d{1,2}):(\d{2})(?::(\d{2})(\.\d+)?)?", value.strip())
    if not match:
        raise ValueError(f"'{value}' is not a TimeSpan like 00:00:30")
    days, hours, minutes, seconds, fraction = match.groups()
    return (
        int(days or 0) * 86400
        + int(hours) * 3600
        + int(minutes) * 60
        + int(seconds or 0)
        + float(fraction or 0)
    )


@dataclass(frozen=True)
class QueueOptions:
    """host.json extensions.queues, with the real host's defaults."""

    batch_size: int = 16
    visibility_timeout: float = 0.0
    max_dequeue_count: int = 5
    max_polling_interval: float = 60.0
    message_encoding: str = "base64"

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> QueueOptions:
        encoding = str(doc.get("messageEncoding", cls.message_encoding)).lower()
        if encoding not in ("base64", "none"):
            raise ValueError(f"host.json messageEncoding '{encoding}' is not base64 or none")
        return cls(
            # The queue service hands out at most 32 messages per request.
            batch_size=max(1, min(32, int(doc.get("batchSize", cls.batch_size)))),
            visibility_timeout=parse_timespan(doc.get("visibilityTimeout", "00:00:00")),
            max_dequeue_count=int(doc.get("maxDequeueCount", cls.max_dequeue_count)),
            max_polling_interval=max(
                MIN_POLL_SECONDS, parse_timespan(doc.get("maxPollingInterval", "00:01:00"))
            ),
            message_encoding=encoding,
        )


@dataclass(frozen=True)
class HostOptions:
    """What dev/host reads from host.json."""

    route_prefix: str = "api"
    queues: QueueOptions = field(default_factory=QueueOptions)
    functions: tuple[str, ...] | None = None  # host.json "functions": only these run

    @classmethod
    def load(cls, app_dir: Path) -> HostOptions:
        path = app_dir / "host.json"
        doc = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        extensions = doc.get("extensions") or {}
        prefix = (extensions.get("http") or {}).get("routePrefix", "api")
        only = doc.get("functions")
        return cls(
            route_prefix=prefix.strip("/"),
            queues=QueueOptions.from_json(extensions.get("queues") or {}),
            functions=tuple(only) if only is not None else None,
        )
