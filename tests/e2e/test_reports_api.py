"""The reports API on the running app, over demo visits seeded through the visit-events queue
(the host's queue function applies them; the projection listens): roles, paging, CSV, summary,
thresholds with ETag and audit, and the errors a client can meet."""

from __future__ import annotations

import csv
import io

import pytest

from tests.e2e.reports_seed import report_range, seed_and_wait

EP = "rpt-demo-a"
DAYS, PER_DAY = 3, 4


def _range() -> dict[str, str]:
    return report_range(EP, DAYS)


@pytest.fixture(scope="module")
def seeded(app):
    visits = seed_and_wait(app, EP, DAYS, PER_DAY)
    assert len(visits) == DAYS * PER_DAY
    return visits


def test_a_reader_pages_through_the_visits_without_gaps(app, seeded):
    reader, seen, params = app.session("reader"), [], {**_range(), "pageSize": 5}
    while True:
        answer = reader.get(app.api("reports/visits"), params=params)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        seen += [v["visit"] for v in page["items"]]
        assert all(v["appointment_reference"] is None for v in page["items"])
        if page["continuation"] is None:
            break
        params["continuation"] = page["continuation"]
    assert sorted(seen) == sorted(v["visit"] for v in seeded) and len(set(seen)) == len(seen)


def test_the_csv_download_opens_in_a_spreadsheet_with_names_from_the_directory(app, seeded):
    answer = app.session("reader").get(
        app.api("reports/visits"), params={**_range(), "format": "csv"}
    )
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert answer.headers["Content-Disposition"].startswith('attachment; filename="visits-')
    assert answer.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(answer.content.decode("utf-8-sig"))))
    assert len(rows) == len(seeded)
    assert {r["organizer_name"] for r in rows} <= {"Dr. Ada Reyes", "Dr. Chidi Okafor",
                                                   "Dr. Maja Lindqvist"}  # fmt: skip
    assert {r["status"] for r in rows} <= {"completed", "no-show"}


def test_the_summary_adds_up_to_the_visits(app, seeded):
    answer = app.session("approver").get(app.api("reports/summary"), params=_range())
    assert answer.status_code == 200
    summary = answer.json()
    assert summary["total"]["visits"] == len(seeded)
    assert sum(i["visits"] for i in summary["items"]) == len(seeded)
    completed = [v for v in seeded if v["status"] == "completed"]
    assert summary["total"]["completed"] == len(completed)
    assert sum(b["visits"] for b in summary["lobby_wait"]) == len(completed)


def test_reports_need_a_token_and_a_role(app, seeded):
    assert app.session().get(app.api("reports/visits")).status_code == 401
    assert app.session().get(app.api("reports/summary")).status_code == 401
    anyone = app.session()
    anyone.headers["Authorization"] = f"Bearer {app.sandbox.entra.mint(roles=[], user='reader')}"
    assert anyone.get(app.api("reports/visits")).status_code == 403


def test_thresholds_change_only_with_the_admin_role_and_the_etag_and_are_audited(app, seeded):
    admin, reader = app.session("admin"), app.session("reader")
    current = reader.get(app.api("config/reports/thresholds"))
    assert current.status_code == 200 and current.json()["jitter_ms"] >= 0
    etag, body = current.headers["ETag"], {**current.json()}
    for key in ("updated_at", "updated_by"):
        body.pop(key)
    url = app.api("config/reports/thresholds")
    assert reader.put(url, json=body, headers={"If-Match": etag}).status_code == 403
    assert admin.put(url, json=body).status_code == 428
    assert admin.put(url, json=body, headers={"If-Match": 'W/"stale"'}).status_code == 412
    changed = admin.put(url, json={**body, "jitter_ms": 1}, headers={"If-Match": etag})
    assert changed.status_code == 200 and changed.json()["jitter_ms"] == 1
    strict = reader.get(app.api("reports/visits"), params=_range()).json()["items"]
    measured = [v for v in strict if v["call_quality"] != "unmeasured"]
    assert measured and all(v["call_quality"] == "poor" for v in measured)  # re-judged at once
    back = admin.put(url, json=body, headers={"If-Match": changed.headers["ETag"]})
    assert back.status_code == 200
    audit = admin.get(app.api("config/audit"), params={"action": "reports.thresholds"}).json()
    assert [e["after"]["jitter_ms"] for e in audit["items"][:2]] == [body["jitter_ms"], 1]


@pytest.mark.parametrize("raw", ["NaN", "Infinity", "-Infinity", "1e309"])
def test_a_threshold_that_is_no_finite_number_is_named_so(app, raw):
    """Python's JSON reader takes NaN, Infinity and 1e309 (as inf): each is refused as what it
    is, not as "less than or equal to 1" (a NaN is not more than anything)."""
    admin, url = app.session("admin"), app.api("config/reports/thresholds")
    etag = admin.get(url).headers["ETag"]
    answer = admin.put(url, data=f'{{"packet_loss": {raw}}}',
                       headers={"If-Match": etag, "Content-Type": "application/json"})  # fmt: skip
    assert answer.status_code == 422, answer.text[:300]
    problem = answer.json()
    assert problem["code"] == "REQ-VALIDATION"
    assert problem["errors"][0]["field"] == "packet_loss"
    assert problem["errors"][0]["type"] == "finite_number"


def test_the_appointment_reference_column_is_the_admins(app, seeded):
    items = app.session("admin").get(app.api("reports/visits"), params=_range()).json()["items"]
    kept = [v["appointment_reference"] for v in items if v["appointment_reference"]]
    assert kept and all(r.startswith("Appointment/demo-") for r in kept)  # yesterday's visits


def test_a_continuation_from_another_range_reads_nothing_outside_this_one(app, seeded):
    """A token resuming at a seeded day, sent with a range of 2020: refused, not the seeded
    visits in a report of 2020."""
    from datetime import date

    from lib.reports.ranges import Position

    day = date.fromisoformat(seeded[0]["day"])
    token = Position(day, EP, "00000000T000000-00000000").token()
    params = {"endpoint": EP, "from": "2020-01-01", "to": "2020-01-31", "continuation": token}
    answer = app.session("reader").get(app.api("reports/visits"), params=params)
    assert answer.status_code == 400, answer.text[:300]
    assert answer.json()["code"] == "RPT-BAD-CONTINUATION"


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"continuation": "bm90LWEtdG9rZW4tYXQtYWxs"}, "RPT-BAD-CONTINUATION"),
        ({"from": "2026-03-09", "to": "2026-03-01"}, "RPT-BAD-RANGE"),
        ({"preset": "7d", "from": "2026-03-01"}, "RPT-BAD-RANGE"),
        ({"format": "xlsx"}, "CFG-BAD-QUERY"),
        ({"pageSize": "0"}, "CFG-BAD-QUERY"),
    ],
)
def test_what_a_client_gets_wrong_is_named(app, params, code):
    answer = app.session("reader").get(app.api("reports/visits"), params=params)
    assert answer.status_code == 400 and answer.json()["code"] == code
