"""Microsoft Graph stand-in: onlineMeetings (createOrGet, GET, PATCH), users, a meeting page.

See ``standin.py`` for the routes, ``api.py`` for the Graph calls (``parsing.py``: their bodies),
``meeting_page.py`` for the page and ``meetings.py`` for rosters and the listener hook.
"""

from dev.sandbox.graph.meetings import OnlineMeeting, Participant, RosterChange
from dev.sandbox.graph.standin import GraphStandIn
from dev.sandbox.graph.store import MeetingStore

__all__ = ["GraphStandIn", "MeetingStore", "OnlineMeeting", "Participant", "RosterChange"]
