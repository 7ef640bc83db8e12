"""The whole account's equity curve measured with the backtest's ruler.

A session records the account's equity and gross exposure at each base-bar close; treating the
account as its own price series gives the same metrics (return, Sharpe, drawdown...) a backtest
reports per symbol, over the whole portfolio.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np

from drl_trading.common.costs import CostModel
from drl_trading.evaluation.annualisation import annualisation
from drl_trading.evaluation.metrics import compute_metrics
from drl_trading.evaluation.trace import SimulationTrace

ACCOUNT_METRICS = (
    "total_return",
    "cagr",
    "annual_volatility",
    "sharpe",
    "sortino",
    "calmar",
    "max_drawdown",
    "max_drawdown_duration_days",
    "exposure",
    "n_steps",
    "start",
    "end",
)


def account_metrics(curve: list[tuple[datetime, float, float]], ppy: float) -> dict[str, Any]:
    """``curve``: (base close time UTC, equity in quote currency, gross exposure as a fraction
    of equity) per base close; ``ppy`` base bars per year. Empty below two points.
    ``annualisation`` says whether the curve is too short for its annualised figures."""
    if len(curve) < 2:
        return {}
    times = np.array([t.replace(tzinfo=None) for t, _, _ in curve], dtype="datetime64[us]")
    equity = np.array([e for _, e, _ in curve], dtype=np.float64)
    exposure = np.array([x for _, _, x in curve[1:]], dtype=np.float64)
    n = len(curve) - 1
    level = equity / equity[0]  # the account as its own price series
    trace = SimulationTrace(
        symbol="portfolio",
        times=times,
        open=level,
        close=level,
        equity=equity,
        position=np.clip(exposure, 0.0, 1.0),
        units=exposure,
        cost=np.zeros(n),
        fees=np.zeros(n),
        costs=CostModel(0.0, 0.0),
    )
    metrics = compute_metrics(trace, ppy)
    m = metrics.to_dict()
    return {k: m[k] for k in ACCOUNT_METRICS if k in m} | {
        "annualisation": annualisation(metrics).to_dict()
    }
