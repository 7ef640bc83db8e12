"""Annualised figures over short ranges: omitted (CAGR, Calmar) or marked (volatility, Sharpe,
Sortino) in the CLI tables and the HTML report; the JSON keeps the raw numbers and says why."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from drl_trading.cli.context import console
from drl_trading.cli.paper import _annualised_note
from drl_trading.cli.training import print_backtest
from drl_trading.common.costs import CostModel
from drl_trading.evaluation.account import account_metrics
from drl_trading.evaluation.annualisation import (
    EXTRAPOLATED_FIELDS,
    MIN_ANNUALISED_DAYS,
    OMITTED_FIELDS,
    annualisation,
)
from drl_trading.evaluation.backtest import BacktestResult, SymbolBacktest
from drl_trading.evaluation.baselines import (
    buy_and_hold_positions,
    random_baseline,
    random_baseline_name,
    random_positions,
)
from drl_trading.evaluation.metrics import compute_metrics, extract_trades, periods_per_year
from drl_trading.evaluation.report import BacktestReport
from drl_trading.evaluation.report_html import render_report
from drl_trading.evaluation.trace import SimulationTrace, simulate

COSTS = CostModel(5.0, 2.0)
PPY = periods_per_year(60)


def _symbol(days: float, seed: int = 1) -> SymbolBacktest:
    """Hourly bars over ``days`` with a strong drift, so short-range CAGRs explode."""
    n = int(days * 24)
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.002, 0.01, n + 1)))
    open_ = np.concatenate(([close[0]], close[:-1]))
    times = np.datetime64("2024-01-01T00:00", "us") + np.arange(n + 1) * np.timedelta64(1, "h")

    def sim(positions: np.ndarray) -> SimulationTrace:
        return simulate("BTCUSDT", times, open_, close, positions, COSTS)

    trace = sim(random_positions(n, seed=9))
    bh = sim(buy_and_hold_positions(n))
    rand, _ = random_baseline(sim, n, 3, PPY)
    return SymbolBacktest(
        symbol="BTCUSDT",
        model=compute_metrics(trace, PPY),
        trace=trace,
        trades=extract_trades(trace),
        baselines={"buy-and-hold": compute_metrics(bh, PPY), random_baseline_name(3): rand},
        baseline_traces={"buy-and-hold": bh},
        skipped_bars=0,
        mean_confidence=None,
    )


def test_the_minimum_length_decides_what_is_omitted_and_what_is_marked() -> None:
    short = annualisation(_symbol(3).model)
    assert short.span_days == pytest.approx(3.0)
    assert short.short
    assert [f for f in ("cagr", "calmar", "sharpe", "total_return") if short.omitted(f)] == [
        "cagr",
        "calmar",
    ]
    assert all(short.extrapolated(f) for f in ("annual_volatility", "sharpe", "sortino"))
    assert not short.extrapolated("cagr") and not short.omitted("max_drawdown")
    assert short.omitted_text == "n/a (range < 30 days)"
    assert short.note == "annualised from 3.0 days"
    assert annualisation(_symbol(0.5).model).note == "annualised from 12.0 hours"

    long = annualisation(_symbol(MIN_ANNUALISED_DAYS).model)
    assert not long.short
    assert not any(long.omitted(f) or long.extrapolated(f) for f in OMITTED_FIELDS)
    assert not any(long.extrapolated(f) for f in EXTRAPOLATED_FIELDS)


def test_cli_table_omits_cagr_and_calmar_and_labels_sharpe_over_a_short_range() -> None:
    result = BacktestResult([_symbol(3)], 73, 0.1, COSTS, costs_overridden=True)
    with console.capture() as captured:
        print_backtest(result, "backtest")
    out = captured.get()
    assert "costs: fee 5 bps, slippage 2 bps (overridden)" in out
    cagr_row = next(line for line in out.splitlines() if "CAGR" in line)
    assert cagr_row.count("n/a (range < 30 days)") == 3  # model, buy-and-hold, random
    assert "%" not in cagr_row
    calmar_row = next(line for line in out.splitlines() if "Calmar" in line)
    assert calmar_row.count("n/a (range < 30 days)") == 3
    for label in ("Sharpe", "Sortino", "volatility"):
        assert f"{label} (annualised from 3.0 days)" in out


def test_cli_table_shows_annualised_figures_plainly_over_a_long_range() -> None:
    result = BacktestResult([_symbol(40)], 961, 0.1, COSTS)
    with console.capture() as captured:
        print_backtest(result, "backtest")
    out = captured.get()
    assert "costs: fee 5 bps, slippage 2 bps" in out and "overridden" not in out
    assert "n/a" not in out and "annualised from" not in out
    cagr_row = next(line for line in out.splitlines() if "CAGR" in line)
    assert "%" in cagr_row


def test_json_keeps_raw_figures_and_flags_the_short_range() -> None:
    sym = _symbol(3)
    payload = json.loads(json.dumps(BacktestResult([sym], 73, 0.1, COSTS).to_dict()))
    block = payload["symbols"]["BTCUSDT"]
    assert block["model"]["cagr"] == pytest.approx(sym.model.cagr)  # raw number kept
    assert block["annualisation"] == {
        "span_days": 3.0,
        "min_days": MIN_ANNUALISED_DAYS,
        "short_range": True,
        "omitted": ["cagr", "calmar"],
        "extrapolated": ["annual_volatility", "sharpe", "sortino"],
    }
    assert payload["costs"] == {"fee_bps": 5.0, "slippage_bps": 2.0, "overridden": False}
    long = BacktestResult([_symbol(40)], 961, 0.1).to_dict()
    assert long["symbols"]["BTCUSDT"]["annualisation"]["short_range"] is False
    assert "costs" not in long  # not known: not claimed


def test_html_report_omits_and_marks_and_shows_warnings_first() -> None:
    short = _symbol(3).section()
    report = BacktestReport(
        "t", "s", {"model": "m"}, [short], warnings=("the range overlaps training",)
    )
    html = render_report(report)
    assert html.count("n/a (range &lt; 30 days)") == 2 * 3  # CAGR and Calmar, three columns
    assert "(annualised from 3.0 days)" in html
    assert html.index("Warnings") < html.index("<h2>Run</h2>") < html.index("Summary")
    assert "the range overlaps training" in html
    cagr_cells = html.split(">CAGR<", 1)[1].split("</tr>", 1)[0]
    assert 'class="pos"' not in cagr_cells and "model pos" not in cagr_cells

    long_html = render_report(BacktestReport("t", "s", {}, [_symbol(40).section()]))
    assert "n/a (range" not in long_html and "annualised from" not in long_html
    assert "Warnings" not in long_html


def test_paper_report_marks_sharpe_of_a_short_session() -> None:
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    curve = [(t0 + timedelta(hours=h), 100.0 + h, 0.5) for h in range(49)]
    metrics = account_metrics(curve, PPY)
    assert metrics["annualisation"]["short_range"] is True
    assert _annualised_note(metrics, "sharpe") == " (annualised from 2.0 days)"
    assert _annualised_note(metrics, "max_drawdown") == ""
    assert _annualised_note({"sharpe": 1.0}, "sharpe") == ""  # a report from before the block
