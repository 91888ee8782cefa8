"""The SMS configuration (F12) on Azurite and the sandbox's Communication Services: consent
first, numbers linked to endpoints, the number order as a long-running operation whose state is
in storage (another instance resumes it), per-endpoint settings and intake certificates; every
change ETag-checked and audited."""

from __future__ import annotations

import base64
import datetime as dt
import threading
import time
import uuid

import pytest
from azure.data.tables import TableServiceClient

from lib.endpoints import audit
from lib.endpoints.actor import Actor
from lib.endpoints.models import EndpointCreate, Environment, Validation
from lib.endpoints.service import EndpointService
from lib.sms.config import SmsConfig
from lib.sms.models import (
    ConsentGrant,
    NumberLinks,
    NumberOrderCreate,
    OrderState,
    SmsSettingsUpdate,
)
from lib.sms.numbers import PhoneNumbers
from lib.storage import TableStore
from lib.web.errors import AppError

ADMIN = Actor(oid="00000000-0000-4000-8000-0000000000a1", name="Avery Admin")
SEED = "+18335550100"
CONSENT = ConsentGrant(sends_on_behalf_of_organization=True, attendees_consented=True)


@pytest.fixture
def store(storage_connection_string) -> TableStore:
    service = TableServiceClient.from_connection_string(storage_connection_string)
    return TableStore(service, "s" + uuid.uuid4().hex[:10])


@pytest.fixture
def acs(clean_sandbox, sandbox_trust):
    clean_sandbox.acs.numbers.seconds = 0.5
    yield clean_sandbox.acs
    clean_sandbox.acs.numbers.seconds = 3.0


def endpoints(store: TableStore) -> EndpointService:
    valid = lambda endpoint, actor: Validation(checked_at=dt.datetime.now(dt.UTC), ok=True)  # noqa: E731
    return EndpointService(store, valid)


def sms_config(store: TableStore, acs) -> SmsConfig:
    """One instance of the app (a new one after a restart: nothing shared but storage)."""
    return SmsConfig(store, endpoints(store), PhoneNumbers(acs.connection_string))


def add_endpoint(store: TableStore, name: str) -> str:
    body = EndpointCreate.model_validate(
        {
            "id": name,
            "fhir_base_url": f"https://{name}.example.org/r4",
            "vendor": "cerner",
            "environment": "test",
            "organization": "Contoso",
            "client_id": "c",
            "client_auth": {"method": "private_key_jwt", "alg": "RS384"},
        }
    )
    return endpoints(store).create(body, ADMIN).id


def code_of(excinfo: pytest.ExceptionInfo[AppError]) -> str:
    return excinfo.value.code


def actions(store: TableStore) -> list[str]:
    entries, _ = audit.query(store, size=200)
    return [e.action for e in entries]


# -- consent -------------------------------------------------------------------------------------
def test_nothing_changes_before_both_consents_are_recorded(store, acs):
    sms = sms_config(store, acs)
    endpoint = add_endpoint(store, "clinic-a")
    operations = len(acs.numbers.operations)
    attempts = [
        lambda: sms.link(SEED, NumberLinks(endpoints=[endpoint]), None, ADMIN),
        lambda: sms.order(NumberOrderCreate(), ADMIN),
        lambda: sms.update_settings(
            endpoint, SmsSettingsUpdate(language="es"), 'W/"sms-defaults"', ADMIN
        ),
        lambda: sms.upload_certificate(Environment.TEST, certificate_pem(), None, ADMIN),
    ]
    for attempt in attempts:
        with pytest.raises(AppError) as caught:
            attempt()
        assert code_of(caught) == "SMS-CONSENT-REQUIRED"
    with pytest.raises(ValueError):
        ConsentGrant.model_validate(
            {"sends_on_behalf_of_organization": True, "attendees_consented": False}
        )
    assert sms.number_for(endpoint) is None and len(acs.numbers.operations) == operations


