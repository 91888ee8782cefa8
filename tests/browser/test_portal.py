"""The admin portal as people click it, in headless Chromium: the admin signs in through the
sandbox's Entra ID and adds an Epic endpoint (first with a mistake, to see the named problems);
the approver signs in, approves it through the sandbox EHR's sign-in; the admin opens the
integration records and copies one; a reader sees the reports page only. axe-core checks every
page on the way (no violations), and a screenshot of each goes to test-artifacts/.
"""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from dev.procs import ROOT
from dev.sandbox import directory
from dev.seed import seed
from tests.browser.test_journeys import HAVE_CHROMIUM, chrome, click, here, shot, wait_for

__all__ = ["chrome"]  # the module's Chromium, shared with the journeys

AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
ENDPOINT = "portal-browser-epic"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not HAVE_CHROMIUM, reason="chromium and chromium-driver are not installed"),
]


def axe_violations(driver) -> list[str]:
    """axe-core's violations on the page (WCAG 2.x A/AA and best practices), one line each."""
    if not driver.execute_script("return typeof axe !== 'undefined'"):
        driver.execute_script(AXE.read_text())  # through the driver: the page's CSP allows none
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']})"
        ".then(r => done({passes: r.passes.length, violations: r.violations.map(v => v.id +"
        " ': ' + v.help + ' @ ' + v.nodes.map(n => n.target.join(' ')).join(', '))}))"
        ".catch(e => done({passes: 0, violations: ['axe failed: ' + e]}));"
    )
    assert result["passes"] > 0, "axe checked nothing"  # it ran, and on this page
    return list(result["violations"])


def check(driver, name: str) -> None:
    """A screenshot, then axe: no violation on any portal page."""
    shot(driver, f"portal-{name}")
    found = axe_violations(driver)
    assert found == [], f"{name}: {found}"


def sign_in(driver, app, user: str) -> None:
    """A fresh sign-in as ``user``, whoever an earlier test left signed in (one browser)."""
    driver.get(app.api("portal/signed-out"))
    driver.delete_all_cookies()  # this origin's: the portal's session cookie among them
    driver.get(app.api("portal"))
    wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, f"[data-testid='signin-{user}']"))
    click(driver, f"signin-{user}")
    wait_for(
        driver, lambda d: here(d).startswith(app.api("portal")) and "Signed in as" in d.page_source
    )


def sign_out(driver) -> None:
    click(driver, "sign-out")
    wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid='signed-out']"))


def fill(driver, values: dict[str, str]) -> None:
    from selenium.webdriver.support.ui import Select

    for name, value in values.items():
        field = driver.find_element(By.ID, f"f-{name}")
        if field.tag_name == "select":
            Select(field).select_by_value(value)
        else:
            field.clear()
            field.send_keys(value)


@pytest.fixture(scope="module")
def fresh_epic(app):
    """The sandbox's Epic base URL free for this test (one base, one endpoint); the sandbox
    endpoints are seeded back afterwards, as the other tests expect them."""
    admin = app.session("admin")

    def clear() -> None:
        base = app.sandbox.ehr_base("epic").rstrip("/")
        for item in admin.get(app.api("config/endpoints"), timeout=30).json()["items"]:
            if item["fhir_base_url"] == base or item["id"] == ENDPOINT:
                url = app.api(f"config/endpoints/{item['id']}")
                admin.delete(url, headers={"If-Match": admin.get(url).headers["ETag"]})

    clear()
    yield
    clear()
    seed(app.url, app.sandbox.origins, str(app.sandbox.ca_file), app.token)


