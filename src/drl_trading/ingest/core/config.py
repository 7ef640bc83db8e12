"""Settings of the ingest service."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from drl_trading.ingest.core.validation import ValidationPolicy

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class ValidationSettings(BaseModel):
    model_config = _FROZEN
    policy: ValidationPolicy = Field(
        ValidationPolicy.REJECT,
        description="reject: stop at a batch with bad rows; quarantine: store the good rows and "
        "move bad ones to the quarantine table.",
    )


class SyntheticSettings(BaseModel):
    model_config = _FROZEN
    seed: int = Field(7, description="Seed of the generated bars (same seed, same bars).")
    chunk_days: int = Field(7, ge=1, description="Days of bars generated and stored per batch.")
    edge: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="Planted learnable edge: the AR(1) coefficient of the returns of "
        "edge_timeframe's bars (the previous bar's return predicts the next); 0: a pure random "
        "walk, the same bars as without it. The oracle's Sharpe it plants: docs/data-path.md.",
    )
    edge_timeframe: Literal["1m", "5m", "15m", "30m", "1h", "4h"] = Field(
        "1h", description="Bars whose returns carry the edge (intraday, on the UTC grid)."
    )


class FileSettings(BaseModel):
    model_config = _FROZEN
    layout: Literal["auto", "generic", "binance"] = Field(
        "auto", description="Columns: generic OHLCV names or Binance's kline layout; auto detects."
    )
    timestamp_unit: Literal["auto", "s", "ms", "us", "ns", "iso"] = Field(
        "auto", description="Unit of numeric timestamps, or iso strings; auto detects."
    )
    chunk_rows: int = Field(200_000, ge=1, description="Rows read, validated and stored per batch.")


class CcxtSettings(BaseModel):
    model_config = _FROZEN
    exchange: str = Field("binance", description="ccxt exchange id.")
    base_url: str | None = Field(None, description="Override the exchange's API host.")
    page_limit: int = Field(1000, ge=1, description="Candles asked for per request.")
    rate_limit_ms: int | None = Field(
        None,
        ge=0,
        description="Least time between requests (ccxt rateLimit); None: the exchange's.",
    )
    timeout_ms: int = Field(10_000, ge=100, description="Per-request timeout.")
    max_retries: int = Field(
        3, ge=0, description="Retries of a transient failure, with exponential backoff."
    )
    poll_interval_s: float = Field(
        2.0,
        gt=0,
        description="Live: how often to ask for newly closed candles (of the session's timeframe).",
    )
    close_delay_s: float = Field(
        2.0, ge=0, description="Live: a candle is read this long after its close (settled)."
    )
    websocket: bool = Field(
        True,
        description=(
            "Live: candles from ccxt.pro's websocket stream where the exchange has one, with a "
            "REST gap fill on every reconnect; false (or no stream): polled."
        ),
    )
    ws_url: str | None = Field(
        None,
        description=(
            "Override the exchange's websocket host; with base_url set, candles are polled "
            "unless this is set too."
        ),
    )


class IngestSettings(BaseModel):
    model_config = _FROZEN
    validation: ValidationSettings = ValidationSettings()
    synthetic: SyntheticSettings = SyntheticSettings()
    file: FileSettings = FileSettings()
    ccxt: CcxtSettings = CcxtSettings()
