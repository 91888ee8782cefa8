"""The capacity model's arithmetic (bench/capacity_model.py), on figures chosen by hand: the burst,
the instances it needs, the numbers for a slot's reminders, the organizer limit."""

from __future__ import annotations

from bench.capacity_model import Measured, System, markdown, model

FIGURES = Measured(
    launches_per_s=10.0, at_concurrency=4, p95_s=0.5, storage_ops_per_launch=6.0,
    events_per_s=50.0, texts_per_s=10.0, when="2026-01-01", curve="C=4: 10/s",
)  # fmt: skip


def rows(m: Measured = FIGURES, s: System = System()) -> dict[str, str]:
    return {what: value for what, value, _ in model(m, s)}


def test_the_burst_sizes_the_instances():
    got = rows()
    assert got["visits in one slot"] == "2,500"  # 50,000 over 20 half-hour slots
    assert got["launches a second, a slot's first minutes"] == "37.5"  # 2,500 x 3 x 60 % / 120 s
    assert got["instances for the launches"] == "7"  # 37.5 / (10 x 60 %) = 6.25 -> 7


def test_a_slots_reminders_need_thirteen_numbers_to_go_in_a_minute():
    assert rows()["toll-free numbers to send a slot's reminders in one minute"] == "13"
    # 100 ms here + 100 ms to the service: 300 a minute, a slot's reminders over 8.3 minutes
    [note] = [n for w, _, n in model(FIGURES) if w == "texts a minute one timer run sends"]
    assert "8.3 minutes" in note


def test_one_organizer_may_make_about_ninety_meetings_a_day():
    assert rows()["meetings a working day one organizer may make"] == "91"


def test_a_bigger_system_needs_more():
    bigger = rows(s=System(visits_per_day=100_000))
    assert int(bigger["instances for the launches"]) > int(rows()["instances for the launches"])


def test_the_doc_table_names_the_measurement():
    text = markdown(FIGURES)
    assert text.startswith("| what | how much | from |") and "Measured 2026-01-01" in text
