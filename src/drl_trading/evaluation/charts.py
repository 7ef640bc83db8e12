"""The report's charts: hand-built SVG (no scripts, no URLs), so a report stays one file.

Series are reduced to at most `MAX_CHART_POINTS` points per line by keeping each bucket's minimum
and maximum in time order, so a flash crash or a spike in equity stays visible however long the
backtest; a million-step trace renders in well under a second. Caller text goes through
`escape` (`html.escape`)."""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from drl_trading.evaluation.report import SymbolSection
from drl_trading.evaluation.trace import SimulationTrace

MAX_CHART_POINTS = 2000


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def escape(text: object) -> str:
    return html.escape(str(text), quote=True)


def _dt_from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def times_us(times: np.ndarray) -> np.ndarray:
    us: np.ndarray = times.astype("datetime64[us]").astype(np.int64)
    return us


def _minmax_indices(y: np.ndarray, max_points: int = MAX_CHART_POINTS) -> np.ndarray:
    """Indices of each bucket's min and max (plus both ends), sorted: at most ``max_points``."""
    n = len(y)
    if n <= max_points:
        return np.arange(n)
    buckets = max(max_points // 2 - 1, 1)
    width = -(-n // buckets)
    padded = np.full(buckets * width, y[-1], dtype=np.float64)
    padded[:n] = y
    grid = padded.reshape(buckets, width)
    base = np.arange(buckets) * width
    lows = np.minimum(base + grid.argmin(axis=1), n - 1)
    highs = np.minimum(base + grid.argmax(axis=1), n - 1)
    return np.unique(np.concatenate(([0, n - 1], lows, highs)))


def _nice_step(span: float, target: int) -> float:
    raw = span / target
    magnitude = 10.0 ** math.floor(math.log10(raw))
    for mult in (1.0, 2.0, 2.5, 5.0, 10.0):
        if raw <= mult * magnitude * (1 + 1e-9):
            return mult * magnitude
    return 10.0 * magnitude


def y_axis(lo: float, hi: float, target: int = 5) -> tuple[float, float, list[float], int]:
    """Axis bounds snapped to round ticks, the ticks and the decimals they need; a flat series
    gets a small band around its value so it is drawn as a line in the middle, not an error."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        lo, hi = 0.0, 1.0
    if hi - lo <= 1e-12 * max(1.0, abs(hi), abs(lo)):
        pad = abs(hi) * 0.01 if hi != 0 else 1.0
        lo, hi = lo - pad, hi + pad
    step = _nice_step(hi - lo, target)
    lo_tick = math.floor(lo / step + 1e-9) * step
    hi_tick = math.ceil(hi / step - 1e-9) * step
    count = round((hi_tick - lo_tick) / step)
    ticks = [lo_tick + i * step for i in range(count + 1)]
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    if abs(step / 10.0 ** math.floor(math.log10(step) + 1e-9) - 2.5) < 1e-6:
        decimals += 1
    return lo_tick, hi_tick, ticks, decimals


_FIXED_STEPS_S = (
    60,
    300,
    900,
    1800,
    3600,
    2 * 3600,
    3 * 3600,
    6 * 3600,
    12 * 3600,
    86400,
    2 * 86400,
    7 * 86400,
    14 * 86400,
)


_MONDAY_OFFSET_US = 4 * 86400 * 1_000_000  # 1970-01-01 was a Thursday


def time_ticks(t0: int, t1: int, max_ticks: int = 8) -> list[tuple[int, str]]:
    """Calendar-aligned ticks (round minutes, hours, days, Mondays, month starts) in UTC."""
    span_s = (t1 - t0) / 1e6
    if span_s <= 0:
        return [(t0, _dt_from_us(t0).strftime("%Y-%m-%d %H:%M"))]
    ticks: list[tuple[int, str]] = []
    for step_s in _FIXED_STEPS_S:
        if span_s / step_s > max_ticks:
            continue
        step = step_s * 1_000_000
        offset = _MONDAY_OFFSET_US if step_s >= 7 * 86400 else 0
        first = -(-(t0 - offset) // step) * step + offset
        day = 86400 * 1_000_000
        for t in range(first, t1 + 1, step):
            # Intraday ticks show the date at midnight and the clock time otherwise.
            dated = step_s >= 86400 or (span_s > 86400 and t % day == 0)
            fmt = "%Y-%m-%d" if dated else "%H:%M"
            ticks.append((t, _dt_from_us(t).strftime(fmt)))
        break
    else:
        start, end = _dt_from_us(t0), _dt_from_us(t1)
        months = (end.year - start.year) * 12 + end.month - start.month + 1
        every = next(m for m in (1, 2, 3, 6, 12, 24, 60, 120, 10**6) if months / m <= max_ticks)
        fmt = "%Y" if every >= 12 else "%Y-%m"
        index = start.year * 12 + start.month - 1
        for k in range(index, index + months + 1):
            if k % every:
                continue
            at = datetime(k // 12, k % 12 + 1, 1, tzinfo=UTC)
            us = (at - _EPOCH) // timedelta(microseconds=1)
            if t0 <= us <= t1:
                ticks.append((us, at.strftime(fmt)))
    if not ticks:
        fmt = "%Y-%m-%d %H:%M"
        ticks = [(t0, _dt_from_us(t0).strftime(fmt)), (t1, _dt_from_us(t1).strftime(fmt))]
    return ticks


CHART_WIDTH = 960


PLOT_LEFT, PLOT_RIGHT, PLOT_TOP, PLOT_BOTTOM = 70, 20, 30, 28


_BAND_H, _BAND_GAP = 14, 8


MODEL_COLOR = "#2563eb"


BENCH_COLOR = "#f59e0b"


LONG_COLOR = "#16a34a"


SHORT_COLOR = "#dc2626"


_FLAT_COLOR = "#d1d5db"


_AREA_COLOR = "#93c5fd"


@dataclass(frozen=True, slots=True)
class SeriesLine:
    label: str
    color: str
    t: np.ndarray  # int64 microseconds
    y: np.ndarray
    area: bool = False
    dashed: bool = False


@dataclass(frozen=True, slots=True)
class _Band:
    """Runs of the dominant position sign: (start_us, end_us, sign)."""

    runs: list[tuple[int, int, int]]


def series_line(
    label: str,
    color: str,
    times: np.ndarray,
    y: np.ndarray,
    *,
    area: bool = False,
    dashed: bool = False,
) -> SeriesLine:
    t = times_us(times)
    finite = np.isfinite(y)
    if not finite.all():
        t, y = t[finite], y[finite]
    keep = _minmax_indices(y) if len(y) else np.arange(0)
    return SeriesLine(label, color, t[keep], y[keep], area, dashed)


def svg_points(xs: np.ndarray, ys: np.ndarray) -> str:
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs.tolist(), ys.tolist(), strict=True))


@dataclass(frozen=True, slots=True)
class ShadedArea:
    """A range drawn as a shaded band between ``lower`` and ``upper`` (e.g. the seeds' equity
    range), under the lines, with its own legend entry."""

    label: str
    t: np.ndarray  # int64 microseconds
    lower: np.ndarray
    upper: np.ndarray


@dataclass(frozen=True, slots=True)
class FillMarkers:
    """Trades drawn as triangles on the plot: up and green for a buy, down and red for a sell."""

    t: np.ndarray  # int64 microseconds
    y: np.ndarray  # the price the marker sits at
    side: np.ndarray  # +1 buy, -1 sell


def chart_svg(
    title: str,
    lines: Sequence[SeriesLine],
    tick_label: Callable[[float, int], str],
    *,
    height: int = 280,
    include: Sequence[float] = (),
    reference: float | None = None,
    band: _Band | None = None,
    area: ShadedArea | None = None,
    verticals: Sequence[tuple[int, str]] = (),
    marks: FillMarkers | None = None,
) -> str:
    """One line chart as SVG: ``lines`` over time, y ticks labelled by ``tick_label(value,
    decimals)``, the y axis widened to cover ``include``, a dotted ``reference`` level, and
    optionally the position ``band`` (tinted background plus a strip under the plot), a shaded
    ``area``, ``verticals`` (time in µs and a label, e.g. fold boundaries; those outside the
    drawn time span are skipped) and trade ``marks``. ``height`` is in pixels; a legend too wide
    for one row wraps and each further row adds `_LEGEND_ROW` pixels above the plot."""
    drawn = [ln for ln in lines if len(ln.y)]
    if not drawn:
        return f'<p class="muted">{escape(title)}: no data.</p>'
    t0 = min(int(ln.t[0]) for ln in drawn)
    t1 = max(int(ln.t[-1]) for ln in drawn)
    values = [float(ln.y.min()) for ln in drawn] + [float(ln.y.max()) for ln in drawn]
    if area is not None and len(area.t):
        values += [float(np.nanmin(area.lower)), float(np.nanmax(area.upper))]
    if marks is not None and len(marks.t):
        values += [float(marks.y.min()), float(marks.y.max())]
    lo, hi, y_ticks, decimals = y_axis(min([*values, *include]), max([*values, *include]))

    band_space = _BAND_H + _BAND_GAP if band is not None else 0
    x0, x1 = PLOT_LEFT, CHART_WIDTH - PLOT_RIGHT
    legend, rows = _legend(drawn, area, marks is not None, band is not None, x0, x1)
    extra = _LEGEND_ROW * (rows - 1)  # further legend rows push the plot down
    height += extra
    y0, y1 = PLOT_TOP + extra, height - PLOT_BOTTOM - band_space
    t_span = float(t1 - t0) or 1.0

    def px(t: np.ndarray | int) -> np.ndarray:
        return x0 + (np.asarray(t, dtype=np.float64) - t0) / t_span * (x1 - x0)

    def py(v: np.ndarray | float) -> np.ndarray:
        return y1 - (np.asarray(v, dtype=np.float64) - lo) / (hi - lo) * (y1 - y0)

    out = [
        f'<svg class="chart" viewBox="0 0 {CHART_WIDTH} {height}" role="img" '
        f'aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<rect x="{x0}" y="{y0}" width="{x1 - x0}" height="{y1 - y0}" class="plot-bg"/>',
    ]
    if band is not None:
        for start, end, sign in band.runs:
            if sign == 0:
                continue
            a, b = float(px(start)), float(px(end))
            color = LONG_COLOR if sign > 0 else SHORT_COLOR
            out.append(
                f'<rect x="{a:.1f}" y="{y0}" width="{max(b - a, 0.5):.1f}" '
                f'height="{y1 - y0}" fill="{color}" fill-opacity="0.07"/>'
            )
    for v in y_ticks:
        y = float(py(v))
        out.append(f'<line x1="{x0}" x2="{x1}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        out.append(
            f'<text x="{x0 - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">'
            f"{escape(tick_label(v, decimals))}</text>"
        )
    axis_y = height - PLOT_BOTTOM
    for t, label in time_ticks(t0, t1):
        x = float(px(t))
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y0}" y2="{y1}" class="grid"/>')
        anchor = "start" if x - x0 < 40 else ("end" if x1 - x < 40 else "middle")
        out.append(
            f'<text x="{x:.1f}" y="{axis_y + 18}" text-anchor="{anchor}" class="tick">'
            f"{escape(label)}</text>"
        )
    for t, label in verticals:
        if not t0 <= t <= t1:  # e.g. a fold boundary before a rolling window's first value
            continue
        x = float(px(t))
        out.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y0}" y2="{y1}" class="fold"/>'
            f'<text x="{x + 3:.1f}" y="{y0 + 12}" class="tick">{escape(label)}</text>'
        )
    if reference is not None and lo <= reference <= hi:
        y = float(py(reference))
        out.append(f'<line x1="{x0}" x2="{x1}" y1="{y:.1f}" y2="{y:.1f}" class="ref"/>')
    if area is not None and len(area.t):
        xs = px(area.t)
        upper = svg_points(xs, py(area.upper))
        lower = svg_points(xs[::-1], py(area.lower[::-1]))
        out.append(
            f'<polygon points="{upper} {lower}" fill="{_AREA_COLOR}" fill-opacity="0.45" '
            'stroke="none"/>'
        )
    for ln in drawn:
        xs, ys = px(ln.t), py(ln.y)
        dash = ' stroke-dasharray="5 3"' if ln.dashed else ""
        if ln.area:
            base = float(py(min(max(0.0, lo), hi)))
            poly = f"{xs[0]:.1f},{base:.1f} {svg_points(xs, ys)} {xs[-1]:.1f},{base:.1f}"
            out.append(f'<polygon points="{poly}" fill="{ln.color}" fill-opacity="0.22"/>')
        out.append(
            f'<polyline points="{svg_points(xs, ys)}" fill="none" stroke="{ln.color}" '
            f'stroke-width="1.5" stroke-linejoin="round"{dash}/>'
        )
    if marks is not None:
        for x, y, side in zip(
            px(marks.t).tolist(), py(marks.y).tolist(), marks.side.tolist(), strict=True
        ):
            tip = y - 5 if side > 0 else y + 5
            base = y + 4 if side > 0 else y - 4
            color = LONG_COLOR if side > 0 else SHORT_COLOR
            out.append(
                f'<polygon points="{x:.1f},{tip:.1f} {x - 4:.1f},{base:.1f} {x + 4:.1f},'
                f'{base:.1f}" fill="{color}"/>'
            )
    if band is not None:
        by = y1 + _BAND_GAP
        out.append(
            f'<rect x="{x0}" y="{by}" width="{x1 - x0}" height="{_BAND_H}" fill="{_FLAT_COLOR}"/>'
        )
        for start, end, sign in band.runs:
            if sign == 0:
                continue
            a, b = float(px(start)), float(px(end))
            color = LONG_COLOR if sign > 0 else SHORT_COLOR
            out.append(
                f'<rect x="{a:.1f}" y="{by}" width="{max(b - a, 0.5):.1f}" '
                f'height="{_BAND_H}" fill="{color}"/>'
            )
        out.append(
            f'<text x="{x0 - 6}" y="{by + _BAND_H - 3}" text-anchor="end" class="tick">'
            "position</text>"
        )
    out.append(f'<rect x="{x0}" y="{y0}" width="{x1 - x0}" height="{y1 - y0}" class="frame"/>')
    out.extend(legend)
    out.append("</svg>")
    return "\n".join(out)


_LEGEND_ROW = 16
"""Pixels a further row of the legend takes (the legend wraps rather than run off the chart)."""


def _legend(
    lines: Sequence[SeriesLine],
    area: ShadedArea | None,
    marks: bool,
    band: bool,
    x0: int,
    x1: int,
) -> tuple[list[str], int]:
    """The legend's SVG items (the area, the lines, buy/sell, long/short/flat), wrapped into
    rows within ``x0..x1`` pixels, and the number of rows."""
    items: list[tuple[int, Callable[[int, int], str]]] = []  # (width, draw at x, baseline y)
    if area is not None:
        shaded = area

        def draw_area(x: int, y: int) -> str:
            return (
                f'<rect x="{x}" y="{y - 10}" width="18" height="12" fill="{_AREA_COLOR}" '
                f'fill-opacity="0.6"/><text x="{x + 24}" y="{y}" class="legend">'
                f"{escape(shaded.label)}</text>"
            )

        items.append((40 + 7 * len(area.label), draw_area))
    for ln in lines:

        def draw_line(x: int, y: int, ln: SeriesLine = ln) -> str:
            dash = ' stroke-dasharray="5 3"' if ln.dashed else ""
            return (
                f'<line x1="{x}" x2="{x + 18}" y1="{y - 4}" y2="{y - 4}" stroke="{ln.color}" '
                f'stroke-width="2.5"{dash}/>\n'
                f'<text x="{x + 24}" y="{y}" class="legend">{escape(ln.label)}</text>'
            )

        items.append((40 + 7 * len(ln.label), draw_line))
    swatches = [("buy", LONG_COLOR), ("sell", SHORT_COLOR)] if marks else []
    if band:
        swatches += [("long", LONG_COLOR), ("short", SHORT_COLOR), ("flat", "#9ca3af")]
    for label, color in swatches:

        def draw_swatch(x: int, y: int, label: str = label, color: str = color) -> str:
            return (
                f'<rect x="{x}" y="{y - 10}" width="12" height="12" fill="{color}" rx="2"/>'
                f'<text x="{x + 17}" y="{y}" class="legend">{label}</text>'
            )

        items.append((30 + 7 * len(label), draw_swatch))
    out: list[str] = []
    x, y, rows = x0, 18, 1
    for width, draw in items:
        if x > x0 and x + width > x1:
            x, y, rows = x0, y + _LEGEND_ROW, rows + 1
        out.append(draw(x, y))
        x += width
    return out, rows


def fixed_label(v: float, decimals: int) -> str:
    return f"{v:,.{decimals}f}"


def percent_label(v: float, decimals: int) -> str:
    return f"{v:.{decimals}f}%"


def _position_band(trace: SimulationTrace, buckets: int = MAX_CHART_POINTS // 2) -> _Band:
    """Dominant position sign per bucket of steps, merged into runs: a bounded number of
    rectangles however many trades there were (ties go to flat, then long)."""
    n = trace.n_steps
    if n == 0:
        return _Band([])
    edges = np.unique(np.linspace(0, n, min(n, buckets) + 1).astype(np.int64))
    starts = edges[:-1]
    sizes = np.diff(edges)
    longs = np.add.reduceat((trace.position > 0).astype(np.int64), starts)
    shorts = np.add.reduceat((trace.position < 0).astype(np.int64), starts)
    flats = sizes - longs - shorts
    dominant = np.where((longs > flats) & (longs >= shorts), 1, 0)
    dominant = np.where((shorts > flats) & (shorts > longs), -1, dominant)
    change = np.flatnonzero(dominant[1:] != dominant[:-1]) + 1
    run_starts = np.concatenate(([0], change))
    run_ends = np.concatenate((change, [len(dominant)]))
    t = times_us(trace.times)
    return _Band(
        [
            (int(t[edges[a]]), int(t[edges[b]]), int(dominant[a]))
            for a, b in zip(run_starts.tolist(), run_ends.tolist(), strict=True)
        ]
    )


def drawdown_pct(equity: np.ndarray) -> np.ndarray:
    peak = np.maximum.accumulate(equity)
    with np.errstate(divide="ignore", invalid="ignore"):
        dd: np.ndarray = (equity / peak - 1.0) * 100.0
    return dd


def _buy_and_hold(section: SymbolSection) -> tuple[str, SimulationTrace | None]:
    for baseline in section.baselines:
        if baseline.trace is not None and baseline.name.lower().startswith("buy"):
            return baseline.name, baseline.trace
    return "buy-and-hold (price)", None


def symbol_charts(section: SymbolSection) -> str:
    trace = section.model.trace
    if trace is None:
        return '<p class="muted">No trace recorded for the model: charts unavailable.</p>'
    bench_name, bench = _buy_and_hold(section)
    if bench is not None:
        bench_times, bench_equity = bench.times, bench.equity / bench.equity[0]
    else:
        bench_times, bench_equity = trace.times, trace.close / trace.close[0]
    model_equity = trace.equity / trace.equity[0]
    equity_chart = chart_svg(
        f"{section.symbol}: equity, normalised to 1.0",
        [
            series_line(bench_name, BENCH_COLOR, bench_times, bench_equity),
            series_line(section.model.name, MODEL_COLOR, trace.times, model_equity),
        ],
        fixed_label,
        height=300,
        reference=1.0,
    )
    drawdown_chart = chart_svg(
        f"{section.symbol}: drawdown from the running peak",
        [
            series_line(
                bench_name, "#9ca3af", bench_times, drawdown_pct(bench_equity), dashed=True
            ),
            series_line(
                section.model.name,
                SHORT_COLOR,
                trace.times,
                drawdown_pct(model_equity),
                area=True,
            ),
        ],
        percent_label,
        height=220,
        include=(0.0, -1.0),  # at least 0 to -1%: a shallow drawdown must not look deep
    )
    price_chart = chart_svg(
        f"{section.symbol}: close price and the model's position",
        [series_line("close", "#374151", trace.times, trace.close)],
        fixed_label,
        height=300,
        band=_position_band(trace),
    )
    return (
        f"<h3>Equity</h3>{equity_chart}<h3>Drawdown</h3>{drawdown_chart}"
        f"<h3>Price and position</h3>{price_chart}"
    )
