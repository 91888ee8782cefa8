"""Timer triggers: NCRONTAB or TimeSpan schedules on local wall-clock time (or
WEBSITE_TIME_ZONE), never overlapping a run still going."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from azure.functions.timer import TimerRequest

from dev.host.functions import FunctionInfo, binding_attr
from dev.host.invocation import Invoker
from dev.host.ncrontab import CronSchedule
from dev.host.settings import parse_timespan, resolve_setting_expressions

log = logging.getLogger("dev.host")

# A timer that fires later than this after its due time is reported as past due.
PAST_DUE_SECONDS = 1.0


@dataclass(frozen=True)
class IntervalSchedule:
    """A TimeSpan schedule such as `00:05:00`: every interval from start-up."""

    seconds: float

    def next_after(self, when: datetime) -> datetime:
        return when + timedelta(seconds=self.seconds)


def parse_schedule(text: str) -> CronSchedule | IntervalSchedule:
    if re.fullmatch(r"(\d+\.)?\d{1,2}:\d{2}(:\d{2})?", text.strip()):
        return IntervalSchedule(parse_timespan(text))
    return CronSchedule.parse(text)


def timer_clock() -> Callable[[], datetime]:
    """Timers run on local wall-clock time, as with Core Tools (in Azure that is UTC), or on
    WEBSITE_TIME_ZONE when it names an IANA zone."""
    zone_name = os.environ.get("WEBSITE_TIME_ZONE")
    if zone_name:
        try:
            zone = ZoneInfo(zone_name)
            return lambda: datetime.now(zone)
        except (ZoneInfoNotFoundError, ValueError):
            log.warning("WEBSITE_TIME_ZONE '%s' is not an IANA zone; using local time", zone_name)
    return datetime.now


def timer_request(
    due: datetime, fired: datetime, last: datetime | None, upcoming: datetime
) -> TimerRequest:
    status = {
        "Last": last.isoformat() if last else None,
        "Next": upcoming.isoformat(),
        "LastUpdated": fired.isoformat(),
    }
    # func.TimerRequest is the abstract interface; the worker passes this concrete class.
    return TimerRequest(
        past_due=(fired - due).total_seconds() > PAST_DUE_SECONDS,
        schedule_status=status,
        schedule={"AdjustForDST": True},
    )


class TimerRunner:
    """Fires one timer function. Runs happen in this thread, so a run never overlaps the next:
    occurrences that pass while the function is still running are skipped."""

    def __init__(self, fn: FunctionInfo, invoker: Invoker, stopping: threading.Event) -> None:
        self.fn = fn
        self.invoker = invoker
        self.stopping = stopping
        expression = resolve_setting_expressions(binding_attr(fn.trigger, "schedule"))
        self.schedule = parse_schedule(expression)
        self.now = timer_clock()
        self.schedule.next_after(self.now())  # a schedule that never fires fails at start-up
        self.run_on_startup = bool(binding_attr(fn.trigger, "run_on_startup", "runOnStartup"))
        self.thread = threading.Thread(target=self.run, name=f"timer-{fn.name}", daemon=True)

    def run(self) -> None:
        last: datetime | None = None
        if self.run_on_startup:
            now = self.now()
            self.fire(now, now, last)
            last = now
        due = self.schedule.next_after(self.now())
        while self.sleep_until(due):
            self.fire(due, self.now(), last)
            last = due
            due = self.schedule.next_after(max(due, self.now()))

    def sleep_until(self, due: datetime) -> bool:
        """Wait for `due`; False when the host is stopping."""
        while (remaining := due.timestamp() - time.time()) > 0:
            if self.stopping.wait(remaining):
                return False
        return not self.stopping.is_set()

    def fire(self, due: datetime, fired: datetime, last: datetime | None) -> None:
        request = timer_request(due, fired, last, self.schedule.next_after(max(due, fired)))
        with contextlib.suppress(Exception):  # logged by the invoker; the timer keeps going
            self.invoker.invoke(self.fn, request, "Timer fired")
