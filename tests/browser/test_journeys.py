"""The two journeys as a person clicks them, in headless Chromium, through the sandbox's pages,
each party on its own origin (EHR, Entra ID, Graph's meeting page, and the app, over https).

A clinician clicks "Begin virtual visit" on the EHR schedule, signs in to Microsoft once and lands
on the visit page (patient "not joined"); the patient clicks "Begin virtual visit" in the
portal, joins the meeting as a guest and waits in the lobby; the clinician's page alerts without
a reload (the patient "waiting in lobby" as Graph's roster notification says, how long they have
waited, a sound if switched on); the clinician admits them ("in the visit") and they leave
("left"). Each
journey runs with the EHR opening the launch top-level, in an iframe on its page (Hyperspace
activity, PowerChart MPage) and in a popup, with the EHR's own session signed in. Inside the
iframe, the clinician's first Microsoft sign-in (which Microsoft's page refuses to show framed)
runs in a window of its own that the frame opens on a click, and the frame then goes on to the
visit page (lib/launch/window.py). Screenshots go to test-artifacts/ (not committed).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from pathlib import Path

import pytest

from dev.browser import Browser
from dev.procs import ROOT
from dev.seed import sandbox_endpoints, seed

ARTIFACTS = ROOT / "test-artifacts"
HAVE_CHROMIUM = bool(shutil.which("chromium") and shutil.which("chromedriver"))

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not HAVE_CHROMIUM and not os.environ.get("CI"),
        reason="Debian's chromium and chromium-driver are not installed (CI installs them)",
    ),
]


@pytest.fixture(scope="module")
def seeded(app):
    """The sandbox endpoints registered under the ids the sandbox's buttons launch."""
    admin = app.session("admin")
    wanted = {e["fhir_base_url"]: e["id"] for e in sandbox_endpoints(app.sandbox.origins)}
    for item in admin.get(app.api("config/endpoints")).json()["items"]:
        if wanted.get(item["fhir_base_url"], item["id"]) != item["id"]:  # another test's endpoint
            etag = admin.get(app.api(f"config/endpoints/{item['id']}")).headers["ETag"]
            admin.delete(app.api(f"config/endpoints/{item['id']}"), headers={"If-Match": etag})
    lines = seed(app.url, app.sandbox.origins, str(app.sandbox.ca_file), app.token)
    assert all(line.endswith(": active") for line in lines), lines
    app.sandbox.reset()


@pytest.fixture(scope="module")
def chrome():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--no-first-run",
        "--ignore-certificate-errors",  # the sandbox's local CA (the app's certificate too)
        "--window-size=1100,900",
    ):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def click(driver, testid: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, f"[data-testid='{testid}']").click()


def here(driver) -> str:
    """The URL of the document the driver is in (a frame's own, not the top-level one)."""
    return driver.execute_script("return location.href")


def refusals(driver) -> list[str]:
    """What the browser refused since the last call (CSP, framing), from its console."""
    return [
        e["message"]
        for e in driver.get_log("browser")
        if e["source"] == "security" or "Refused" in e["message"]
    ]


def wait_for(driver, predicate, timeout: float = 15.0) -> None:
    """Wait until ``predicate``; fail at once, saying what happened, when the browser refused
    something, showed its own error page, or the app answered with an error code."""
    from selenium.common.exceptions import TimeoutException, WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    seen: list[str] = []

    def done(d) -> bool:
        try:
            if predicate(d):
                return True
            url, text = here(d), d.page_source or ""  # None while a window closes
        except WebDriverException:
            return False  # between documents
        seen.extend(refusals(d))
        code = re.search(r'data-error-code(?:="")?>([A-Z0-9-]+)<', text)
        if seen or url.startswith("chrome-error:") or code:
            raise AssertionError(
                f"at {url}: browser refused {seen}; app error {code and code.group(1)}"
            )
        return False

    try:
        WebDriverWait(driver, timeout, poll_frequency=0.2).until(done)
    except TimeoutException:
        raise AssertionError(f"stuck at {here(driver)}; browser refused: {seen}") from None


