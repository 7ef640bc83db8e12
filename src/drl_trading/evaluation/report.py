"""What a backtest report holds: per symbol the model's and the baselines' results, the trades
and the traces behind them. `report_html` renders it to one file; `charts` draws its SVG; the
paper session fills the same type from what execution did."""

from __future__ import annotations

from dataclasses import dataclass

from drl_trading.evaluation.metrics import PerformanceMetrics, Trade
from drl_trading.evaluation.trace import SimulationTrace


@dataclass(frozen=True, slots=True)
class StrategyResult:
    name: str  # "model", "buy-and-hold", "flat", "random (5 seeds, mean)" ...
    metrics: PerformanceMetrics
    trace: SimulationTrace | None  # None where not kept (the random seeds' mean curve)


@dataclass(frozen=True, slots=True)
class SymbolSection:
    symbol: str
    model: StrategyResult
    baselines: list[StrategyResult]
    trades: list[Trade]  # the model's trades


@dataclass(frozen=True, slots=True)
class BacktestReport:
    title: str
    subtitle: str  # e.g. model URI, range
    metadata: dict[str, str]  # shown as a key/value table
    sections: list[SymbolSection]
    warnings: tuple[str, ...] = ()
    """What the reader must know before reading the figures (e.g. a range the model trained
    on), shown first."""
