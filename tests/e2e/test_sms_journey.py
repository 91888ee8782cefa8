"""Issue 9's "Done when", walked through as a newcomer does after `make run` (the same setup:
dev/seed.py `seed_sms`, the sandbox EHR's schedule buttons, the phone): the clinician has
launched the visit once; "Send scheduling message" books it and the confirmation arrives after
the next timer run; its link opens the lobby and the clinician's page shows the patient; "Send
link by SMS" sends one text; STOP holds the next reminder back; after START, a cancellation
sends "cancelled" and the last reminder is not sent.

The timer runs in-process: the host's own runs once a minute, and a reminder's time is minutes
away, so the later runs use a clock set to just after each reminder is due."""

from __future__ import annotations

import datetime as dt
import re
import time
from urllib.parse import urlsplit

from dev.browser import Browser
from dev.sandbox.ehr.data import PATIENTS
from dev.sandbox.ehr.interface import Booking
from lib.bootstrap import build
from lib.settings import load_settings
from lib.sms.sending import OptOuts, Texting
from lib.visits.keys import visit_key
from tests.e2e.test_launch import launch_url
from tests.e2e.test_schedule_buttons import engine, press  # noqa: F401 (fixture)

VENDOR, CLINICIAN, SLOT, ENDPOINT = "epic", "lindqvist", "lindqvist-1400", "epic-sandbox-test"


def timer(app, at: dt.datetime | None = None) -> Texting:
    """The reminders timer as the app builds it, with its clock at ``at`` (default: now)."""
    svc = build(load_settings(app.env))
    clock = (lambda: at) if at else (lambda: dt.datetime.now(dt.UTC))
    return Texting(svc.store, svc.sms, svc.visits, svc.sealed, svc.texting._sender,
                   OptOuts(svc.store, svc.privacy), svc.sms_join.link, now=clock)  # fmt: skip


def texts_to(app, phone: str, count: int, at: dt.datetime | None = None) -> list[str]:
    deadline = time.monotonic() + 60
    while len(sent := app.sandbox.acs.sent_to(phone)) < count:
        assert time.monotonic() < deadline, [t.message for t in sent]
        timer(app, at).run()
        time.sleep(0.3)
    return [t.message for t in sent]


def eventually(check, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.3)


def test_the_newcomers_journey(app, engine, sandbox_trust):  # noqa: F811
    ehr = engine
    slot = ehr.chart.slot(SLOT)
    appointment = ehr.chart.id_of(slot)
    phone = next(p.phone for p in PATIENTS if p.key == slot.patient)
    svc = build(load_settings(app.env))
    key = visit_key(
        svc.privacy, svc.endpoints.snapshot().find(ENDPOINT), "Appointment", appointment
    )
    optouts = OptOuts(svc.store, svc.privacy)

    # The clinician launches the visit from the EHR (once with the Microsoft sign-in)
    browser = Browser(app.sandbox, entra_user=CLINICIAN)
    kw = {"clinician": CLINICIAN, "appointment": SLOT}
    browser.go(launch_url(app, ENDPOINT, "provider", VENDOR, **kw))
    page = browser.go(launch_url(app, ENDPOINT, "provider", VENDOR, **kw))
    token = urlsplit(page.url).fragment
    s = app.session()
    s.headers["X-Visit-Token"] = token

    # 2, 3: the schedule's button books it; the confirmation arrives with the next timer run.
    # Whatever the time of day, the demo books it 20 minutes ahead (the slot may be hours
    # away: its join link would not open yet).
    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=20)).replace(second=0, microsecond=0)
    ehr.bookings[appointment] = Booking(soon)
    before = len(app.sandbox.acs.sent_to(phone))
    assert press(app, ehr, "book", appointment, CLINICIAN) == "S12: 200 AA applied"
    booked = texts_to(app, phone, before + 1)[-1]
    assert booked.startswith("Sandbox Health: video visit")
    start = svc.visits.get(key).start
    assert start == soon

    # 4: the link opens the lobby; the clinician's page shows the patient
    link = re.search(r"https://\S+/api/j/\S+", booked).group(0)
    opened = app.session().get(link, allow_redirects=False, headers={"Accept": "text/html"})
    assert opened.status_code == 302 and "/graph/meet/" in opened.headers["Location"]
    eventually(
        lambda: s.get(app.api("visit/status")).json()["presence"]["patient"] != "not joined",
        "the visit page does not show the patient",
    )

    # 6: "Send link by SMS" sends one text
    preview = s.post(app.api("visit/sms/preview")).json()
    sent = s.post(app.api("visit/sms"), json={"confirm": preview["confirm"]}).json()
    assert sent["state"] == "sent" and len(app.sandbox.acs.sent_to(phone)) == before + 2

    # 5: STOP holds the next reminder (10 minutes before) back ...
    try:
        app.sandbox.acs.reply(phone, "STOP")
        eventually(lambda: optouts.has(phone), "STOP did not opt the number out")
        timer(app, start - dt.timedelta(minutes=9)).run()
        rows = {r.text_id: r for r in svc.texting.ledger.for_visit(key)}
        assert (rows["reminder-10-v1"].state, rows["reminder-10-v1"].reason) == (
            "skipped", "opted out",
        )  # fmt: skip
    finally:
        app.sandbox.acs.reply(phone, "START")
        eventually(lambda: not optouts.has(phone), "START did not opt the number back in")
    # ... and after START, an S15 cancels: "cancelled" goes, the last reminder does not
    assert press(app, ehr, "cancel", appointment, CLINICIAN) == "S15: 200 AA applied"
    cancelled = texts_to(app, phone, before + 3)[-1]
    assert "is cancelled" in cancelled
    timer(app, start - dt.timedelta(minutes=1)).run()
    rows = {r.text_id: r for r in svc.texting.ledger.for_visit(key)}
    assert rows["reminder-2-v1"].state == "skipped"
    # (the cancellation raised the schedule version: the older reminder is moot either way)
    assert rows["reminder-2-v1"].reason in ("the appointment changed since",
                                            "the appointment is cancelled")  # fmt: skip
    assert len(app.sandbox.acs.sent_to(phone)) == before + 3
