"""Which of a Patient's ContactPoints gets the on-demand text, and how the page shows it."""

from __future__ import annotations

from lib.launch.visit_sms import masked
from lib.sms.schedule import telecom_phones


def test_mobile_first_then_rank_and_old_or_ended_numbers_left_out():
    points = [
        {"system": "email", "value": "a@example.org"},
        {"system": "phone", "value": "+15555550111", "use": "home", "rank": 1},
        {"system": "phone", "value": "+15555550112", "use": "mobile", "rank": 2},
        {"system": "phone", "value": "+15555550113", "use": "mobile", "rank": 1},
        {"system": "phone", "value": "+15555550114", "use": "old"},
        {"system": "phone", "value": "+15555550115", "period": {"end": "2001-01-01"}},
        {"system": "sms", "value": ""},
        "not a contact point",
    ]
    assert telecom_phones(points) == ("+15555550113", "+15555550112", "+15555550111")


def test_the_number_is_shown_by_its_last_two_digits_only():
    assert masked("+15555550102") == "•••• ••02"