def test_consent_records_who_and_when_and_is_etag_protected(store, acs):
    sms = sms_config(store, acs)
    first = sms.grant(CONSENT, None, ADMIN)
    assert first.attendees_consented.by_oid == ADMIN.oid
    assert first.sends_on_behalf_of_organization.by_name == "Avery Admin"
    for etag, code in ((None, "CFG-IF-MATCH-REQUIRED"), ('W/"stale"', "CFG-STALE-ETAG")):
        with pytest.raises(AppError) as caught:
            sms.grant(CONSENT, etag, ADMIN)
        assert code_of(caught) == code
    again = sms.grant(CONSENT, first.etag, ADMIN)
    assert again.etag != first.etag
    assert actions(store).count("sms.consent") == 2


# -- numbers and links ---------------------------------------------------------------------------
def test_one_number_serves_many_endpoints_and_an_endpoint_has_one_number(store, acs):
    sms = sms_config(store, acs)
    sms.grant(CONSENT, None, ADMIN)
    a, b = add_endpoint(store, "clinic-a"), add_endpoint(store, "clinic-b")
    linked = sms.link(SEED, NumberLinks(endpoints=[b, a, a]), None, ADMIN)
    assert linked.endpoints == [a, b] and sms.number_for(b) == SEED
    [listed] = [n for n in sms.numbers() if n["number"] == SEED]
    assert listed["endpoints"] == [a, b] and listed["etag"] == linked.etag

    other = buy_number(sms, acs)
    sms.link(other, NumberLinks(endpoints=[b]), None, ADMIN)
    assert (sms.number_for(a), sms.number_for(b)) == (SEED, other)
    assert sms.number(SEED).endpoints == [a]  # moved off, in the same transaction
    with pytest.raises(AppError) as caught:
        sms.link(SEED, NumberLinks(endpoints=[a]), linked.etag, ADMIN)  # the move changed it
    assert code_of(caught) == "CFG-STALE-ETAG"
    assert actions(store).count("sms.number.link") == 2


def test_a_deleted_endpoint_leaves_no_link_and_no_settings_behind(store, acs):
    service = endpoints(store)
    sms = SmsConfig(store, service, PhoneNumbers(acs.connection_string))
    service.when_deleted(sms.forget_endpoint)  # as lib/bootstrap.py wires it
    sms.grant(CONSENT, None, ADMIN)
    a, b = add_endpoint(store, "clinic-a"), add_endpoint(store, "clinic-b")
    sms.link(SEED, NumberLinks(endpoints=[a, b]), None, ADMIN)
    on = SmsSettingsUpdate(enabled=True, organization_name="Contoso Clinic")
    sms.update_settings(a, on, 'W/"sms-defaults"', ADMIN)
    service.delete(a, service.get(a).etag, ADMIN)
    assert sms.number(SEED).endpoints == [b]
    [listed] = [n for n in sms.numbers() if n["number"] == SEED]
    assert listed["endpoints"] == [b]
    assert "sms.number.unlink" in actions(store)
    again = add_endpoint(store, "clinic-a")  # the same id, a new endpoint: texts start off
    assert sms.number_for(again) is None and not sms.settings(again).enabled


def test_unknown_numbers_and_endpoints_are_refused(store, acs):
    sms = sms_config(store, acs)
    sms.grant(CONSENT, None, ADMIN)
    endpoint = add_endpoint(store, "clinic-a")
    for number, ids, code in (
        ("+18335550199", [endpoint], "SMS-NUMBER-NOT-FOUND"),
        (SEED, ["no-such-clinic"], "CFG-ENDPOINT-NOT-FOUND"),
    ):
        with pytest.raises(AppError) as caught:
            sms.link(number, NumberLinks(endpoints=ids), None, ADMIN)
        assert code_of(caught) == code


# -- the number order ----------------------------------------------------------------------------
def buy_number(sms: SmsConfig, acs) -> str:
    order = sms.order(NumberOrderCreate(), ADMIN)
    order = poll_until_done(sms, order.id)
    assert order.state == OrderState.SUCCEEDED, order.problem
    return order.number


