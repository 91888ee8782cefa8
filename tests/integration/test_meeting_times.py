"""Times learnt while createOrGet runs ride in the lobby PATCH (lib/teams/meetings.py), against
the sandbox's Graph over real HTTPS."""

from __future__ import annotations

import datetime as dt

from lib.teams import MeetingService
from tests.integration.test_teams_graph import CREATE_PATH, END, OIDS, START, count, teams, unique

__all__ = ["teams"]  # the fixture, shared with test_teams_graph.py

PATCHES = "/graph/*/onlineMeetings/*"
LATER = START + dt.timedelta(days=2)


def test_late_times_are_set_by_the_one_lobby_patch(teams, clean_sandbox):
    meetings = MeetingService(teams())
    asked: list[int] = []

    def times():
        asked.append(count(clean_sandbox, CREATE_PATH))  # how many createOrGet had been sent
        return LATER, LATER + dt.timedelta(minutes=20)

    made = meetings.create_or_get(OIDS["reyes"], unique(), "Virtual visit", START, END, times=times)
    assert asked == [1]  # called once, after createOrGet
    assert (made.start, made.end) == (LATER, LATER + dt.timedelta(minutes=20))
    stored = clean_sandbox.graph.meetings[made.id]
    assert (stored.start, stored.end) == (made.start, made.end)
    assert stored.lobby_scope == "organization"
    assert count(clean_sandbox, CREATE_PATH) == 1 and count(clean_sandbox, PATCHES, "PATCH") == 1


def test_times_the_meeting_has_or_none_add_nothing(teams, clean_sandbox):
    meetings = MeetingService(teams())
    external_id = unique()
    first = meetings.create_or_get(OIDS["reyes"], external_id, "Virtual visit", START, END)
    again = meetings.create_or_get(
        OIDS["reyes"], external_id, "Virtual visit", START, END, times=lambda: (START, END)
    )
    unknown = meetings.create_or_get(
        OIDS["reyes"], external_id, "Virtual visit", START, END, times=lambda: None
    )
    assert first == again == unknown
    assert count(clean_sandbox, PATCHES, "PATCH") == 1  # the first one's lobby PATCH only
