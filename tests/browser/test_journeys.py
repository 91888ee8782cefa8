"""The two journeys as a person clicks them, in headless Chromium, through the sandbox's pages.

A clinician clicks "Begin virtual visit" on the EHR schedule, signs in to Microsoft once and lands
on the visit page (patient "not connected"); the patient clicks "Begin virtual visit" in the
portal, joins the meeting as a guest and waits in the lobby; the clinician's page turns
"connected" without a reload. Screenshots go to test-artifacts/ (not committed).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

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
        "--ignore-certificate-errors",  # the sandbox's local CA; the app side is plain http
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


def wait_for(driver, predicate, timeout: float = 15.0) -> None:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        WebDriverWait(driver, timeout, poll_frequency=0.2).until(lambda d: predicate(d))
    except TimeoutException:
        # What the browser refused (CSP, framing) is in its console: say it, not just "timeout".
        refused = [e["message"] for e in driver.get_log("browser") if e["source"] == "security"]
        raise AssertionError(f"stuck at {driver.current_url}; browser refused: {refused}") from None


def shot(driver, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


FORM_ACTION_BLOCKS_CHAIN = (
    "product: the launch's auto-POST page sends CSP form-action 'self' plus the EHR's origin "
    "only; Chromium applies form-action to every redirect after the form submission, so the "
    "callback's redirect to Entra ID (first launch) or to the meeting page (patient) on their "
    "own origins is blocked. Fix in lib/launch/start.py: add the Entra authority and the join "
    "hosts to form-action, or end the POST's redirect chain at a page of the app."
)


@pytest.mark.xfail(strict=True, raises=AssertionError, reason=FORM_ACTION_BLOCKS_CHAIN)
@pytest.mark.parametrize(
    ("vendor", "clinician", "patient", "portal"),
    [("epic", "reyes", "rivera", "mychart"), ("cerner", "okafor", "haddad", "portal")],
)
def test_clinician_and_patient_journeys(app, seeded, chrome, vendor, clinician, patient, portal):
    from selenium.webdriver.common.by import By

    ehr = getattr(app.sandbox, vendor)
    slot = ehr.chart.slots(clinician=clinician, patient=patient)[0]
    appointment = slot.ids[vendor]

    # The clinician, in the EHR: Begin virtual visit -> (first time) Microsoft sign-in -> visit
    chrome.get(f"{ehr.schedule_url}?clinician={clinician}")
    click(chrome, f"begin-{appointment}")
    wait_for(chrome, lambda d: "/entra/" in d.current_url or "/api/visit#" in d.current_url)
    if "/entra/" in chrome.current_url:
        click(chrome, f"signin-{clinician}")
    wait_for(chrome, lambda d: "/api/visit#" in d.current_url)
    wait_for(chrome, lambda d: d.find_element(By.ID, "patient-status").text == "not connected")
    join = chrome.find_element(By.ID, "join").get_attribute("href")
    assert join.startswith(app.sandbox.graph.url("/meet/"))
    visit_tab = chrome.current_window_handle
    shot(chrome, f"{vendor}-visit-page-waiting")

    # The patient, in the portal: Begin virtual visit -> the meeting's lobby, no Microsoft account
    chrome.switch_to.new_window("tab")
    chrome.get(f"{ehr.portal_url}?patient={patient}")
    click(chrome, f"begin-{appointment}")
    wait_for(chrome, lambda d: "/graph/meet/" in d.current_url)
    chrome.find_element(By.CSS_SELECTOR, "[data-testid='name']").send_keys("Patient")
    click(chrome, "join")
    wait_for(chrome, lambda d: "You are in the lobby" in d.page_source)
    shot(chrome, f"{vendor}-patient-lobby")

    # Back on the clinician's page: "connected" appears by itself
    chrome.switch_to.window(visit_tab)
    wait_for(chrome, lambda d: d.find_element(By.ID, "patient-status").text == "connected")
    shot(chrome, f"{vendor}-visit-page-connected")
    for handle in chrome.window_handles:
        if handle != visit_tab:
            chrome.switch_to.window(handle)
            chrome.close()
    chrome.switch_to.window(visit_tab)
