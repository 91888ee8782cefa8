"""Structured logging (one JSON object per line) with redaction.

The redaction filter sits on the *handlers*, not on a logger: a logger's filters do not see records
that propagate up from child loggers, so a filter on the root logger would miss almost everything.
It rewrites the message, the exception text and any `extra` fields, removing tokens, authorization
headers, OAuth parameters, phone numbers and personal fields before anything is written anywhere.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import traceback
from datetime import UTC, datetime
from typing import Any

REDACTED = "[redacted]"

# Field names whose values never reach a log, in `extra` dicts or JSON bodies.
SECRET_FIELDS = {
    "access_token", "id_token", "refresh_token", "code", "launch", "state", "code_verifier",
    "client_secret", "client_assertion", "assertion", "password", "token", "authorization",
    "sig", "signature", "nonce", "cookie", "set-cookie", "secret", "key", "hash_key",
}  # fmt: skip
PERSONAL_FIELDS = {
    "name", "given", "family", "birthdate", "birth_date", "phone", "phone_number", "telecom",
    "address", "email", "mrn", "patient_name", "username", "preferred_username", "to", "from",
}  # fmt: skip

_SENSITIVE_PARAM_NAMES = "|".join(sorted(SECRET_FIELDS - {"key"}, key=len, reverse=True))
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # PEM blocks (keys, certificates pasted into a setting or an error)
    (re.compile(r"-----BEGIN [A-Z0-9 ]+-----.*?(?:-----END [A-Z0-9 ]+-----|$)", re.S), "[pem]"),
    # Authorization: Bearer xxx / Basic xxx (header lines and repr'd dicts)
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 " + REDACTED),
    # any JWT / JWS / JWE compact form
    (re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*(\.[A-Za-z0-9_-]*)*"),
     "[jwt]"),
    # the same, URL-encoded once more (a URL inside a URL, a logged redirect target)
    (re.compile(r"(?i)(?<![a-z])(bearer|basic)(?:%20|\+)[A-Za-z0-9._~%+/=-]{8,}"),
     r"\1 " + REDACTED),
    (re.compile(
        rf"(?i)(?:(?<=%3F)|(?<=%26)|(?<=%22)|(?<![A-Za-z0-9_%]))({_SENSITIVE_PARAM_NAMES})"
        rf"(%3D|%22%3A(?:%20)?%22)((?:(?!%26|%22)[^&\s\"'])+)"
     ), r"\1\2" + REDACTED),
    # name=value in query strings and forms; "name": "value" in JSON text
    (re.compile(rf"(?i)\b({_SENSITIVE_PARAM_NAMES})=([^&\s\"']+)"), r"\1=" + REDACTED),
    (re.compile(rf"(?i)([\"'](?:{_SENSITIVE_PARAM_NAMES})[\"']\s*:\s*)[\"'][^\"']*[\"']"),
     r'\1"' + REDACTED + '"'),
    # storage / ACS keys inside connection strings
    (re.compile(r"(?i)(AccountKey|SharedAccessKey|accesskey|sig)=([^;&\s]+)"), r"\1=" + REDACTED),
    # phone numbers: E.164 and common national formats
    (re.compile(r"(?<![\w/])\+\d[\d ().-]{7,17}\d"), "[phone]"),
    (re.compile(r"(?<![\w/-])\(?\d{3}\)?[ .-]\d{3}[ .-]\d{4}(?![\w-])"), "[phone]"),
    # North American numbers written bare (NXX NXX XXXX, optionally with the leading 1): the
    # area and exchange codes start with 2-9, so epoch seconds (1...) and most ids are kept.
    (re.compile(r"(?<![\w/.:-])1?[2-9]\d{2}[2-9]\d{6}(?![\w-])"), "[phone]"),
    # HL7 v2 XTN components (PID-13/14: ...^country^area^local), were a segment ever logged
    (re.compile(r"(?<![\w.])(?:\d{1,3}\^)?\d{3}\^\d{3}[ .-]?\d{4}(?![\w-])"), "[phone]"),
]  # fmt: skip

# The Azure SDKs log every HTTP request (URLs with SAS / query values) at INFO: kept to warnings.
NOISY_LOGGERS = ("azure", "azure.core.pipeline.policies.http_logging_policy", "msal", "urllib3")

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


def redact_text(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact_value(key: str | None, value: Any) -> Any:
    """Redact a structured value: whole fields by name, strings by pattern."""
    if key is not None and key.lower() in SECRET_FIELDS | PERSONAL_FIELDS:
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [redact_value(None, v) for v in value]
    return value


class RedactionFilter(logging.Filter):
    """Rewrites each record in place; never drops one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_redacted", False):
            return True  # several handlers share the record: once is enough
        try:
            message = record.getMessage()
        except Exception:  # a bad %-format must not lose the record
            message = f"{record.msg!r} {record.args!r}"
        record.msg, record.args = redact_text(message), None
        if record.exc_info:
            text = "".join(traceback.format_exception(*record.exc_info))
            record.exc_text, record.exc_info = redact_text(text), None
        for attr in set(vars(record)) - _STANDARD_ATTRS:
            setattr(record, attr, redact_value(attr, getattr(record, attr)))
        record._redacted = True
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for attr in set(vars(record)) - _STANDARD_ATTRS - {"_redacted"}:
            entry[attr] = getattr(record, attr)
        if record.exc_text:
            entry["exception"] = record.exc_text
        elif record.exc_info:
            entry["exception"] = redact_text("".join(traceback.format_exception(*record.exc_info)))
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(level: str = "INFO", *, stream: Any = None) -> None:
    """Put the redaction filter on every root handler; add a JSON handler when there is none.

    In Azure the Python worker has already attached its handler (which ships to Application
    Insights): it gets the filter too. Locally and in tests we add a JSON stream handler.
    """
    root = logging.getLogger()
    root.setLevel(level)
    if not root.handlers or stream is not None:
        handler = logging.StreamHandler(stream or sys.stderr)
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
    for handler in root.handlers:
        if not any(isinstance(f, RedactionFilter) for f in handler.filters):
            handler.addFilter(RedactionFilter())
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)
