"""Texts as people click them, in headless Chromium: the clinician's "Send link by SMS" (confirm
on the page, the number masked, one text), and the sandbox's phone page (the text arrives, a
STOP reply opts the number out). The page's policy is strict (nonces, no inline handlers): any
refusal fails the test (wait_for)."""

from __future__ import annotations

import time
from urllib.parse import quote

from azure.data.tables import TableServiceClient

from dev.sandbox.acs.numbers import SEED_NUMBER
from dev.sandbox.ehr.data import PATIENTS
from dev.stack import settings_env
from lib.privacy import PrivacyKeys
from lib.sms.sending import OptOuts
from lib.storage import TableStore
from tests.browser.test_journeys import (  # noqa: F401 (fixtures)
    back_to_one_window,
    chrome,
    click,
    confirm_account,
    forget_microsoft_sign_ins,
    pytestmark,
    seeded,
    shot,
    wait_for,
)
from tests.e2e.test_visit_sms import texts_on

# Not a journey test's appointment: the Cerner-like reyes-0930 (Samuel Whitfield).
VENDOR, CLINICIAN, PATIENT, ENDPOINT = "cerner", "reyes", "whitfield", "cerner-sandbox-test"
PHONE = next(p.phone for p in PATIENTS if p.key == PATIENT)


def visit_page(app, driver) -> None:
    """The clinician opens the visit from the EHR schedule: the first launch signs in to
    Microsoft, the second one (the page this test uses) holds the launch's EHR token."""
    ehr = getattr(app.sandbox, VENDOR)
    appointment = ehr.chart.slots(clinician=CLINICIAN, patient=PATIENT)[0].ids[VENDOR]
    for _ in range(2):
        driver.get(f"{ehr.schedule_url}?clinician={CLINICIAN}")
        click(driver, f"begin-{appointment}")
        wait_for(driver, lambda d: "/entra/" in d.current_url or "/api/visit#" in d.current_url)
        if "/entra/" in driver.current_url:
            click(driver, f"signin-{CLINICIAN}")
            confirm_account(driver, "texts-link-account")
        wait_for(driver, lambda d: "/api/visit#" in d.current_url)


def test_send_link_by_sms_and_the_phone_page(app, seeded, chrome):  # noqa: F811
    from selenium.webdriver.common.by import By

    forget_microsoft_sign_ins(app, VENDOR)
    back_to_one_window(chrome)
    texts_on(app, ENDPOINT)
    before = len(app.sandbox.acs.sent_to(PHONE))
    visit_page(app, chrome)

    button = chrome.find_element(By.ID, "sms")
    wait_for(chrome, lambda d: button.is_enabled())
    button.click()
    wait_for(chrome, lambda d: d.find_element(By.ID, "sms-confirm").is_displayed())
    masked = chrome.find_element(By.ID, "sms-masked").text
    assert masked == f"•••• ••{PHONE[-2:]}" and PHONE not in chrome.page_source
    shot(chrome, "texts-visit-page-confirm")
    click(chrome, "sms-yes")
    wait_for(chrome, lambda d: d.find_element(By.ID, "sms-result").text.startswith("Sent to"))
    assert masked in chrome.find_element(By.ID, "sms-result").text
    click(chrome, "sms-send")  # pressed again within the minute: nothing more is sent
    wait_for(chrome, lambda d: d.find_element(By.ID, "sms-confirm").is_displayed())
    click(chrome, "sms-yes")
    wait_for(chrome, lambda d: "Already sent" in d.find_element(By.ID, "sms-result").text)
    assert len(app.sandbox.acs.sent_to(PHONE)) == before + 1

    # The patient's phone shows the text, with its join link
    phone_url = app.sandbox.acs.url(f"/phone/{quote(PHONE)}")
    chrome.get(phone_url)
    wait_for(chrome, lambda d: "join your video visit" in d.page_source)
    links = [a.get_attribute("href") for a in chrome.find_elements(By.CSS_SELECTOR, ".out a")]
    assert any("/api/j/" in link for link in links)
    shot(chrome, "texts-phone-page")

    # STOP from the phone: Event Grid brings it to the app, which opts the number out
    optouts = OptOuts(
        TableStore(TableServiceClient.from_connection_string(app.storage), "e2e"),
        PrivacyKeys(settings_env()["CONNECTOR_HASH_KEY"]),
    )
    try:
        reply(chrome, "STOP")
        wait_for(chrome, lambda d: "STOP" in d.find_element(By.CSS_SELECTOR, ".in").text)
        deadline = time.monotonic() + 30
        while not optouts.has(PHONE):
            assert time.monotonic() < deadline, "the STOP reply did not opt the number out"
            time.sleep(0.3)
    finally:
        reply(chrome, "START")  # the other tests text this phone
        deadline = time.monotonic() + 30
        while optouts.has(PHONE) and time.monotonic() < deadline:
            time.sleep(0.3)
    assert SEED_NUMBER in chrome.page_source  # the texts came from the linked number


def reply(driver, word: str) -> None:
    from selenium.webdriver.common.by import By

    box = driver.find_element(By.CSS_SELECTOR, "input[name=message]")
    box.send_keys(word)
    driver.find_element(By.CSS_SELECTOR, "form button").click()
    wait_for(driver, lambda d: word in d.page_source)


def test_the_portals_texts_pages_are_accessible(app, seeded, chrome):  # noqa: F811
    """The admin's texts pages pass axe-core; ordering a number shows its progress, the page
    reloading itself (no script) until the number is bought."""
    from selenium.webdriver.common.by import By

    from tests.browser.test_portal import check, sign_in, sign_out

    back_to_one_window(chrome)
    app.sandbox.acs.numbers.seconds = 3.0
    sign_in(chrome, app, "admin")
    chrome.get(app.api("portal/sms"))
    check(chrome, "sms")
    click(chrome, "order-number")
    wait_for(chrome, lambda d: "/api/portal/sms/orders/" in d.current_url)
    state = chrome.find_element(By.CSS_SELECTOR, "[data-testid='order-state']")
    assert state.get_attribute("data-state") in ("searching", "purchasing")
    check(chrome, "sms-order-running")
    wait_for(
        chrome,
        lambda d: (
            d.find_element(By.CSS_SELECTOR, "[data-testid='order-state']").get_attribute(
                "data-state"
            )
            == "succeeded"
        ),
        timeout=60,
    )
    check(chrome, "sms-order-done")
    chrome.get(app.api(f"portal/sms/endpoints/{ENDPOINT}"))
    check(chrome, "sms-endpoint")
    chrome.get(app.api("portal"))
    sign_out(chrome)
