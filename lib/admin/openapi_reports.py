"""The reports part of the OpenAPI document: answer schemas, query parameters, and which errors
each reports route can answer (lib/admin/reports_api.py)."""

from __future__ import annotations

from typing import Any

from lib.admin.reports_api import PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX
from lib.reports.ranges import CONTINUATION, DAY, DEPARTMENT, DEPARTMENT_MAX, MAX_DAYS, SLUG

THRESHOLDS = "config/reports/thresholds"
REQUIRED = {("PUT", THRESHOLDS)}  # If-Match always: the defaults have an ETag too
_NUM = {"type": ["number", "null"]}
_TEXT = {"type": ["string", "null"]}
_TIME = {"type": ["string", "null"], "format": "date-time"}
_INT = {"type": "integer"}
_RATE = {"type": ["number", "null"], "minimum": 0, "maximum": 1}

_RANGE = [
    {
        "name": "preset",
        "schema": {"type": "string", "enum": ["7d", "30d", "90d"]},
        "description": "The last 7, 30 or 90 days up to today (UTC); not with from / to. "
        "Default: 30d.",
    },
    {
        "name": "from",
        "schema": {"type": "string", "pattern": DAY, "format": "date"},
        "description": f"First clinic-local day (inclusive); at most {MAX_DAYS} days with `to`.",
    },
    {
        "name": "to",
        "schema": {"type": "string", "pattern": DAY, "format": "date"},
        "description": "Last clinic-local day (inclusive; default today).",
    },
    {
        "name": "endpoint",
        "schema": {"type": "string", "pattern": SLUG},
        "description": "Only this endpoint's visits.",
    },
    {
        "name": "department",
        "schema": {"type": "string", "pattern": DEPARTMENT, "maxLength": DEPARTMENT_MAX},
        "description": "Only visits of this department label (exact).",
    },
]
QUERY: dict[tuple[str, str], list[dict[str, Any]]] = {
    ("GET", "reports/visits"): [
        *_RANGE,
        {"name": "format", "schema": {"type": "string", "enum": ["json", "csv"]},
         "description": "csv: every visit of the range in one CSV download (no paging)."},
        {"name": "pageSize", "schema": {"type": "integer", "minimum": 1,
                                        "maximum": PAGE_SIZE_MAX, "default": PAGE_SIZE_DEFAULT}},
        {"name": "continuation", "schema": {"type": "string", "pattern": CONTINUATION},
         "description": "The `continuation` of the previous page."},
    ],
    ("GET", "reports/summary"): _RANGE,
}  # fmt: skip

VISIT = {
    "type": "object",
    "description": "One visit; every column is described in docs/reports.md.",
    "properties": {
        "visit": {"type": "string"}, "endpoint": {"type": "string"},
        "department": _TEXT, "day": {"type": "string", "format": "date"},
        "time_zone": {"type": "string"}, "scheduled_at": _TIME, "start_utc": _TIME,
        "start_local": _TIME, "end_utc": _TIME, "duration_seconds": _NUM,
        "organizer_oid": _TEXT, "organizer_name": _TEXT, "organizer_email": _TEXT,
        "attendees": _INT, "lobby_wait_seconds": _NUM,
        "status": {"type": "string", "enum": ["completed", "no-show", "cancelled", "open"]},
        "texts_sent": _INT,
        "appointment_reference": {**_TEXT, "description": "Admins only, while it is kept."},
        "call_quality": {"type": "string", "enum": ["good", "poor", "unmeasured"]},
        "poor_streams": {"type": "array", "items": {"type": "string"}},
        "packet_loss_avg": _RATE, "packet_loss_max": _RATE,
        "jitter_ms_avg": _NUM, "jitter_ms_max": _NUM,
        "round_trip_ms_avg": _NUM, "round_trip_ms_max": _NUM,
    },
}  # fmt: skip
TALLY = {
    "visits": _INT, "completed": _INT, "no_shows": _INT, "cancelled": _INT, "open": _INT,
    "average_duration_seconds": _NUM, "average_lobby_wait_seconds": _NUM,
    "no_show_rate": _RATE, "texts_sent": _INT, "measured_calls": _INT, "poor_calls": _INT,
    "poor_call_share": _RATE,
}  # fmt: skip
_DATE = {"type": "string", "format": "date"}


def schemas(defs: dict[str, Any]) -> dict[str, Any]:
    thresholds = defs.pop("ThresholdFields")
    stored = {
        "type": "object",
        "title": "QualityThresholds",
        "required": list(thresholds["properties"]),
        "properties": {
            **thresholds["properties"],
            "updated_at": _TIME,
            "updated_by": {**_TEXT, "description": "Who changed them last (none: defaults)."},
        },
    }
    return {
        "ThresholdFields": thresholds,
        "QualityThresholds": stored,
        "VisitReportPage": {
            "type": "object",
            "required": ["from", "to", "items", "continuation"],
            "properties": {
                "from": _DATE,
                "to": _DATE,
                "items": {"type": "array", "items": VISIT},
                "continuation": {"type": ["string", "null"], "pattern": CONTINUATION},
            },
        },
        "ReportSummary": {
            "type": "object",
            "required": ["from", "to", "items", "total", "lobby_wait"],
            "properties": {
                "from": _DATE,
                "to": _DATE,
                "items": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"day": _DATE, "department": _TEXT, **TALLY},
                    },
                },
                "total": {"type": "object", "properties": TALLY},
                "lobby_wait": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"bucket": {"type": "string"}, "visits": _INT},
                    },
                },
            },
        },
    }


def error_statuses(route: Any) -> set[int]:
    if (route.method, route.path) in REQUIRED:
        return {412, 428}
    return set()


def answer_extras(route: Any, answer: dict[str, Any]) -> dict[str, Any]:
    if route.answer == "VisitReportPage":
        answer["content"]["text/csv"] = {"schema": {"type": "string"}}
        answer["headers"] = {"Content-Disposition": {
            "required": False, "description": "With format=csv: the file's name.",
            "schema": {"type": "string"}}}  # fmt: skip
    if route.answer == "QualityThresholds":
        answer["headers"] = {"ETag": {"$ref": "#/components/headers/ETag"}}
    return answer
