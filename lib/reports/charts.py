"""Bar charts for the portal, laid out here and drawn as inline SVG by a template (autoescaped,
no script, no third-party asset): visits per day, the lobby-wait distribution, the share of poor
calls per day. Each chart's numbers are also a table next to it (portal/reports.html)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

WIDTH, HEIGHT = 640, 220
LEFT, BOTTOM, TOP, RIGHT = 44, 36, 12, 8


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str  # the category (a day, a bucket)
    value: float
    text: str  # the value as shown (in the tooltip and the table)
    tick: bool  # whether its label is written under the axis (long ranges skip some)


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    description: str
    bars: list[Bar]
    ticks: list[tuple[float, str]]  # y position and label of the value axis
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    baseline: float = HEIGHT - BOTTOM


def bar_chart(
    chart_id: str,
    title: str,
    points: Sequence[tuple[str, float | None]],
    *,
    percent: bool = False,
    unit: str = "",
) -> Chart:
    """A chart of `points` (label, value; None shows as no bar). `percent`: values are shares."""
    values = [v or 0.0 for _, v in points]
    top = 1.0 if percent else _nice(max(values, default=0.0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(len(points), 1)
    every = max(1, round(len(points) / 10))  # at most about ten labels under the axis
    bars = []
    for i, (label, value) in enumerate(points):
        h = plot_h * (value or 0.0) / top if top else 0.0
        bars.append(Bar(
            x=round(LEFT + i * step + step * 0.15, 1), y=round(TOP + plot_h - h, 1),
            width=round(step * 0.7, 1), height=round(h, 1), label=label, value=value or 0.0,
            text=_text(value, percent, unit), tick=i % every == 0,
        ))  # fmt: skip
    ticks = [(round(TOP + plot_h * (1 - f), 1), _text(top * f, percent, "")) for f in (0, 0.5, 1)]
    biggest = max(points, key=lambda p: p[1] or 0.0, default=None)
    summary = f"{len(points)} bars" + (
        f"; highest {biggest[0]}: {_text(biggest[1], percent, unit)}" if biggest else ""
    )
    return Chart(
        chart_id, title, f"{title}. {summary}. The table below gives every value.", bars, ticks
    )


def _nice(peak: float) -> float:
    """A round, even axis top at or above `peak` (2, 4, 6, 8 or 10 times a power of ten), so
    the middle tick of a count is a whole number too."""
    if peak <= 2:
        return 2.0
    scale = 10 ** (len(str(int(peak))) - 1)
    return next(m * scale for m in (2, 4, 6, 8, 10) if m * scale >= peak)


def _text(value: float | None, percent: bool, unit: str) -> str:
    if value is None:
        return "none"
    if percent:
        return f"{value * 100:.0f} %"
    shown = f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"
    return f"{shown}{(' ' + unit) if unit else ''}"


def summary_charts(summary: dict[str, Any]) -> list[Chart]:
    """The three charts of a summary (lib/reports/summary.py's `public()`)."""
    per_day: dict[str, dict[str, float]] = {}
    for item in summary["items"]:
        day = per_day.setdefault(item["day"], {"visits": 0, "measured": 0, "poor": 0})
        day["visits"] += item["visits"]
        day["measured"] += item["measured_calls"]
        day["poor"] += item["poor_calls"]
    days = sorted(per_day)
    return [
        bar_chart("visits-per-day", "Visits per day",
                  [(d, per_day[d]["visits"]) for d in days], unit="visits"),
        bar_chart("lobby-wait", "Lobby wait of completed visits",
                  [(b["bucket"], b["visits"]) for b in summary["lobby_wait"]], unit="visits"),
        bar_chart("poor-calls", "Share of poor calls per day",
                  [(d, per_day[d]["poor"] / per_day[d]["measured"] if per_day[d]["measured"]
                    else None) for d in days], percent=True),
    ]  # fmt: skip