def shot(driver, name: str) -> Path:
    """A screenshot of the whole window (the EHR's page around a frame, too)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


# -- the matrix: vendor x how the EHR opens the launch x journey ----------------------------------
PEOPLE = {"epic": ("reyes", "rivera", "mychart"), "cerner": ("okafor", "haddad", "portal")}
MODES = ("top", "iframe", "popup")


def cases():
    for vendor in PEOPLE:
        for mode in MODES:
            for journey in ("clinician-first", "clinician-returning", "patient"):
                yield pytest.param(vendor, mode, journey, id=f"{vendor}-{mode}-{journey}")


def confirm_account(chrome, name: str) -> None:
    """The connector asks before it remembers the Microsoft account: say yes, as the person."""
    from selenium.webdriver.common.by import By

    wait_for(chrome, lambda d: "Open virtual visits as this Microsoft account?" in d.page_source)
    assert "@" in chrome.find_element(By.CSS_SELECTOR, "[data-account]").text
    shot(chrome, name)
    click(chrome, "confirm")


def sign_in_in_a_window(chrome, entra: str, clinician: str, name: str) -> None:
    """Inside the EHR's frame, Microsoft's sign-in cannot show (it refuses to be framed): the
    frame offers a button that opens it in a window of its own; sign in and confirm there, and
    the window closes. The driver ends back in the EHR's frame."""
    from selenium.webdriver.common.by import By

    main, before = chrome.current_window_handle, set(chrome.window_handles)
    wait_for(chrome, lambda d: 'data-testid="open-signin"' in d.page_source)
    shot(chrome, f"{name}-frame-offers-window")
    click(chrome, "open-signin")
    wait_for(chrome, lambda d: len(set(d.window_handles) - before) == 1)
    (window,) = set(chrome.window_handles) - before
    chrome.switch_to.window(window)
    wait_for(chrome, lambda d: here(d).startswith(entra))
    click(chrome, f"signin-{clinician}")
    confirm_account(chrome, f"{name}-link-account")
    chrome.switch_to.window(main)  # the window closes by itself: wait from the EHR's
    wait_for(chrome, lambda d: window not in d.window_handles)
    chrome.switch_to.frame(chrome.find_element(By.CSS_SELECTOR, "[data-testid='activity']"))


def forget_microsoft_sign_ins(app, vendor: str) -> None:
    """No clinician of this endpoint has signed in to Microsoft yet (first launch)."""
    base = app.api(f"config/endpoints/{vendor}-sandbox-test/mappings")
    for item in app.session("reader").get(base).json()["items"]:
        app.session("admin").delete(f"{base}/{item['mapping']}")


def open_launch(chrome, page_url: str, appointment: str, mode: str) -> None:
    """Press "Begin virtual visit" on the EHR's page; the driver ends up where the launch runs:
    the same window (top), the EHR's activity frame (iframe) or the new window (popup)."""
    from selenium.webdriver.common.by import By

    chrome.get(f"{page_url}&open={mode}")
    before = set(chrome.window_handles)
    click(chrome, f"begin-{appointment}")
    if mode == "iframe":
        chrome.switch_to.frame(chrome.find_element(By.CSS_SELECTOR, "[data-testid='activity']"))
    elif mode == "popup":
        wait_for(chrome, lambda d: len(set(d.window_handles) - before) == 1)
        (popup,) = set(chrome.window_handles) - before
        chrome.switch_to.window(popup)


def back_to_one_window(chrome) -> None:
    from selenium.common.exceptions import NoSuchWindowException

    with contextlib.suppress(NoSuchWindowException):  # in a window that closed itself
        chrome.switch_to.default_content()
    first, *others = chrome.window_handles
    for handle in others:
        chrome.switch_to.window(handle)
        chrome.close()
    chrome.switch_to.window(first)


