"""`GET /api/j/{token}` (F15): a patient follows the link in a text into the meeting lobby.

The token (joinlink.py) names the visit and the schedule version of the text it came in. It
works from `before_minutes` before the appointment's start to `after_minutes` after it (the
endpoint's join window, read at use, so a changed window applies to links already sent), and
only for the newest version: a rescheduled appointment supersedes older texts' links. The
visit is opened as a patient launch opens it (lib/visits/opening.py: claim, one meeting, the
organizer the visit already has), "patient connected" is recorded, and the browser goes to
the meeting's join URL (the lobby for anonymous guests).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from lib.endpoints.service import EndpointService
from lib.privacy import PrivacyKeys
from lib.sms import joinlink
from lib.sms.config import SmsConfig
from lib.visits.opening import PendingVisit, VisitOpener
from lib.visits.store import Visit, VisitStore
from lib.web.errors import AppError
from lib.web.http import Response
from lib.web.urls import Urls


class SmsJoin:
    def __init__(
        self,
        privacy: PrivacyKeys,
        visits: VisitStore,
        endpoints: EndpointService,
        config: SmsConfig,
        opener: VisitOpener,
        urls: Urls,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._privacy = privacy
        self._visits = visits
        self._endpoints = endpoints
        self._config = config
        self._opener = opener
        self._urls = urls
        self._now = now

    def link(self, visit_key: str, version: int) -> str:
        """The join link a text carries for this visit at this schedule version."""
        token = joinlink.make(self._privacy, joinlink.JoinRef(visit_key, version))
        return f"{self._urls.api}/j/{token}"

    def join(self, token: str) -> Response:
        ref = joinlink.read(self._privacy, token)
        visit = self._visits.get(ref.visit_key) if ref else None
        if ref is None or visit is None or visit.start is None:
            raise AppError("SMS-LINK-INVALID")
        if visit.cancelled_at is not None:
            raise AppError("SMS-LINK-CANCELLED")
        if ref.version < (visit.schedule_version or 0):
            raise AppError("SMS-LINK-SUPERSEDED")
        endpoint = self._endpoints.launchable(visit.endpoint_id)
        self._check_window(visit)
        organizer = visit.organizer_oid or endpoint.launch.default_organizer or ""
        opened = self._opener.open(
            endpoint,
            "patient",
            PendingVisit(visit_key=visit.key),
            organizer,
            existing=visit,
            source="sms",
        )
        return Response.redirect(opened.join_url or "")

    def _check_window(self, visit: Visit) -> None:
        settings = self._config.settings(visit.endpoint_id)
        start = visit.start
        assert start is not None
        opens = start - timedelta(minutes=settings.join_window.before_minutes)
        closes = (visit.end or start) + timedelta(minutes=settings.join_window.after_minutes)
        now = self._now()
        if now < opens:
            local = opens.astimezone(ZoneInfo(settings.time_zone))
            raise AppError(
                "SMS-LINK-EARLY",
                f"It opens at {local:%H:%M} on {local:%d %b} ({settings.time_zone}).",
            )
        if now > closes:
            raise AppError("SMS-LINK-EXPIRED")
