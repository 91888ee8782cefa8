"""The reports' pure parts: CSV cells and formula injection, verdicts, ranges, tokens."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime

import pytest

from lib.reports.export import COLUMNS, cell, csv_chunks
from lib.reports.ranges import Position, Range, parse_range
from lib.reports.rows import Stream, VisitReport
from lib.reports.verdicts import GOOD, POOR, UNMEASURED, ThresholdFields, judge, reasons
from lib.web.errors import AppError


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+1 555", "'+1 555"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        # what a spreadsheet still runs after folding full-width forms and skipping blanks
        (" =1+1", "' =1+1"),
        ("\u00a0\u3000=1+1", "'\u00a0\u3000=1+1"),
        ("\n=cmd", "'\n=cmd"),
        ('\uff1dHYPERLINK("http://x")', '\'\uff1dHYPERLINK("http://x")'),
        ("\uff0b1", "'\uff0b1"),
        ("\uff20SUM(A1)", "'\uff20SUM(A1)"),
        ("|cmd", "'|cmd"),
        ("\uff5ccmd", "'\uff5ccmd"),
        ("Dr. Ada Reyes", "Dr. Ada Reyes"),
        ("a=b", "a=b"),
        ("Cardiology", "Cardiology"),
        (-3, "-3"),  # our own numbers stay numbers
        (1.5, "1.5"),
        (None, ""),
        (["a", "b"], "a; b"),
    ],
)
def test_cells_that_a_spreadsheet_would_run_are_kept_as_text(value, written):
    assert cell(value) == written


def test_the_csv_escapes_quotes_commas_and_line_breaks_and_starts_with_a_bom():
    nasty = {
        "visit": "v1",
        "department": 'Cardio, "East"\nwing',
        "organizer_name": "=cmd|' /C calc'!A0",
    }
    data = b"".join(csv_chunks([nasty]))
    assert data.startswith("\ufeff".encode())
    text = data.decode("utf-8").removeprefix("\ufeff")
    assert "\r\n" in text
    header, row = list(csv.reader(io.StringIO(text, newline="")))
    assert tuple(header) == COLUMNS
    got = dict(zip(header, row, strict=True))
    assert got["department"] == 'Cardio, "East"\nwing'
    assert got["organizer_name"] == "'=cmd|' /C calc'!A0"


def test_the_csv_comes_in_chunks_not_all_at_once():
    many = ({"visit": f"v{i}", "department": "x" * 200} for i in range(2000))
    chunks = list(csv_chunks(many))
    assert len(chunks) > 5 and max(len(c) for c in chunks) < 64 * 1024


def _row(*streams: Stream, measured: bool = True) -> VisitReport:
    return VisitReport(
        partition_key="clinic-a|2026-03-02", row_key="20260302T150000-vkabcdefgh",
        endpoint_id="clinic-a", visit_key="vkabcdefgh", time_zone="UTC",
        quality_measured=measured, streams=list(streams), updated_at=datetime.now(UTC),
    )  # fmt: skip


AUDIO = Stream(media="main-audio", direction="callerToCallee", avg_loss=0.01, avg_jitter=10,
               avg_rtt=100)  # fmt: skip


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"avg_rtt": 501}, ["round trip"]),
        ({"avg_rtt": 500}, []),  # "over 500 ms": 500 itself is good
        ({"avg_loss": 0.11}, ["packet loss"]),
        ({"avg_loss": 0.1}, []),
        ({"avg_jitter": 31}, ["jitter"]),
        ({"avg_jitter": 30}, []),
        ({"avg_jitter": 31, "avg_rtt": 900}, ["round trip", "jitter"]),
    ],
)
def test_microsofts_audio_thresholds_are_the_defaults(change, why):
    assert reasons(AUDIO.model_copy(update=change), ThresholdFields()) == why


def test_video_is_not_judged_unless_the_admin_lists_it():
    video = Stream(media="main-video", direction="callerToCallee", avg_jitter=90)
    assert judge(_row(AUDIO, video), ThresholdFields()).verdict == GOOD
    assert judge(_row(AUDIO, video), ThresholdFields(media=["audio", "video"])).verdict == POOR


def test_a_call_without_a_record_is_unmeasured_and_worst_figures_are_the_maxima():
    assert judge(_row(measured=False), ThresholdFields()).verdict == UNMEASURED
    two = judge(_row(AUDIO, AUDIO.model_copy(update={"avg_jitter": 20, "max_jitter": 70})),
                ThresholdFields())  # fmt: skip
    assert (two.avg_jitter, two.max_jitter) == (15, 70)


def test_thresholds_refuse_what_is_not_a_threshold():
    with pytest.raises(ValueError):
        ThresholdFields(packet_loss=2)
    with pytest.raises(ValueError):
        ThresholdFields(media=[])


TODAY = date(2026, 12, 1)


def test_presets_end_today_and_ranges_are_checked():
    assert parse_range({"preset": "7d"}, TODAY).first == date(2026, 11, 25)
    assert parse_range({}, TODAY).first == date(2026, 11, 2)  # 30 days by default
    got = parse_range({"from": "2026-03-01", "to": "2026-03-09", "endpoint": "clinic-a"}, TODAY)
    assert (got.first, got.last, got.endpoint) == (date(2026, 3, 1), date(2026, 3, 9), "clinic-a")
    for bad in (
        {"preset": "7d", "from": "2026-01-01"},
        {"from": "2026-03-09", "to": "2026-03-01"},
        {"from": "2020-01-01", "to": "2026-01-01"},
        {"from": "March"},
        {"preset": "1y"},
    ):
        with pytest.raises(AppError):
            parse_range(bad, TODAY)


MARCH = Range(date(2026, 3, 1), date(2026, 3, 31))


def test_a_continuation_token_round_trips_and_a_forged_one_is_refused():
    where = Position(date(2026, 3, 2), "clinic-a", "20260302T150200-vkabcdefgh")
    assert Position.parse(where.token(), MARCH) == where
    for forged in ("nonsense!", "djF8MjAyNi0wMy0wMnxjbGluaWMtYXw", where.token()[:-4] + "AAAA"):
        with pytest.raises(AppError) as err:
            Position.parse(forged, MARCH)
        assert err.value.code == "RPT-BAD-CONTINUATION"


@pytest.mark.parametrize(
    "scope",
    [
        Range(date(2026, 4, 1), date(2026, 4, 30)),  # a later range: it would resume in March
        Range(date(2026, 2, 1), date(2026, 2, 28)),  # an earlier one
        Range(date(2026, 3, 3), date(2026, 3, 31)),  # its day is just before this range
        Range(MARCH.first, MARCH.last, "clinic-b"),  # another endpoint's report
    ],
)
def test_a_token_of_another_report_is_refused(scope):
    """A token names the partition it resumes in; from another report's range or endpoint it
    would read rows outside this one (days the reader did not ask for)."""
    token = Position(date(2026, 3, 2), "clinic-a", "20260302T150200-vkabcdefgh").token()
    with pytest.raises(AppError) as err:
        Position.parse(token, scope)
    assert err.value.code == "RPT-BAD-CONTINUATION"