@pytest.mark.parametrize(("vendor", "mode", "journey"), list(cases()))
def test_journey(app, seeded, chrome, vendor, mode, journey):
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By

    ehr = getattr(app.sandbox, vendor)
    clinician, patient, _ = PEOPLE[vendor]
    slot = ehr.chart.slots(clinician=clinician, patient=patient)[0]
    appointment = slot.ids[vendor]
    back_to_one_window(chrome)
    refusals(chrome)  # start with an empty console
    name = f"{vendor}-{mode}-{journey}"
    try:
        if journey == "patient":  # the clinician opened the visit before
            launch = ehr.mint_launch("provider", clinician=clinician, appointment=appointment)
            Browser(app.sandbox, entra_user=clinician).go(launch.url)
            open_launch(chrome, f"{ehr.portal_url}?patient={patient}", appointment, mode)
            wait_for(chrome, lambda d: here(d).startswith(app.sandbox.graph.url("/meet/")))
            chrome.find_element(By.CSS_SELECTOR, "[data-testid='name']").send_keys("Patient")
            click(chrome, "join")
            wait_for(chrome, lambda d: "You are in the lobby" in d.page_source)
        else:
            forget_microsoft_sign_ins(app, vendor)
            if journey == "clinician-returning":  # signed in to Microsoft on an earlier launch
                launch = ehr.mint_launch("provider", clinician=clinician, appointment=appointment)
                Browser(app.sandbox, entra_user=clinician).go(launch.url)
            open_launch(chrome, f"{ehr.schedule_url}?clinician={clinician}", appointment, mode)
            entra = app.sandbox.entra.url("/")
            if journey == "clinician-first" and mode == "iframe":
                sign_in_in_a_window(chrome, entra, clinician, name)
            elif journey == "clinician-first":
                wait_for(chrome, lambda d: here(d).startswith(entra))
                click(chrome, f"signin-{clinician}")
                confirm_account(chrome, f"{vendor}-{mode}-link-account")
            wait_for(chrome, lambda d: "/api/visit#" in here(d))
            status = (By.ID, "patient-status")
            # The matrix's patient journeys wait in this visit's lobby (Graph says so).
            shown = ("not joined", "joining", "waiting in lobby")
            wait_for(chrome, lambda d: d.find_element(*status).text in shown)
            join = chrome.find_element(By.ID, "join").get_attribute("href")
            assert join.startswith(app.sandbox.graph.url("/meet/"))
    finally:
        with contextlib.suppress(WebDriverException):  # in a window that closed itself: none
            chrome.switch_to.default_content()
            shot(chrome, name)
        back_to_one_window(chrome)


