"""The evaluation report's charts: the stitched out-of-sample series as hand-built SVG.

Drawn by the backtest report's `charts.chart_svg` (same frame, axes, colours and point
reduction), with what a walk-forward picture needs: a shaded band (the seeds' equity range),
vertical markers (the fold boundaries) and trade markers on the price. Lines keep each
bucket's min and max (`charts.MAX_CHART_POINTS` points a line), bands keep each bucket's
extremes (`oos_series.envelope`), and at most `MAX_MARKERS` fills are drawn per symbol, evenly
thinned with the count said; the figures in the tables are always of the full series. No
scripts, no URLs; caller text goes through `charts.escape`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from drl_trading.evaluation.charts import (
    BENCH_COLOR,
    MAX_CHART_POINTS,
    MODEL_COLOR,
    SHORT_COLOR,
    FillMarkers,
    ShadedArea,
    chart_svg,
    escape,
    fixed_label,
    percent_label,
    series_line,
    times_us,
)
from drl_trading.evaluation.oos_series import (
    EquityBand,
    TradeMarks,
    drawdown,
    envelope,
)

__all__ = [
    "MAX_MARKERS",
    "drawdown_chart",
    "equity_chart",
    "price_chart",
    "rolling_sharpe_chart",
]

MAX_MARKERS = 1000
"""Fills drawn per symbol's price chart; beyond it every k-th is drawn (the caption says so)."""

_BASELINE_COLORS = ("#f59e0b", "#6b7280", "#a855f7", "#0d9488", "#db2777", "#65a30d")
"""Baselines in column order: buy-and-hold, flat, random, momentum, SMA cross, any other."""


def _fold_lines(times: np.ndarray, fold_starts: Sequence[int]) -> list[tuple[int, str]]:
    t = times_us(np.asarray(times))
    return [(int(t[i]), f"fold {k}") for k, i in enumerate(fold_starts) if 0 <= i < len(t)]


def equity_chart(
    times: np.ndarray,
    band: EquityBand,
    baselines: Mapping[str, np.ndarray],
    fold_starts: Sequence[int],
) -> str:
    """The seeds' median equity and band against each baseline's equity (all from 1.0)."""
    t, lower, upper = envelope(times, band.lower, band.upper, MAX_CHART_POINTS)
    lines = [
        series_line(
            name, _BASELINE_COLORS[min(i, len(_BASELINE_COLORS) - 1)], times, curve, dashed=True
        )
        for i, (name, curve) in enumerate(baselines.items())
    ]
    lines.append(series_line("model (median of seeds)", MODEL_COLOR, times, band.median))
    return chart_svg(
        "Out-of-sample equity over seeds, normalised to 1.0",
        lines,
        fixed_label,
        height=320,
        reference=1.0,
        area=ShadedArea(f"model ({band.label})", t, lower, upper),
        verticals=_fold_lines(times, fold_starts),
    )


def drawdown_chart(
    times: np.ndarray,
    equity: np.ndarray,
    benchmark: tuple[str, np.ndarray] | None,
    fold_starts: Sequence[int],
) -> str:
    """Drawdown (percent from the running peak) of the seeds' mean equity, and of the benchmark
    (buy-and-hold) dashed."""
    lines = []
    if benchmark is not None:
        name, curve = benchmark
        lines.append(series_line(name, "#9ca3af", times, drawdown(curve) * 100.0, dashed=True))
    lines.append(
        series_line(
            "model (mean of seeds)", SHORT_COLOR, times, drawdown(equity) * 100.0, area=True
        )
    )
    return chart_svg(
        "Out-of-sample drawdown from the running peak",
        lines,
        percent_label,
        height=220,
        include=(0.0, -1.0),
        verticals=_fold_lines(times, fold_starts),
    )


def rolling_sharpe_chart(
    times: np.ndarray,
    model: np.ndarray,
    benchmark: tuple[str, np.ndarray] | None,
    window_text: str,
    fold_starts: Sequence[int],
) -> str:
    """Rolling annualised Sharpe of the seeds' mean returns (and the benchmark's, dashed)."""
    lines = []
    if benchmark is not None:
        lines.append(series_line(benchmark[0], BENCH_COLOR, times, benchmark[1], dashed=True))
    lines.append(series_line("model (mean of seeds)", MODEL_COLOR, times, model))
    return chart_svg(
        f"Rolling Sharpe, annualised ({window_text})",
        lines,
        fixed_label,
        height=240,
        reference=0.0,
        verticals=_fold_lines(times, fold_starts),
    )


def price_chart(symbol: str, marks: Sequence[TradeMarks]) -> tuple[str, str]:
    """The close price of ``symbol`` over the folds' validation bars with the configured seed's
    fills (buys up, sells down, at the fill bar's open); returns the chart and its caption."""
    ordered = sorted(marks, key=lambda m: m.fold)
    if not ordered:
        return f'<p class="muted">{escape(symbol)}: no data.</p>', ""
    times = np.concatenate([m.times for m in ordered])
    close = np.concatenate([m.close for m in ordered])
    fill_t = np.concatenate([m.times[m.fill_index] for m in ordered])
    fill_y = np.concatenate([m.fill_price for m in ordered])
    side = np.concatenate([m.side for m in ordered])
    total = len(side)
    every = -(-total // MAX_MARKERS) if total > MAX_MARKERS else 1
    keep = np.arange(0, total, every)
    buys, sells = int((side > 0).sum()), int((side < 0).sum())
    caption = f"{buys:,} buys and {sells:,} sells"
    if every > 1:
        caption += f"; every {every}th of them drawn ({len(keep):,})"
    fold_starts = []
    at = 0
    for m in ordered:
        fold_starts.append((at, m.fold))
        at += len(m.times)
    t_us = times_us(times)
    verticals = [(int(t_us[i]), f"fold {k}") for i, k in fold_starts]
    chart = chart_svg(
        f"{symbol}: close price and the trades of seed 0",
        [series_line("close", "#374151", times, close)],
        fixed_label,
        height=300,
        verticals=verticals,
        marks=FillMarkers(times_us(fill_t)[keep], fill_y[keep], side[keep]),
    )
    return chart, caption
