"""Microsoft Graph stand-in: onlineMeetings (createOrGet, GET, PATCH), users, a meeting page,
subscriptions with change notifications, call records and attendance reports.

See ``standin.py`` for the routes, ``api.py`` for the Graph calls (``parsing.py``: their bodies),
``meeting_page.py`` for the page, ``meetings.py`` for rosters and the listener hook,
``notify.py`` for subscriptions and deliveries, ``calls.py`` for what a call leaves behind and
``subscriptions_api.py`` for their HTTP calls.
"""

from dev.sandbox.graph.meetings import OnlineMeeting, Participant, RosterChange
from dev.sandbox.graph.standin import GraphStandIn
from dev.sandbox.graph.store import MeetingStore

__all__ = ["GraphStandIn", "MeetingStore", "OnlineMeeting", "Participant", "RosterChange"]
