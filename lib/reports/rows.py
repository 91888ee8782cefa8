"""The report table: one row per visit, in the partition of its endpoint and clinic-local day.

`VisitReports`: PartitionKey `{yyyy-mm-dd}|{endpoint}` (the day the visit started in the clinic's
time zone), RowKey `{UTC start, yyyymmddThhmmss}-{visit key}`: a day reads in time order; a
90-day report of one endpoint is 90 partition reads, whatever else is stored; and a report of
every endpoint is one PartitionKey range (day first), however many endpoints there are.

A visit's row moves when its day or start changes (a reschedule, or the first time both are in):
the `report` row beside the visit in `Visits` (PartitionKey the visit key) says where its row is,
so the old one is deleted (a point read by key: reports never scan Visits).
"""

from __future__ import annotations

import re
from datetime import date, datetime

from pydantic import BaseModel, ConfigDict

from lib.storage import Entity

REPORTS = "VisitReports"
POINTER = "report"  # RowKey of the pointer beside the visit in Visits
DAY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


class Stream(BaseModel):
    """One stream's averages and worst values (loss a fraction, times in ms), as judged."""

    model_config = ConfigDict(frozen=True)

    media: str
    direction: str
    avg_loss: float | None = None
    max_loss: float | None = None
    avg_jitter: float | None = None
    max_jitter: float | None = None
    avg_rtt: float | None = None
    max_rtt: float | None = None


class VisitReport(Entity):
    """What the report columns need; no name, phone, token or EHR id (organizer: an object id)."""

    endpoint_id: str
    visit_key: str
    department: str | None = None
    time_zone: str
    scheduled_at: datetime | None = None  # the appointment's start, as scheduled
    started_at: datetime | None = None  # first time a clinician and the patient were both in
    ended_at: datetime | None = None  # when the last person left (or the call ended)
    organizer_oid: str | None = None
    max_present: int = 0
    lobby_wait_seconds: float = 0.0
    patient_admitted: bool = False
    call_ended: bool = False
    cancelled: bool = False
    texts_sent: int = 0
    quality_measured: bool = False
    streams: list[Stream] = []
    updated_at: datetime

    @property
    def day(self) -> str:
        return self.partition_key.split("|", 1)[0]


class ReportPointer(Entity):
    """PartitionKey the visit key, RowKey `report`: where the visit's report row is."""

    report_partition: str
    report_row: str


def partition(endpoint_id: str, day: date | str) -> str:
    """Day first: a range of days over every endpoint is one PartitionKey range."""
    return f"{day if isinstance(day, str) else day.isoformat()}|{endpoint_id}"


def row_key(moment: datetime, visit_key: str) -> str:
    return f"{moment:%Y%m%dT%H%M%S}-{visit_key}"
