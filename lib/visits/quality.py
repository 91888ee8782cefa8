"""A visit's call quality, from the Microsoft Graph call record made after the call.

Graph's call record (`/communications/callRecords/{id}?$expand=sessions($expand=segments)`)
nests sessions -> segments -> media -> streams; each stream carries its direction and its
network figures (packet loss as a fraction, jitter and round trip as ISO 8601 durations). We keep
only those figures, per stream: no participant, device or network address from the record
(`figures_from_call_record`). The verdict ("poor call") is not stored: it is judged at report time
against the admin's thresholds, so changing a threshold re-judges past calls too.

Stored as the `quality` row beside the visit in `Visits` (PartitionKey the visit key), one per
visit: the latest record wins (Graph may update a record; its id stays).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from lib.storage import Entity, TableStore
from lib.visits.store import VISITS

# A call with more streams than this is cut to it (a row stays far below Table Storage's 1 MiB).
MAX_STREAMS = 64
_DURATION = re.compile(r"^PT(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?$")


class StreamFigures(BaseModel):
    """One media stream's network figures. Loss is a fraction (0.05 = 5 %); times in ms.
    None where the record leaves a figure out (Graph omits what it did not measure)."""

    model_config = ConfigDict(frozen=True)

    media: str  # the media label Graph gives (audio, video, videoBasedScreenSharing, ...)
    direction: str  # callerToCallee / calleeToCaller
    avg_packet_loss: float | None = None
    max_packet_loss: float | None = None
    avg_jitter_ms: float | None = None
    max_jitter_ms: float | None = None
    avg_round_trip_ms: float | None = None
    max_round_trip_ms: float | None = None


class CallQuality(Entity):
    """PartitionKey: the visit key; RowKey `quality`."""

    call_record_id: str  # Graph's id of the record (a GUID naming the call, not a person)
    measured_at: datetime  # the record's end time
    streams: list[StreamFigures]


def duration_ms(value: str | None) -> float | None:
    """ISO 8601 duration as Graph writes it (`PT0.015S`, `PT1M2.5S`) -> milliseconds."""
    if not value:
        return None
    match = _DURATION.match(value)
    if not match:
        return None
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return ((hours * 60 + minutes) * 60 + seconds) * 1000


def figures_from_call_record(record: dict[str, Any]) -> list[StreamFigures]:
    """Every stream's figures in a Graph call record (sessions and segments expanded)."""
    found: list[StreamFigures] = []
    for session in record.get("sessions") or []:
        for segment in session.get("segments") or []:
            for media in segment.get("media") or []:
                found.extend(_streams(media))
    return found[:MAX_STREAMS]


def _streams(media: dict[str, Any]) -> Iterable[StreamFigures]:
    label = str(media.get("label") or "unknown")
    for stream in media.get("streams") or []:
        yield StreamFigures(
            media=label,
            direction=str(stream.get("streamDirection") or "unknown"),
            avg_packet_loss=_number(stream.get("averagePacketLossRate")),
            max_packet_loss=_number(stream.get("maxPacketLossRate")),
            avg_jitter_ms=duration_ms(stream.get("averageJitter")),
            max_jitter_ms=duration_ms(stream.get("maxJitter")),
            avg_round_trip_ms=duration_ms(stream.get("averageRoundTripTime")),
            max_round_trip_ms=duration_ms(stream.get("maxRoundTripTime")),
        )


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class CallQualityStore:
    def __init__(self, store: TableStore) -> None:
        self._rows = store.table(VISITS, CallQuality)

    def put(
        self,
        visit_key: str,
        call_record_id: str,
        measured_at: datetime,
        streams: list[StreamFigures],
    ) -> CallQuality:
        row = CallQuality(
            partition_key=visit_key,
            row_key="quality",
            call_record_id=call_record_id,
            measured_at=measured_at,
            streams=streams[:MAX_STREAMS],
        )
        return self._rows.upsert(row)

    def get(self, visit_key: str) -> CallQuality | None:
        return self._rows.get(visit_key, "quality")
