"""The event model and its fold (lib/visits/events.py): order, duplicates, lobby wait, the end."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from lib.visits.events import (
    IN_VISIT,
    JOINING,
    LEFT,
    NOT_JOINED,
    WAITING,
    VisitEventMessage,
    fold,
)
from lib.visits.store import VisitEvent

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
KEY = "vk_" + "a" * 40


def ev(n: int, kind: str, role: str, seconds: float) -> VisitEventMessage:
    return VisitEventMessage(
        event_id=f"event-{n:04d}",
        visit_key=KEY,
        kind=kind,  # type: ignore[arg-type]
        role=role,  # type: ignore[arg-type]
        at=T0 + timedelta(seconds=seconds),
        source="graph",
    )


JOURNEY = [
    ev(1, "arrived", "provider", 0),
    ev(2, "arrived", "patient", 10),
    ev(3, "lobby", "patient", 12),
    ev(4, "joined", "provider", 30),
    ev(5, "joined", "patient", 72),
    ev(6, "left", "patient", 600),
    ev(7, "ended", "visit", 610),
]


def test_a_journey_adds_up():
    state = fold(JOURNEY)
    assert (state.provider, state.patient) == (LEFT, LEFT)
    assert state.lobby_wait_seconds == 62  # from arriving (10 s) to admitted (72 s)
    assert state.admitted_at == T0 + timedelta(seconds=72)
    assert state.both_in_at == T0 + timedelta(seconds=72)
    assert state.ended_at == T0 + timedelta(seconds=610)
    assert state.events == 7 and state.waiting_since is None


def test_statuses_along_the_way():
    assert fold([]).patient == NOT_JOINED
    assert fold(JOURNEY[:2]).patient == JOINING
    waiting = fold(JOURNEY[:3])
    assert waiting.patient == WAITING and waiting.waiting_since == T0 + timedelta(seconds=10)
    assert fold(JOURNEY[:5]).patient == IN_VISIT


@pytest.mark.parametrize("seed", range(6))
def test_any_arrival_order_gives_the_same_state(seed):
    orders = list(itertools.islice(itertools.permutations(JOURNEY), seed * 97, seed * 97 + 1))
    assert fold(orders[0]) == fold(JOURNEY)


def test_a_late_arrived_never_overrides_a_later_left():
    left, late = ev(2, "left", "patient", 50), ev(1, "arrived", "patient", 40)
    assert fold([left, late]).patient == LEFT


def test_the_same_event_twice_counts_once():
    twice = [*JOURNEY, *JOURNEY[2:4]]
    assert fold(twice) == fold(JOURNEY)


def test_opening_the_link_again_while_in_the_visit_keeps_them_in():
    again = ev(9, "arrived", "patient", 100)
    assert fold([*JOURNEY[:5], again]).patient == IN_VISIT


def test_a_second_wait_adds_to_the_first():
    back = [ev(10, "lobby", "patient", 700), ev(11, "joined", "patient", 730)]
    state = fold([*JOURNEY[:6], *back])
    assert state.lobby_wait_seconds == 62 + 30
    assert state.admitted_at == T0 + timedelta(seconds=72)  # the first admission stays


def test_the_end_closes_a_wait():
    state = fold([ev(1, "lobby", "patient", 0), ev(2, "ended", "visit", 90)])
    assert state.patient == LEFT and state.lobby_wait_seconds == 90 and state.waiting_since is None


def test_the_message_round_trips_and_refuses_what_is_not_an_event():
    event = JOURNEY[2]
    assert VisitEventMessage.from_text(event.to_text()) == event
    with pytest.raises(ValidationError):
        VisitEventMessage.from_text(event.to_text().replace('"lobby"', '"teleported"'))
    with pytest.raises(ValidationError):  # no room for anything else (a name, a phone number)
        VisitEventMessage.model_validate(event.model_dump() | {"patient_name": "Ana"})
    with pytest.raises(ValueError):
        VisitEventMessage.from_text("not json")


def test_the_message_holds_nothing_but_the_model():
    fields = set(VisitEventMessage.model_fields)
    # participant: a keyed hash telling people of one role apart (pattern-limited: no name fits);
    # traceparent: the sender's W3C trace context (hex only), never stored with the event
    assert fields == {
        "event_id", "visit_key", "kind", "role", "at", "source", "participant", "traceparent"
    }  # fmt: skip
    assert "traceparent" not in VisitEvent.model_fields
