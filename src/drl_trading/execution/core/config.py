"""Settings of the execution service: paper account, costs, and the limits of the risk engine.

Costs default to the training environment's (5 bps fee, 2 bps slippage) so that paper results are
comparable with the backtest. The strategy's `RiskParameters` are the default limits; the
``max_position``/``min_confidence``/``allow_short`` overrides can only tighten them (the strategy
applies its own first), while ``max_daily_loss``/``max_drawdown`` replace the strategy's values.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from drl_trading.common.domain import Symbol
from drl_trading.execution.core.reconciliation import ReconcilePolicy, ReconcileTolerance
from drl_trading.execution.core.risk import ExecutionLimits
from drl_trading.strategy.api import RiskParameters

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class ReconciliationSettings(BaseModel):
    """When the live service compares its book with the venue's account, and how far they may
    differ before trading halts (`execution.core.reconciliation`); unused on a paper account."""

    model_config = _FROZEN
    every_bars: int = Field(
        60, ge=1, description="Reconcile at start and then every this many bars (any symbol's)."
    )
    lookback_s: float = Field(
        3600.0,
        ge=0,
        description="Read the venue's fills from the previous reconciliation minus this (seconds).",
    )
    position_units: dict[Symbol, float] = Field(
        default_factory=dict,
        description="Per-symbol tolerated position difference (base units), e.g. {BTCUSDT: 1e-5}.",
    )
    default_units: float = Field(
        1e-8, ge=0, description="Tolerated position difference of other symbols (base units)."
    )
    position_relative: float = Field(
        1e-4, ge=0, description="...or this fraction of the position, whichever is larger."
    )
    cash_relative: float = Field(
        1e-4, ge=0, description="Tolerated cash difference, fraction of the cash (fee rounding)."
    )

    def policy(self) -> ReconcilePolicy:
        return ReconcilePolicy(
            every_bars=self.every_bars,
            lookback=timedelta(seconds=self.lookback_s),
            tolerance=ReconcileTolerance(
                default_units=self.default_units,
                position_units=dict(self.position_units),
                position_relative=self.position_relative,
                cash_relative=self.cash_relative,
            ),
        )


class ExecutionSettings(BaseModel):
    model_config = _FROZEN
    store: Literal["sqlite", "memory", "postgres"] = Field(
        "sqlite",
        description=(
            "Where portfolio, trading state and the trade records are kept (postgres: the "
            "database of the `postgres` settings, shared with the other services)."
        ),
    )
    store_path: Path | None = Field(
        None,
        description="SQLite file; default <home>/execution.sqlite (paper: per account)",
    )
    initial_cash: float = Field(10_000.0, gt=0, description="Paper account cash (quote currency).")
    capital: Literal["per_symbol", "shared"] = Field(
        "per_symbol",
        description=(
            "per_symbol: the initial cash is split equally over the traded symbols and each is "
            "sized on its own share (trades as its backtest); shared: one pool for all."
        ),
    )
    fee_bps: float = Field(5.0, ge=0, description="Fee per fill, bps of its notional.")
    slippage_bps: float = Field(2.0, ge=0, description="Market-order slippage, bps of the open.")
    max_signal_age_s: float = Field(
        120.0, gt=0, description="Drop a signal whose bar closed longer ago than this (seconds)."
    )
    max_total_exposure: float = Field(
        1.0,
        gt=0,
        description="Gross exposure of all symbols, fraction of equity (1 = no leverage).",
    )
    max_order_notional: float | None = Field(
        None, gt=0, description="Larger orders are clipped to it (quote currency); None: no limit."
    )
    min_order_notional: float = Field(
        10.0, ge=0, description="Smaller orders are skipped as dust (quote currency)."
    )
    max_position: float | None = Field(
        None, gt=0, le=1, description="Per-symbol |position|, fraction of equity; tightens only."
    )
    min_confidence: float | None = Field(None, ge=0, le=1, description="Tightens only.")
    allow_short: bool | None = Field(None, description="False forbids shorts; True cannot allow.")
    max_daily_loss: float | None = Field(
        None,
        gt=0,
        le=1,
        description="Replaces the strategy's: loss since UTC day start -> REDUCING.",
    )
    max_drawdown: float | None = Field(
        None, gt=0, le=1, description="Replaces the strategy's: fall from equity peak -> HALTED."
    )
    reconciliation: ReconciliationSettings = Field(
        default_factory=ReconciliationSettings,
        description="Live accounts: comparing the book with the venue's (mismatch -> HALTED).",
    )

    def limits(self, risk: RiskParameters) -> ExecutionLimits:
        """The limits in force for a strategy with ``risk`` parameters."""
        return ExecutionLimits(
            max_signal_age=timedelta(seconds=self.max_signal_age_s),
            max_total_exposure=self.max_total_exposure,
            max_order_notional=self.max_order_notional,
            min_order_notional=self.min_order_notional,
            max_daily_loss=self.max_daily_loss
            if self.max_daily_loss is not None
            else (risk.max_daily_loss),
            max_drawdown=self.max_drawdown if self.max_drawdown is not None else risk.max_drawdown,
            max_position=self.max_position,
            min_confidence=self.min_confidence,
            allow_short=self.allow_short,
        )
