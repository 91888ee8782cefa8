"""The portal's charts: bars laid out from the summary, drawn as escaped inline SVG."""

from __future__ import annotations

from lib.reports.charts import bar_chart, summary_charts
from lib.web.render import _env


def test_bars_scale_to_a_round_axis_and_long_ranges_label_about_ten_days():
    points = [(f"2026-03-{d:02d}", d) for d in range(1, 31)]
    chart = bar_chart("visits-per-day", "Visits per day", points, unit="visits")
    assert [t for _, t in chart.ticks] == ["0", "20", "40"]  # 30 -> an even axis up to 40
    assert [t for _, t in bar_chart("c", "C", [("a", 4)]).ticks] == ["0", "2", "4"]
    tallest = max(chart.bars, key=lambda b: b.height)
    assert tallest.label == "2026-03-30" and tallest.text == "30 visits"
    assert sum(b.tick for b in chart.bars) == 10
    assert "highest 2026-03-30: 30 visits" in chart.description


def test_shares_are_percent_and_a_day_without_measured_calls_has_no_bar():
    chart = bar_chart("poor-calls", "Share of poor calls", [("a", 0.25), ("b", None)], percent=True)
    assert [b.text for b in chart.bars] == ["25 %", "none"] and chart.bars[1].height == 0


def test_the_summary_makes_three_charts():
    summary = {
        "items": [
            {"day": "2026-03-02", "visits": 3, "measured_calls": 2, "poor_calls": 1},
            {"day": "2026-03-02", "visits": 1, "measured_calls": 0, "poor_calls": 0},
        ],
        "lobby_wait": [{"bucket": "under 1 min", "visits": 2}],
    }
    visits, waits, poor = summary_charts(summary)
    assert [b.value for b in visits.bars] == [4] and [b.value for b in poor.bars] == [0.5]
    assert waits.bars[0].label == "under 1 min"


def test_labels_are_escaped_in_the_svg():
    chart = bar_chart("x", "Visits <script>", [("<b>&", 1)])
    svg = _env().get_template("portal/chart.html").render(chart=chart)
    assert "<script>" not in svg and "&lt;b&gt;&amp;" in svg and 'role="img"' in svg
