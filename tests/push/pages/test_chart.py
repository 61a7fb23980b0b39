"""The geometry of the Console's usage chart: round scales, stacked bars, labelled days."""

from __future__ import annotations

import datetime as dt

import pytest

from push.pages.chart import HEIGHT, TOP, nice_ceiling, outcome_chart
from push.selectors import DayOutcomes

TODAY = dt.date(2026, 12, 5)


def days(*counts: tuple[int, int, int]) -> list[DayOutcomes]:
    start = TODAY - dt.timedelta(days=len(counts) - 1)
    return [
        DayOutcomes(day=start + dt.timedelta(days=n), delivered=d, failed=f, invalid_token=i)
        for n, (d, f, i) in enumerate(counts)
    ]


@pytest.mark.parametrize(
    ("value", "ceiling"),
    [(0, 4), (3, 4), (4, 4), (5, 5), (7, 10), (11, 20), (20, 20), (21, 50), (999, 1000)],
)
def test_nice_ceiling_rounds_up_to_1_2_or_5_times_a_power_of_ten(value, ceiling):
    assert nice_ceiling(value) == ceiling


def test_an_empty_fortnight_draws_no_bars_but_an_axis():
    chart = outcome_chart(days(*[(0, 0, 0)] * 14))

    assert chart.bars == [] and chart.total == 0
    assert [tick.text for tick in chart.y_ticks] == ["0", "2", "4"]


def test_bars_stack_delivered_at_the_bottom_and_reach_the_scaled_top():
    chart = outcome_chart(days((6, 3, 1)))

    assert [bar.outcome for bar in chart.bars] == ["delivered", "failed", "invalid_token"]
    bottom = chart.bars[0]
    assert bottom.y + bottom.height == pytest.approx(chart.axis_y)
    assert chart.bars[-1].y == pytest.approx(TOP)  # 10 of a scale of 10 fills the plot
    assert chart.total == 10 and chart.axis_y == HEIGHT - 30


def test_every_second_day_is_labelled_counting_back_from_today():
    chart = outcome_chart(days(*[(1, 0, 0)] * 14))

    assert len(chart.x_ticks) == 7
    assert chart.x_ticks[-1].text == "05 Dec"
    assert chart.bars[0].title == "22 Nov: 1 delivered"
