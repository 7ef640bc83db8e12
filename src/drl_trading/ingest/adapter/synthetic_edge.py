"""The planted edge of the synthetic market: each bar's return partly predicted by the last one.

With ``edge = φ > 0`` the log return of every bar of the *edge timeframe* (intraday windows of
the epoch grid, as `drl_trading.common.bar_windows` keys them: the 1h bars start on the UTC hour
on every calendar) becomes an AR(1) of the generator's own returns::

    R_0 = B_0,    R_k = φ·R_{k-1} + sqrt(1 - φ²)·B_k

where ``B_k`` is the bar's return as the edge-0 generator makes it (clustered volatility, fat
tails, session profile: all kept). So ``E[R_k | past] = φ·R_{k-1}``: the previous bar's log
return, which the default feature set observes (``logret_1`` of that timeframe), predicts the
next one. The ``sqrt(1 - φ²)`` keeps the unconditional bar volatility that of edge 0. The
recursion restarts at each UTC midnight, so a day stays a function of (seed, symbol, day) alone
(any range gives the same bars) and the first bar of a day carries no edge. The change is made
on the minute increments before the day's Brownian bridge: the extra ``φ·R_{k-1}`` is spread
evenly over the bar's minutes and the day still ends at its daily-chain close.

**The planted Sharpe.** The oracle rule that exploits it holds ``sign(r_{k-1})`` (long after an
up bar, short after a down bar) over bar ``k`` of the edge timeframe, before costs. Its mean
per bar is about ``φ·E|r|`` and its volatility ``sqrt(E[r²] - mean²)``, so its per-bar Sharpe is
``m / sqrt(1 - m²)`` with ``m = a·φ``, where ``a``, the efficiency of the timeframe, is the
generator's ``E|r| / rms(r)`` (0.80 for Gaussian returns, less with fat tails and a volatility
that varies) less what the restart at midnight and the day's bridge take (a bar's share of the
bridge pulls it back towards the day's close: much on 4h bars, a sixth of a day). `EFFICIENCY`
holds ``a = a0 + a1·φ`` per timeframe, fitted to the oracle's Sharpe measured at φ = 0.1 and
0.3 on 96 ranges of 60 days (4 seeds, 2 symbols, 2 years; ``benchmarks/synthetic_edge.py``), and
`planted_sharpe` annualises it for a 24/7 market. It is the Sharpe over a range of about 60 days
(what the quickstart ingests): a range spanning more volatility regimes has a smaller
``E|r| / rms(r)``, and the same rule over 2 years of 8 series pooled makes about 3/4 of it.
"""

from __future__ import annotations

import math

import numpy as np

from drl_trading.common.domain import Timeframe

MINUTES_PER_DAY = 1440

EFFICIENCY: dict[Timeframe, tuple[float, float]] = {
    Timeframe.M1: (0.643, 0.029),
    Timeframe.M5: (0.670, 0.018),
    Timeframe.M15: (0.662, 0.041),
    Timeframe.M30: (0.652, 0.013),
    Timeframe.H1: (0.604, 0.055),
    Timeframe.H4: (0.431, -0.164),
}
"""``(a0, a1)`` per edge timeframe: the oracle's per-bar Sharpe per unit of edge is about
``a0 + a1·φ`` (``m / φ`` above), measured over 60-day ranges."""


def check_edge(edge: float, timeframe: Timeframe) -> None:
    """Refuse an edge the generator cannot plant: φ in [0, 1) on an intraday timeframe."""
    if not 0.0 <= edge < 1.0:
        raise ValueError(f"synthetic edge must be in [0, 1) (an AR(1) coefficient), got {edge}")
    if timeframe not in EFFICIENCY:
        raise ValueError(
            f"synthetic edge timeframe must be intraday "
            f"({', '.join(str(t) for t in EFFICIENCY)}), got {timeframe}: the edge restarts "
            "each UTC day"
        )


def plant(increments: np.ndarray, edge: float, timeframe: Timeframe) -> np.ndarray:
    """A day's 1m log increments with the AR(1) edge planted on ``timeframe``'s bars.

    ``increments``: the 1440 minute log returns of one UTC day (edge 0). Bar ``k``'s sum of the
    result is ``R_k`` of the module docstring; ``edge`` 0 returns ``increments`` unchanged."""
    if edge == 0.0:
        return increments
    width = timeframe.minutes
    bars = increments.reshape(-1, width).sum(axis=1)
    scale = math.sqrt(1.0 - edge * edge)
    extra = np.zeros(bars.size)
    previous = float(bars[0])
    for k in range(1, bars.size):
        extra[k] = edge * previous
        previous = extra[k] + scale * float(bars[k])
    scaled = np.concatenate([increments[:width], scale * increments[width:]])
    return scaled + np.repeat(extra / width, width)


def bars_per_day(timeframe: Timeframe) -> int:
    return MINUTES_PER_DAY // timeframe.minutes


def oracle_returns(close: np.ndarray) -> np.ndarray:
    """Per-bar simple returns, before costs, of the oracle rule on consecutive bars of the edge
    timeframe with closes ``close``: ``sign(ln(c_{k-1} / c_{k-2})) · (c_k / c_{k-1} - 1)``, one
    per bar from the third (the first two make its first signal)."""
    c = np.asarray(close, dtype=np.float64)
    position = np.sign(np.diff(np.log(c)))[:-1]
    return position * (c[2:] / c[1:-1] - 1.0)


def planted_sharpe(edge: float, timeframe: Timeframe = Timeframe.H1) -> float:
    """The annualised Sharpe, before costs, of the oracle rule over about 60 days of a 24/7
    market's bars of the edge ``timeframe`` (365 × bars per day per year, the convention of
    `drl_trading.common.bar_windows.bars_per_year`). On a market that closes the per-bar
    figure is about the same over its open bars, annualised by its own bars per year, less the
    first bar after each closure (its predictor fell in the closure)."""
    check_edge(edge, timeframe)
    a0, a1 = EFFICIENCY[timeframe]
    m = (a0 + a1 * edge) * edge
    return m / math.sqrt(1.0 - m * m) * math.sqrt(365.0 * bars_per_day(timeframe))
