"""The visits report as CSV, streamed: rows are written as they are read, in chunks.

Opens cleanly in a spreadsheet: UTF-8 with a byte order mark (Excel reads the encoding from it),
CRLF line ends and RFC 4180 quoting (the csv module), ISO 8601 times. A text cell that a
spreadsheet could run as a formula is kept as text with a leading apostrophe (OWASP "CSV
injection"): department labels, directory names and media labels come from outside. A cell runs
when it starts with = + - @ (OWASP's list), a tab or a line break, or `|` (a DDE link's
separator, `=cmd|' /C calc'!A0`); and it is judged as a spreadsheet may read it, after leading
blanks (import options trim them) and with full-width forms folded (NFKC: U+FF1D is `=`).
"""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Iterable, Iterator
from typing import Any

BOM = "\ufeff"
CHUNK = 32 * 1024  # bytes handed on at a time
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "|")
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
    return "'" + text if _runs(text) else text


def _runs(text: str) -> bool:
    """Whether a spreadsheet could take `text` for a formula: by its first character, or its
    first after blanks once full-width forms are folded (NFKC: U+FF1D is `=`)."""
    if text.startswith(FORMULA_STARTS):
        return True
    first = text.lstrip()[:1]  # the blanks skipped, however many
    return unicodedata.normalize("NFKC", first).startswith(FORMULA_STARTS)


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