def poll_until_done(sms: SmsConfig, order_id: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        order = sms.poll(order_id)
        if order.state in (OrderState.SUCCEEDED, OrderState.FAILED):
            return order
        time.sleep(0.2)
    raise AssertionError(f"order {order_id} still {order.state}")


def test_an_order_runs_as_a_long_running_operation_and_survives_a_restart(store, acs):
    acs.numbers.seconds = 1.0
    first_instance = sms_config(store, acs)
    first_instance.grant(CONSENT, None, ADMIN)
    order = first_instance.order(NumberOrderCreate(), ADMIN)
    assert order.state == OrderState.SEARCHING and order.number is None
    assert "poll_token" not in order.public()
    # The instance that started it is gone; another one, sharing only storage, finishes it.
    restarted = sms_config(store, acs)
    done = poll_until_done(restarted, order.id)
    assert done.state == OrderState.SUCCEEDED and acs.numbers.owns(done.number)
    assert done.cost == "2.0 USD monthly"
    assert done.number in [n["number"] for n in restarted.numbers()]
    assert restarted.poll(order.id).public() == done.public()  # finished: as it is, no calls
    assert "sms.order.create" in actions(store)


def test_pollers_racing_buy_once(store, acs):
    acs.numbers.seconds = 0.3
    sms = sms_config(store, acs)
    sms.grant(CONSENT, None, ADMIN)
    started = time.time()
    order = sms.order(NumberOrderCreate(), ADMIN)
    time.sleep(0.6)  # the search is done: the next polls all want to purchase
    results = []
    threads = [
        threading.Thread(
            target=lambda: results.append(poll_until_done(sms_config(store, acs), order.id))
        )
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert {r.state for r in results} == {OrderState.SUCCEEDED}
    ours = [op for op in acs.numbers.operations.values() if op.created >= started]
    purchases = [op for op in ours if op.kind == "purchase"]
    assert len(purchases) == 1


def test_a_failed_order_says_why(store, acs):
    sms = sms_config(store, acs)
    sms.grant(CONSENT, None, ADMIN)
    acs.numbers.fail_next = "No toll-free numbers are available right now."
    order = poll_until_done(sms, sms.order(NumberOrderCreate(), ADMIN).id)
    assert order.state == OrderState.FAILED and "No toll-free numbers" in order.problem


def test_without_communication_services_an_order_is_refused(store, acs):
    sms = SmsConfig(store, endpoints(store), PhoneNumbers(None))
    sms.grant(CONSENT, None, ADMIN)
    with pytest.raises(AppError) as caught:
        sms.order(NumberOrderCreate(), ADMIN)
    assert code_of(caught) == "SMS-NOT-CONFIGURED"


def test_an_unreachable_service_is_sms_unavailable_with_retry_after(store, acs, clean_sandbox):
    sms = sms_config(store, acs)
    sms.grant(CONSENT, None, ADMIN)
    clean_sandbox.inject("/availablePhoneNumbers/*", status=503, count=5)
    with pytest.raises(AppError) as caught:
        sms.order(NumberOrderCreate(), ADMIN)
    assert code_of(caught) == "SRV-SMS-UNAVAILABLE" and caught.value.headers["Retry-After"]


# -- per-endpoint settings -----------------------------------------------------------------------
def test_settings_default_then_change_with_etag_and_texts_need_a_number_and_a_name(store, acs):
    sms = sms_config(store, acs)
    sms.grant(CONSENT, None, ADMIN)
    endpoint = add_endpoint(store, "clinic-a")
    defaults = sms.settings(endpoint)
    assert defaults.etag == 'W/"sms-defaults"' and not defaults.enabled
    assert (
        defaults.reminder_offsets_minutes == [1440, 15] and defaults.time_zone == "America/Chicago"
    )
    changed = sms.update_settings(
        endpoint,
        SmsSettingsUpdate.model_validate(
            {
                "language": "es",
                "time_zone": "America/New_York",
                "reminder_offsets_minutes": [15, 120],
                "quiet_hours": {"start": "20:00", "end": "07:30"},
                "join_window": {"before_minutes": 15, "after_minutes": 45},
            }
        ),
        defaults.etag,
        ADMIN,
    )
    assert changed.reminder_offsets_minutes == [120, 15] and changed.language == "es"
    with pytest.raises(AppError) as caught:
        sms.update_settings(endpoint, SmsSettingsUpdate(language="en"), None, ADMIN)
    assert code_of(caught) == "CFG-IF-MATCH-REQUIRED"
    on = SmsSettingsUpdate(enabled=True)
    for fix, code in ((None, "SMS-NUMBER-NOT-LINKED"), ("link", "SMS-ORGANIZATION-NAME-REQUIRED")):
        if fix:
            sms.link(SEED, NumberLinks(endpoints=[endpoint]), None, ADMIN)
        with pytest.raises(AppError) as caught:
            sms.update_settings(endpoint, on, changed.etag, ADMIN)
        assert code_of(caught) == code
    named = sms.update_settings(
        endpoint,
        SmsSettingsUpdate(enabled=True, organization_name="Contoso Clinic"),
        changed.etag,
        ADMIN,
    )
    assert named.enabled and named.language == "es"  # a merge patch: the rest kept
    entries, _ = audit.query(store, partition_key=f"ep-{endpoint}", action="sms.settings.update")
    assert len(entries) == 2 and entries[0].after["organization_name"] == "Contoso Clinic"


@pytest.mark.parametrize(
    "bad",
    [
        {"time_zone": "Mars/Olympus_Mons"},
        {"reminder_offsets_minutes": [15, 15]},
        {"quiet_hours": {"start": "25:00", "end": "07:00"}},
        {"language": "fr"},
        {"reminder_offsets_minutes": [1, 2, 3, 4, 5]},
        {"enabled": "yes"},
        {"language": None},
    ],
)
def test_settings_refuse_what_cannot_work(bad):
    with pytest.raises(ValueError):
        SmsSettingsUpdate.model_validate(bad)


# -- intake certificates -------------------------------------------------------------------------
def certificate_pem(kind: str = "rsa", days: int = 365, with_key: bool = False) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import NameOID

    key = (
        rsa.generate_private_key(65537, 2048)
        if kind == "rsa"
        else ec.generate_private_key(ec.SECP256R1())
    )
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "interface-engine.example.org")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=2))
        .not_valid_after(now + dt.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    if with_key:
        pem += key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
    return pem


def test_a_certificate_per_environment_with_its_thumbprint(store, acs):
    sms = sms_config(store, acs)
    sms.grant(CONSENT, None, ADMIN)
    test = sms.upload_certificate(Environment.TEST, certificate_pem(), None, ADMIN)
    assert len(test.thumbprint_sha256) == 64 and test.key_type == "RSA 2048"
    assert "interface-engine.example.org" in test.subject and "pem" not in test.public()
    pem = certificate_pem("ec")
    der = base64.b64encode(base64.b64decode("".join(pem.splitlines()[1:-1]))).decode()
    prod = sms.upload_certificate(Environment.PRODUCTION, der, None, ADMIN)
    assert prod.key_type == "EC P-256" and sms.certificate(Environment.TEST) == test
    with pytest.raises(AppError) as caught:
        sms.upload_certificate(Environment.TEST, certificate_pem(), None, ADMIN)
    assert code_of(caught) == "CFG-IF-MATCH-REQUIRED"
    assert sms.upload_certificate(Environment.TEST, pem, test.etag, ADMIN).key_type == "EC P-256"


@pytest.mark.parametrize("bad", ["private key", "expired", "garbage"])
def test_an_unusable_certificate_is_refused(store, acs, bad):
    sms = sms_config(store, acs)
    sms.grant(CONSENT, None, ADMIN)
    text = {
        "private key": lambda: certificate_pem(with_key=True),
        "expired": lambda: certificate_pem(days=-1),
        "garbage": lambda: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----",
    }[bad]()
    with pytest.raises(AppError) as caught:
        sms.upload_certificate(Environment.TEST, text, None, ADMIN)
    assert code_of(caught) == "SMS-CERT-INVALID"
    assert sms.certificate(Environment.TEST) is None
