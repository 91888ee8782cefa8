"""The visits report as CSV, streamed: rows are written as they are read, in chunks.

Opens cleanly in a spreadsheet: UTF-8 with a byte order mark (Excel reads the encoding from it),
CRLF line ends and RFC 4180 quoting (the csv module), ISO 8601 times. A text cell that a
spreadsheet would run as a formula (starting with = + - @, a tab or a carriage return) is kept as
text with a leading apostrophe (OWASP "CSV injection"): department labels and directory names
come from outside.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from typing import Any

BOM = "\ufeff"
CHUNK = 32 * 1024  # bytes handed on at a time
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
COLUMNS = (
    "visit", "endpoint", "department", "day", "time_zone", "scheduled_at", "start_utc",
    "start_local", "end_utc", "duration_seconds", "organizer_oid", "organizer_name",
    "organizer_email", "attendees", "lobby_wait_seconds", "status", "texts_sent",
    "appointment_reference", "call_quality", "poor_streams", "packet_loss_avg",
    "packet_loss_max", "jitter_ms_avg", "jitter_ms_max", "round_trip_ms_avg", "round_trip_ms_max",
)  # fmt: skip


def cell(value: Any) -> str:
    """One value as spreadsheet-safe text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, list | tuple):
        value = "; ".join(str(v) for v in value)
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_chunks(
    views: Iterable[dict[str, Any]], columns: tuple[str, ...] = COLUMNS
) -> Iterator[bytes]:
    """The CSV of `views` (dicts by column), as UTF-8 byte chunks of about CHUNK bytes."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    buffer.write(BOM)
    writer.writerow(columns)
    for view in views:
        writer.writerow([cell(view.get(c)) for c in columns])
        if buffer.tell() >= CHUNK:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()