def test_admin_adds_approver_approves_admin_copies_records(app, chrome, fresh_epic):
    approver = directory.user("approver")
    sign_in(chrome, app, "admin")
    check(chrome, "home-admin")

    # Keyboard: the first Tab reaches "Skip to content", which moves focus to the page itself.
    chrome.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    assert chrome.switch_to.active_element.text == "Skip to content"
    chrome.switch_to.active_element.send_keys(Keys.ENTER)
    assert chrome.switch_to.active_element.get_attribute("id") == "content"

    chrome.get(app.api("portal/endpoints"))
    check(chrome, "endpoints")
    click(chrome, "add-endpoint")
    wait_for(chrome, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid='endpoint-form']"))
    check(chrome, "add-endpoint")
    form = {
        "id": ENDPOINT,
        "vendor": "epic",
        "environment": "test",
        "organization": "Portal Health",
        "fhir_base_url": app.sandbox.ehr_base("epic"),
        "client_id": "evc-epic-test",
        "auth_method": "client_secret_basic",
        "secret_setting": "EHR_SECRET_EPIC",
        "approver_oid": approver.object_id,
        "approver_name": "",  # the mistake: Epic's approver needs a name
        "ehr_origins": app.sandbox.origins["epic"],
    }
    fill(chrome, form)
    click(chrome, "save-endpoint")
    wait_for(chrome, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid='problems']"))
    assert "Approver name" in chrome.find_element(By.CSS_SELECTOR, "[data-testid='problems']").text
    check(chrome, "add-endpoint-problems")
    fill(chrome, {"approver_name": approver.name})
    click(chrome, "save-endpoint")
    wait_for(chrome, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-status]"))
    assert chrome.find_element(By.CSS_SELECTOR, "[data-status]").text == "awaiting approval"
    check(chrome, "endpoint-awaiting-approval")
    click(chrome, "edit-endpoint")
    wait_for(chrome, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid='endpoint-form']"))
    check(chrome, "edit-endpoint")
    for page in ("approvals", "audit", f"endpoints/{ENDPOINT}/mappings", "reports"):
        chrome.get(app.api(f"portal/{page}"))
        check(chrome, page.replace("/", "-") + "-admin")
    sign_out(chrome)
    check(chrome, "signed-out")

    # The approver: their approval, through the EHR's own sign-in.
    sign_in(chrome, app, "approver")
    chrome.get(app.api("portal/approvals"))
    check(chrome, "approvals")
    click(chrome, f"approve-{ENDPOINT}")
    wait_for(chrome, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid^='signin-']"))
    shot(chrome, "portal-ehr-sign-in")
    chrome.find_element(By.CSS_SELECTOR, "[data-testid^='signin-']").click()
    wait_for(chrome, lambda d: "Endpoint approved" in d.page_source)
    assert chrome.find_element(By.CSS_SELECTOR, "[data-status]").text == "active"
    shot(chrome, "portal-approved")
    chrome.get(app.api("portal"))
    sign_out(chrome)

    # The admin again: texts on for the new endpoint, from a number bought for it.
    sign_in(chrome, app, "admin")
    number = texts_from_a_new_number(app, chrome)

    # The records for the EHR build team (the texting number among them), copied with a button.
    chrome.get(app.api(f"portal/endpoints/{ENDPOINT}"))
    click(chrome, "records-link")
    wait_for(chrome, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid='records']"))
    redirect = chrome.find_element(By.CSS_SELECTOR, "[data-record='redirect_uri']").text
    assert redirect == app.api("launch/callback")
    assert number in chrome.find_element(By.CSS_SELECTOR, "[data-testid='records']").text
    check(chrome, "records")
    click(chrome, "copy-all")
    wait_for(chrome, lambda d: d.find_element(By.ID, "copied").text != "")
    sign_out(chrome)


def texts_from_a_new_number(app, driver) -> str:
    """Consent (if not yet given), order a toll-free number and watch it being bought, link it
    to the new endpoint, switch texts on: the number is shown on the endpoint's texts page."""
    app.sandbox.acs.numbers.seconds = 1.0
    driver.get(app.api("portal/sms"))
    if not driver.find_elements(By.CSS_SELECTOR, "[data-testid='consent-recorded']"):
        for box in ("c-behalf", "c-attendees"):
            driver.find_element(By.ID, box).click()
        click(driver, "consent-save")
        recorded = "[data-testid='consent-recorded']"
        wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, recorded))
    click(driver, "order-number")
    wait_for(driver, lambda d: "/api/portal/sms/orders/" in d.current_url)
    state = "[data-testid='order-state']"
    wait_for(driver, lambda d: d.find_element(By.CSS_SELECTOR, state).get_attribute("data-state")
             == "succeeded", timeout=60)  # fmt: skip
    number = driver.find_element(By.CSS_SELECTOR, f"{state} .code").text
    check(driver, "sms-number-bought")
    driver.get(app.api("portal/sms"))
    form = driver.find_element(By.CSS_SELECTOR, f"[data-testid='link-{number}']")
    form.find_element(By.CSS_SELECTOR, f"input[name='link-{ENDPOINT}']").click()
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_for(driver, lambda d: d.find_element(
        By.CSS_SELECTOR, f"[data-testid='link-{number}'] input[name='link-{ENDPOINT}']"
    ).is_selected())  # fmt: skip
    check(driver, "sms-linked")
    driver.get(app.api(f"portal/sms/endpoints/{ENDPOINT}"))
    assert driver.find_element(By.CSS_SELECTOR, "[data-testid='sms-number']").text == number
    fill(driver, {"organization_name": "Portal Health", "time_zone": "America/Chicago"})
    enabled = driver.find_element(By.ID, "f-enabled")
    if not enabled.is_selected():
        enabled.click()
    click(driver, "sms-settings-save")
    wait_for(
        driver,
        lambda d: (
            not d.find_elements(By.ID, "f-enabled") or d.find_element(By.ID, "f-enabled") != enabled
        ),
    )  # the page after the save
    assert not driver.find_elements(By.CSS_SELECTOR, "[data-testid='problems']")
    assert driver.find_element(By.ID, "f-enabled").is_selected()
    check(driver, "sms-endpoint-on")
    return number


