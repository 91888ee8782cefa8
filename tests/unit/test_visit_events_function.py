"""The visit_events queue function: thin, a bad message raises (the queue retries it, then the
host keeps it in visit-events-poison), a good one is applied under the background budget."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from azure.functions.queue import QueueMessage  # what the worker hands a queue function

import lib.bootstrap
from functions.visit_events import visit_events
from lib.net.budget import current
from lib.visits.events import VisitEventMessage


@pytest.fixture
def applied(monkeypatch) -> list:
    seen: list = []

    def apply(event):
        seen.append((event, current()))

    fake = SimpleNamespace(
        settings=SimpleNamespace(background_budget=60.0), timeline=SimpleNamespace(apply=apply)
    )
    monkeypatch.setattr(lib.bootstrap, "background_services", lambda: fake)
    return seen


def message(body: str) -> QueueMessage:
    return QueueMessage(id="m1", body=body.encode(), dequeue_count=1)


def test_an_event_is_applied_under_the_background_budget(applied):
    event = VisitEventMessage.new("vk" + "0" * 30, "lobby", "patient", "graph")
    visit_events(message(event.to_text()))
    ((got, budget),) = applied
    assert got == event and budget is not None and budget.kind == "background"


@pytest.mark.parametrize("body", ["not json", '{"kind": "lobby"}', '{"event_id": "x"}', "[]"])
def test_what_is_not_an_event_raises_and_is_never_applied(applied, body, caplog):
    with pytest.raises(ValueError):
        visit_events(message(body))
    assert applied == [] and "not a visit event" in caplog.text