@pytest.mark.parametrize(
    ("vendor", "clinician", "patient", "portal"),
    # Not the matrix's appointments: this test needs a visit whose patient has not joined yet.
    [("epic", "reyes", "whitfield", "mychart"), ("cerner", "lindqvist", "nakamura", "portal")],
)
def test_clinician_and_patient_journeys(app, seeded, chrome, vendor, clinician, patient, portal):
    """Top-level, end to end: the clinician's page alerts (and beeps) when the patient waits in
    the lobby, then shows them in the visit once admitted, and left once they leave: the
    meeting page's roster reaching the visit through Graph's change notifications."""
    from selenium.webdriver.common.by import By

    forget_microsoft_sign_ins(app, vendor)
    back_to_one_window(chrome)

    ehr = getattr(app.sandbox, vendor)
    slot = ehr.chart.slots(clinician=clinician, patient=patient)[0]
    appointment = slot.ids[vendor]

    # The clinician, in the EHR: Begin virtual visit -> (first time) Microsoft sign-in -> visit
    chrome.get(f"{ehr.schedule_url}?clinician={clinician}")
    click(chrome, f"begin-{appointment}")
    wait_for(chrome, lambda d: "/entra/" in d.current_url or "/api/visit#" in d.current_url)
    if "/entra/" in chrome.current_url:
        click(chrome, f"signin-{clinician}")
        confirm_account(chrome, f"{vendor}-link-account")
    wait_for(chrome, lambda d: "/api/visit#" in d.current_url)
    wait_for(chrome, lambda d: d.find_element(By.ID, "patient-status").text == "not joined")
    assert not chrome.find_element(By.ID, "waiting-alert").is_displayed()
    # The clinician switches the sound on (a click: browsers allow sound after one). The choice
    # is remembered in this browser, so an earlier journey may have left it on.
    click(chrome, "sound")
    if not chrome.find_element(By.ID, "sound").is_selected():
        click(chrome, "sound")
    join = chrome.find_element(By.ID, "join").get_attribute("href")
    assert join.startswith(app.sandbox.graph.url("/meet/"))
    visit_tab = chrome.current_window_handle
    shot(chrome, f"{vendor}-visit-page-waiting")

    # The meeting's Graph subscription is made from the clinician's arrival (off the launch's
    # path): the patient's lobby is notified once it exists.
    wait_for(chrome, lambda d: app.sandbox.graph.subscriptions_for(join), timeout=30)

    # The patient, in the portal: Begin virtual visit -> the meeting's lobby, no Microsoft account
    chrome.switch_to.new_window("tab")
    patient_tab = chrome.current_window_handle
    chrome.get(f"{ehr.portal_url}?patient={patient}")
    click(chrome, f"begin-{appointment}")
    wait_for(chrome, lambda d: "/graph/meet/" in d.current_url)
    chrome.find_element(By.CSS_SELECTOR, "[data-testid='name']").send_keys("Patient")
    click(chrome, "join")
    wait_for(chrome, lambda d: "You are in the lobby" in d.page_source)
    shot(chrome, f"{vendor}-patient-lobby")

    # Back on the clinician's page: the patient's wait appears by itself, with an alert, a
    # sound (switched on above) and how long they have waited, counting
    chrome.switch_to.window(visit_tab)
    status = (By.ID, "patient-status")
    wait_for(chrome, lambda d: d.find_element(*status).text == "waiting in lobby")  # Graph said
    alert = chrome.find_element(By.ID, "waiting-alert")
    assert alert.is_displayed() and alert.get_attribute("role") == "alert"
    assert chrome.title.startswith("Patient waiting")
    wait_for(
        chrome,
        lambda d: int(d.find_element(By.TAG_NAME, "body").get_attribute("data-beeps") or 0) >= 1,
    )
    first = chrome.find_element(By.ID, "waited").text
    wait_for(chrome, lambda d: d.find_element(By.ID, "waited").text != first)  # it counts
    shot(chrome, f"{vendor}-visit-page-waiting-alert")

    # The clinician joins the meeting and admits the patient: "in the visit", the alert goes
    chrome.switch_to.new_window("tab")
    chrome.get(f"{join}&role=organizer&name=Clinician")
    wait_for(chrome, lambda d: "Waiting in the lobby" in d.page_source)
    chrome.find_element(By.CSS_SELECTOR, "[data-testid^='admit-']").click()
    chrome.switch_to.window(visit_tab)
    wait_for(chrome, lambda d: d.find_element(*status).text == "in the visit")
    assert not chrome.find_element(By.ID, "waiting-alert").is_displayed()
    shot(chrome, f"{vendor}-visit-page-in-the-visit")

    # The patient leaves: "left"
    chrome.switch_to.window(patient_tab)
    wait_for(chrome, lambda d: "You're in the meeting" in d.page_source)
    click(chrome, "leave")
    chrome.switch_to.window(visit_tab)
    wait_for(chrome, lambda d: d.find_element(*status).text == "left")
    shot(chrome, f"{vendor}-visit-page-left")
    for handle in chrome.window_handles:
        if handle != visit_tab:
            chrome.switch_to.window(handle)
            chrome.close()
    chrome.switch_to.window(visit_tab)