def test_a_reader_sees_reports_only(app, chrome):
    sign_in(chrome, app, "reader")
    links = [a.text for a in chrome.find_elements(By.CSS_SELECTOR, "nav a")]
    assert links == ["Home", "Reports"]
    chrome.get(app.api("portal/reports"))
    check(chrome, "reports-reader")
    chrome.get(app.api("portal/endpoints"))
    assert "AUTH-FORBIDDEN-ROLE" in chrome.page_source
    chrome.get(app.api("portal"))
    sign_out(chrome)


def test_a_reader_opens_the_reports_with_seeded_data_and_downloads_the_csv(app, chrome, tmp_path):
    """Demo visits through the visit-events queue; the reader picks the range with the keyboard,
    sees the charts and the visits, reads a chart's numbers, and downloads the CSV."""
    import time

    from selenium.webdriver.support.ui import Select

    from tests.e2e.reports_seed import report_range, seed_and_wait

    visits = seed_and_wait(app, "rpt-browser", 3, 4)
    dates = report_range("rpt-browser", 3)
    sign_in(chrome, app, "reader")
    chrome.get(app.api(f"portal/reports?endpoint={dates['endpoint']}"))
    Select(chrome.find_element(By.ID, "r-preset")).select_by_value("custom")
    for name in ("from", "to"):
        field = chrome.find_element(By.ID, f"r-{name}")
        field.clear()
        field.send_keys(dates[name])
    chrome.find_element(By.ID, "r-to").send_keys(Keys.ENTER)  # the form, from the keyboard
    wait_for(chrome, lambda d: len(d.find_elements(By.CSS_SELECTOR, "[data-visit]")) == len(visits))
    for chart in ("visits-per-day", "lobby-wait", "poor-calls"):
        assert chrome.find_element(By.CSS_SELECTOR, f"[data-testid='chart-{chart}'] svg rect")
    chrome.find_element(By.CSS_SELECTOR, "[data-testid='chart-lobby-wait'] summary").click()
    numbers = chrome.find_element(By.CSS_SELECTOR, "[data-testid='chart-lobby-wait-data']")
    assert "under 1 min" in numbers.text
    check(chrome, "reports-seeded")
    chrome.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)}
    )
    click(chrome, "download-csv")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not list(tmp_path.glob("visits-*.csv")):
        time.sleep(0.2)
    (downloaded,) = list(tmp_path.glob("visits-*.csv"))
    data = downloaded.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf") and data.count(b"\r\n") == len(visits) + 1
    shot(chrome, "portal-reports-downloaded")


def test_admin_replays_a_write_back_failure(app, chrome):
    """A failed write in the dead-letter table: listed, axe-clean, replayed with the button (the
    form's CSRF token and the admin role checked), the page saying so afterwards."""
    from lib.bootstrap import build
    from lib.settings import load_settings
    from lib.writeback.errors import WriteFailure
    from lib.writeback.jobs import WritebackJob

    svc = build(load_settings(app.env))
    job = WritebackJob.new("vk" + "0" * 30, "portal-failures", "connected", 1)
    failure = svc.writeback_failures.add(
        job, WriteFailure.permanent("WB-EHR-REFUSED", "epic status: HTTP 400", 400), attempts=1
    )
    sign_in(chrome, app, "admin")
    chrome.get(app.api("portal/writeback?endpoint=portal-failures"))
    wait_for(chrome, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid='failures']"))
    assert "WB-EHR-REFUSED" in chrome.find_element(By.CSS_SELECTOR, "[data-testid='failures']").text
    check(chrome, "writeback-admin")
    row = chrome.find_element(By.CSS_SELECTOR, f"[data-failure='{failure.id}']")
    row.find_element(By.CSS_SELECTOR, "button").click()
    wait_for(chrome, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid='replayed']"))
    check(chrome, "writeback-replayed")
    assert svc.writeback_failures.get(failure.id).replayed_at is not None
    sign_out(chrome)
