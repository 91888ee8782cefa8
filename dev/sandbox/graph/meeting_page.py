"""The meeting page at each joinWebUrl (a sandbox-only addition): join, wait in the lobby, admit,
leave."""

from __future__ import annotations

from urllib.parse import quote, urlencode

from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from dev.sandbox.graph import pages
from dev.sandbox.graph.meetings import (
    RosterError,
)
from dev.sandbox.standin import html_response


class MeetingPages:
    """Mixed into GraphStandIn."""

    # -- the meeting page -------------------------------------------------------------------------
    def meeting_page(self, request: Request, meeting_id: str) -> Response:
        meeting = self.meetings.get(meeting_id)
        if meeting is None:
            return _page_response(
                pages.message_page("Meeting not found", "This meeting link is not valid."), 404
            )
        role = request.args.get("role")
        if not role:
            action = self.url(f"/meet/{quote(meeting.id, safe='')}")
            return _page_response(pages.join_form(meeting, action, request.args.get("context")))
        try:
            person = self.join(
                meeting.id, role, request.args.get("name", ""), request.args.get("user")
            )
        except RosterError as exc:
            return _page_response(pages.message_page("Cannot join", exc.message), exc.status)
        return redirect(self._person_url(meeting.id, person.id), 303)

    def person_page(self, request: Request, meeting_id: str, participant_id: str) -> Response:
        try:
            person = self.meetings.participant(meeting_id, participant_id)
        except RosterError as exc:
            return _page_response(pages.message_page("Not found", exc.message), exc.status)
        rejoin = self.url(f"/meet/{quote(meeting_id, safe='')}?") + urlencode(
            {"role": person.role, "name": person.name}
        )
        roster_url = f"/_sandbox/graph/meetings/{quote(meeting_id, safe='')}"
        page = self.meetings.read(
            meeting_id,
            lambda meeting: pages.participant_page(
                meeting, person, self._person_url(meeting_id, participant_id), roster_url, rejoin
            ),
        )
        return _page_response(page)

    def page_admit(self, request: Request, meeting_id: str, participant_id: str) -> Response:
        if request.method != "POST":
            return redirect(self._person_url(meeting_id, participant_id), 303)
        try:
            self.admit(meeting_id, request.form.get("participant", ""), by=participant_id)
        except RosterError as exc:
            if exc.status != 409:  # already admitted by someone else: nothing to say
                return _page_response(pages.message_page("Cannot admit", exc.message), exc.status)
        return redirect(self._person_url(meeting_id, participant_id), 303)

    def page_leave(self, request: Request, meeting_id: str, participant_id: str) -> Response:
        if request.method != "POST":
            return redirect(self._person_url(meeting_id, participant_id), 303)
        try:
            self.leave(meeting_id, participant_id)
        except RosterError as exc:
            return _page_response(pages.message_page("Cannot leave", exc.message), exc.status)
        return redirect(self._person_url(meeting_id, participant_id), 303)

    def _person_url(self, meeting_id: str, participant_id: str) -> str:
        return self.url(f"/meet/{quote(meeting_id, safe='')}/p/{quote(participant_id, safe='')}")


def _page_response(body: str, status: int = 200) -> Response:
    response = html_response(body, status)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = pages.CSP
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
