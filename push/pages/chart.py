"""The geometry of the Console's 14-day deliveries chart, drawn as inline SVG by a template."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from push.selectors import DayOutcomes

WIDTH, HEIGHT = 480, 220
LEFT, RIGHT, TOP, BOTTOM = 52, 8, 10, 30
# Bottom to top: the outcome that matters most sits on the axis.
STACK = (("delivered", "Delivered"), ("failed", "Failed"), ("invalid_token", "Invalid token"))


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    outcome: str
    title: str


@dataclass(frozen=True)
class Tick:
    position: float
    text: str
    minor: bool = False  # hidden on phones, where every fourth day's label fits
    anchor: str = "middle"


@dataclass
class Chart:
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right_edge: int = WIDTH - RIGHT
    axis_y: int = HEIGHT - BOTTOM
    y_label_x: int = LEFT - 6
    x_label_y: int = HEIGHT - BOTTOM + 18
    bars: list[Bar] = field(default_factory=list)
    x_ticks: list[Tick] = field(default_factory=list)
    y_ticks: list[Tick] = field(default_factory=list)
    days: list[DayOutcomes] = field(default_factory=list)
    total: int = 0


def nice_ceiling(value: int) -> int:
    """Return the smallest 1, 2 or 5 times a power of ten that is at least `value` (min 4)."""
    if value <= 4:
        return 4
    power = 10 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= value)


def outcome_chart(days: list[DayOutcomes]) -> Chart:
    """Lay out one stacked bar per day, scaled to a round maximum."""
    chart = Chart(days=days, total=sum(day.total for day in days))
    top = nice_ceiling(max((day.total for day in days), default=0))
    plot_height = chart.axis_y - TOP
    slot = (chart.right_edge - LEFT) / max(len(days), 1)
    for index, day in enumerate(days):
        x = LEFT + index * slot + slot * 0.15
        base = float(chart.axis_y)
        for outcome, name in STACK:
            count = getattr(day, outcome)
            if not count:
                continue
            height = plot_height * count / top
            base -= height
            title = f"{day.day:%d %b}: {count} {name.lower()}"
            chart.bars.append(Bar(x, base, slot * 0.7, height, outcome, title))
        # A label every second day, counted back from today so today is always labelled; today's
        # ends at its bar's right edge, so it is not cut off by the chart's.
        back = len(days) - 1 - index
        if back % 2 == 0:
            position, anchor = (x + slot * 0.7, "end") if back == 0 else (x + slot * 0.35, "middle")
            chart.x_ticks.append(Tick(position, f"{day.day:%d %b}", back % 4 != 0, anchor))
    chart.y_ticks = [
        Tick(chart.axis_y - plot_height * share, f"{round(top * share):,}") for share in (0, 0.5, 1)
    ]
    return chart
