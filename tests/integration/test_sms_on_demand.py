"""The clinician's on-demand text (lib/sms/sending.py `send_now`) on Azurite and the sandbox's
Communication Services: sent at once through the ledger's states, once a minute at most, and
when the service throttles, sealed for the timer, which sends it once."""

from __future__ import annotations

import datetime as dt

from lib.privacy import PrivacyKeys
from lib.sms.sender import SendResult, SmsSender
from lib.sms.sending import ON_DEMAND_PHONE, OptOuts
from tests.integration.test_sms_sending import HASH_KEY, world  # noqa: F401 (fixture)

PHONE = "+15555550103"


class ThrottledOnce(SmsSender):
    """The service answers the first send with 429 and Retry-After: 40, then takes them."""

    def __init__(self, connection_string: str) -> None:
        super().__init__(connection_string)
        self.calls = 0

    def send(self, sender, to, text, tag):
        self.calls += 1
        if self.calls == 1:
            return SendResult("retry", reason="HTTP 429", retry_after=40)
        return super().send(sender, to, text, tag)


def test_sent_at_once_and_a_second_press_within_the_minute_is_refused(world):  # noqa: F811
    visit = world.visit("+15555550199")  # the scheduling message's number; the EHR's differs
    texting = world.texting()
    row = texting.send_now(visit, PHONE)
    assert row is not None and row.state == "sent" and row.kind == "on-demand"
    [text] = world.acs.sent_to(PHONE)
    assert "join your video visit" in text.message and text.tag == row.tag
    world.clock.now += dt.timedelta(seconds=59)
    assert texting.send_now(visit, PHONE) is None  # "already sent"
    assert world.sealed.open(visit.key, ON_DEMAND_PHONE) is None  # never needed: never kept
    world.clock.now += dt.timedelta(seconds=2)
    assert texting.send_now(visit, PHONE).state == "sent"  # a minute later, a new press
    assert len(world.acs.sent_to(PHONE)) == 2
    texting.run()  # the timer finds nothing left to do
    assert len(world.acs.sent_to(PHONE)) == 2


def test_a_throttled_text_is_sealed_and_sent_once_by_the_timer(world):  # noqa: F811
    visit = world.visit("+15555550199")
    sender = ThrottledOnce(world.acs.connection_string)
    texting = world.texting(sender)
    row = texting.send_now(visit, PHONE)
    assert row.state == "due" and row.reason == "HTTP 429"
    assert world.sealed.open(visit.key, ON_DEMAND_PHONE) == PHONE  # for the retry only
    assert world.acs.sent_to(PHONE) == []
    texting.run()  # not yet: Retry-After
    assert world.acs.sent_to(PHONE) == []
    world.clock.now += dt.timedelta(seconds=61)
    texting.run()
    texting.run()
    assert len(world.acs.sent_to(PHONE)) == 1 and sender.calls == 2
    [done] = [r for r in texting.ledger.for_visit(visit.key) if r.kind == "on-demand"]
    assert done.state == "sent"


def test_an_opted_out_patient_gets_nothing(world):  # noqa: F811
    visit = world.visit("+15555550199")
    OptOuts(world.store, PrivacyKeys(HASH_KEY)).add(PHONE, "stop")
    row = world.texting().send_now(visit, PHONE)
    assert row.state == "skipped" and row.reason == "opted out"
    assert world.acs.sent_to(PHONE) == []
