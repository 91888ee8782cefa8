"""Call quality figures: read from a Graph call record, stored beside the visit on Azurite."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from azure.data.tables import TableServiceClient

from lib.storage import TableStore
from lib.visits.quality import CallQualityStore, duration_ms, figures_from_call_record

# The shape Graph returns for a call record, with sessions($expand=segments) expanded
RECORD = {
    "id": "e523d2ed-2966-4b6b-925b-754a88034cc5",
    "endDateTime": "2026-12-01T09:31:00Z",
    "sessions": [
        {
            "segments": [
                {
                    "caller": {"identity": {"user": {"displayName": "not kept"}}},
                    "media": [
                        {
                            "label": "main-audio",
                            "streams": [
                                {
                                    "streamDirection": "callerToCallee",
                                    "averagePacketLossRate": 0.01,
                                    "maxPacketLossRate": 0.08,
                                    "averageJitter": "PT0.015S",
                                    "maxJitter": "PT0.05S",
                                    "averageRoundTripTime": "PT0.12S",
                                    "maxRoundTripTime": "PT1M0.5S",
                                },
                                {"streamDirection": "calleeToCaller", "averagePacketLossRate": 0},
                            ],
                        }
                    ],
                }
            ]
        }
    ],
}


def test_durations_are_read_as_graph_writes_them():
    assert duration_ms("PT0.015S") == 15
    assert duration_ms("PT1M0.5S") == 60500
    assert duration_ms("PT1H") == 3_600_000
    assert duration_ms("bogus") is None and duration_ms(None) is None


def test_figures_keep_only_network_numbers():
    first, second = figures_from_call_record(RECORD)
    assert (first.media, first.direction) == ("main-audio", "callerToCallee")
    assert (first.avg_packet_loss, first.max_packet_loss) == (0.01, 0.08)
    assert (first.avg_jitter_ms, first.max_round_trip_ms) == (15, 60500)
    assert second.avg_packet_loss == 0 and second.avg_jitter_ms is None
    assert "not kept" not in first.model_dump_json() + second.model_dump_json()


def test_stored_beside_the_visit_and_replaced_by_a_newer_record(storage_connection_string):
    store = TableStore(
        TableServiceClient.from_connection_string(storage_connection_string),
        "q" + uuid.uuid4().hex[:10],
    )
    quality = CallQualityStore(store)
    visit_key = uuid.uuid4().hex
    assert quality.get(visit_key) is None
    at = datetime(2026, 12, 1, 9, 31, tzinfo=UTC)
    quality.put(visit_key, RECORD["id"], at, figures_from_call_record(RECORD))
    quality.put(visit_key, RECORD["id"], at, figures_from_call_record(RECORD)[:1])
    row = quality.get(visit_key)
    assert row is not None and row.measured_at == at
    assert [s.direction for s in row.streams] == ["callerToCallee"]
