"""`charts.chart_svg`, the one SVG plot routine: legend wrapping and the optional extras."""

from __future__ import annotations

import re

import numpy as np

from drl_trading.evaluation.charts import (
    CHART_WIDTH,
    PLOT_TOP,
    FillMarkers,
    ShadedArea,
    chart_svg,
    fixed_label,
    series_line,
    times_us,
)

TIMES = np.datetime64("2024-01-01T00:00", "us") + np.arange(100) * np.timedelta64(1, "h")
Y = np.linspace(1.0, 2.0, 100)


def _view_height(svg: str) -> int:
    match = re.search(r'viewBox="0 0 \d+ (\d+)"', svg)
    assert match is not None
    return int(match.group(1))


def _legend_x(svg: str) -> list[float]:
    return [float(x) for x in re.findall(r'<text x="([\d.]+)" y="\d+" class="legend">', svg)]


def test_a_legend_that_fits_keeps_one_row_and_the_height() -> None:
    svg = chart_svg("t", [series_line("a", "#000", TIMES, Y)], fixed_label, height=200)
    assert _view_height(svg) == 200
    assert f'y="{PLOT_TOP}"' in svg


def test_a_long_legend_wraps_and_pushes_the_plot_down() -> None:
    lines = [
        series_line(f"baseline number {k} with a long name", "#000", TIMES, Y) for k in range(6)
    ]
    svg = chart_svg("t", lines, fixed_label, height=200)
    rows = len(set(re.findall(r'y="(\d+)" class="legend"', svg)))
    assert rows > 1
    assert _view_height(svg) == 200 + 16 * (rows - 1)
    assert all(x < CHART_WIDTH for x in _legend_x(svg))
    assert f'<rect x="70" y="{PLOT_TOP + 16 * (rows - 1)}"' in svg


def test_verticals_outside_the_drawn_time_span_are_skipped() -> None:
    t = times_us(TIMES)
    svg = chart_svg(
        "t",
        [series_line("a", "#000", TIMES[10:], Y[10:])],
        fixed_label,
        verticals=[(int(t[0]), "fold 0"), (int(t[50]), "fold 1")],
    )
    assert "fold 1" in svg and "fold 0" not in svg
    assert svg.count('class="fold"') == 1


def test_area_and_marks_widen_the_axis_and_get_legend_entries() -> None:
    t = times_us(TIMES)
    svg = chart_svg(
        "t",
        [series_line("close", "#000", TIMES, Y)],
        fixed_label,
        area=ShadedArea("range", t, Y - 5.0, Y + 5.0),
        marks=FillMarkers(t[[10, 20]], Y[[10, 20]], np.array([1, -1])),
    )
    ticks = [
        float(v)
        for v in re.findall(
            r'<text x="64" y="[\d.]+" text-anchor="end" class="tick">([-\d.]+)<', svg
        )
    ]
    assert min(ticks) <= -4.0 and max(ticks) >= 7.0  # the y axis covers the area's bounds
    assert svg.count('fill="#16a34a"/>') == 1 and svg.count('fill="#dc2626"/>') == 1
    assert all(f">{label}</text>" in svg for label in ("range", "close", "buy", "sell"))
