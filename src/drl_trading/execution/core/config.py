"""Settings of the execution service: paper account, costs, and the limits of the risk engine.

Costs default to the training environment's (5 bps fee, 2 bps slippage) so that paper results are
comparable with the backtest. The strategy's `RiskParameters` are the default limits; the
``max_position``/``min_confidence``/``allow_short`` overrides can only tighten them (the strategy
applies its own first), while ``max_daily_loss``/``max_drawdown`` replace the strategy's values.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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


SUPPORTED_EXCHANGES = ("binance",)
"""Exchanges the ccxt broker is built and tested for (its client order ids, precision and error
mapping follow Binance spot and USD-M futures)."""
MAX_LEVERAGE = 125
"""Binance USD-M's highest leverage (the exchange refuses more than a symbol's bracket allows)."""
DEFAULT_API_KEY_ENV = "DRL_TRADING_EXCHANGE_API_KEY"
DEFAULT_SECRET_ENV = "DRL_TRADING_EXCHANGE_SECRET"
_LITERAL_CREDENTIAL_KEYS = frozenset(
    {"api_key", "apikey", "key", "secret", "api_secret", "secret_key", "password", "token"}
)
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")


class LiveSettings(BaseModel):
    """The exchange account of ``drl-trading live`` (the ccxt broker, `app.live_broker`).

    Credentials are never part of the configuration: they are read when the session starts from
    the environment variables named by ``api_key_env``/``secret_env`` or the files
    ``api_key_file``/``secret_file``, so no key can reach ``config show``, logs, MLflow
    parameters or reports. A literal key in the configuration is refused.
    """

    model_config = _FROZEN
    exchange: str = Field(
        "binance", description=f"ccxt exchange id; supported: {', '.join(SUPPORTED_EXCHANGES)}."
    )
    market: Literal["spot", "futures"] = Field(
        "spot",
        description=(
            "spot: long or flat; futures: USD-M linear perpetuals (long or short, one-way mode)."
        ),
    )
    leverage: int | None = Field(
        None,
        ge=1,
        le=MAX_LEVERAGE,
        description="futures: leverage set on each symbol at start; None keeps the account's.",
    )
    sandbox: bool = Field(
        True, description="Trade the exchange's test network (ccxt set_sandbox_mode)."
    )
    confirm_real_account: bool = Field(
        False,
        description="Required (or --i-understand-this-trades-real-money) with sandbox: false.",
    )
    api_url: str | None = Field(
        None,
        description="Replace the host of every REST URL (tests, local gateways); None: ccxt's.",
    )
    order_stream: bool = Field(
        True,
        description=(
            "spot: order states and fills pushed by the exchange's user-data websocket (ccxt.pro), "
            "REST polling only while it is down; false (and on futures): REST polling every bar."
        ),
    )
    ws_url: str | None = Field(
        None,
        description=(
            "Replace the host of the websocket URLs (ws:// or wss://); None: derived from api_url "
            "when set, else ccxt's."
        ),
    )
    api_key_env: str = Field(
        DEFAULT_API_KEY_ENV, description="Environment variable holding the API key."
    )
    secret_env: str = Field(
        DEFAULT_SECRET_ENV, description="Environment variable holding the API secret."
    )
    api_key_file: Path | None = Field(
        None, description="File holding the API key (read instead of api_key_env when set)."
    )
    secret_file: Path | None = Field(
        None, description="File holding the API secret (read instead of secret_env when set)."
    )
    client_id_prefix: str = Field(
        "drl-", description="Marks the exchange orders this service owns (1-12 characters)."
    )
    quote_currency: str = Field("USDT", description="The account currency (cash).")
    cancel_after_s: float | None = Field(
        300.0, gt=0, description="Cancel a resting limit order after this long (seconds)."
    )
    timeout_ms: int = Field(10_000, gt=0, description="ccxt request timeout (milliseconds).")
    max_attempts: int = Field(5, ge=1, description="Tries per exchange call (retries + 1).")
    first_backoff_s: float = Field(0.5, ge=0, description="First retry backoff (seconds).")
    max_backoff_s: float = Field(30.0, ge=0, description="Longest retry backoff (seconds).")

    @model_validator(mode="before")
    @classmethod
    def _no_literal_credentials(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in data:
                if str(key).lower().replace("-", "_") in _LITERAL_CREDENTIAL_KEYS:
                    raise ValueError(
                        f"{key!r}: a credential is never read from the configuration; put the "
                        f"API key in the environment variable {DEFAULT_API_KEY_ENV} and the "
                        f"secret in {DEFAULT_SECRET_ENV} (names: api_key_env / secret_env) or "
                        "in files named by api_key_file / secret_file"
                    )
        return data

    @field_validator("exchange")
    @classmethod
    def _supported_exchange(cls, value: str) -> str:
        if value not in SUPPORTED_EXCHANGES:
            raise ValueError(
                f"exchange {value!r} is not supported by the ccxt broker; supported: "
                f"{', '.join(SUPPORTED_EXCHANGES)}"
            )
        return value

    @model_validator(mode="after")
    def _leverage_on_futures(self) -> LiveSettings:
        if self.leverage is not None and self.market != "futures":
            raise ValueError(
                f"leverage {self.leverage} applies to market: futures only; remove "
                "execution.live.leverage or set execution.live.market: futures"
            )
        return self

    @field_validator("api_key_env", "secret_env")
    @classmethod
    def _variable_name(cls, value: str) -> str:
        if not _ENV_NAME.fullmatch(value):
            raise ValueError(
                "must name an environment variable (upper case letters, digits, _), not hold "
                "a key: put the key in that variable (or a file named by api_key_file / "
                "secret_file)"
            )
        return value


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
    live: LiveSettings = Field(
        default_factory=LiveSettings,
        description="`drl-trading live`: the exchange account traded through ccxt.",
    )
    broker: Literal["paper", "live"] = Field(
        "paper",
        description=(
            "`serve execution`'s broker: paper, or live (the exchange account of "
            "execution.live, also the venue it reconciles with). The `paper` and `live` "
            "commands choose by command."
        ),
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
