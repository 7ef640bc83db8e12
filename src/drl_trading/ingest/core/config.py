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
    seed: int = 7
    chunk_days: int = Field(7, ge=1)


class FileSettings(BaseModel):
    model_config = _FROZEN
    layout: Literal["auto", "generic", "binance"] = "auto"
    timestamp_unit: Literal["auto", "s", "ms", "us", "ns", "iso"] = "auto"
    chunk_rows: int = Field(200_000, ge=1)


class CcxtSettings(BaseModel):
    model_config = _FROZEN
    exchange: str = "binance"
    base_url: str | None = Field(None, description="Override the exchange's API host.")
    page_limit: int = Field(1000, ge=1)
    rate_limit_ms: int | None = Field(None, ge=0)
    timeout_ms: int = Field(10_000, ge=100)
    max_retries: int = Field(3, ge=0)
    poll_interval_s: float = Field(
        2.0, gt=0, description="Live: how often to ask for newly closed 1m candles."
    )
    close_delay_s: float = Field(
        2.0, ge=0, description="Live: a candle is read this long after its close (settled)."
    )


class IngestSettings(BaseModel):
    model_config = _FROZEN
    validation: ValidationSettings = ValidationSettings()
    synthetic: SyntheticSettings = SyntheticSettings()
    file: FileSettings = FileSettings()
    ccxt: CcxtSettings = CcxtSettings()
