"""Composition root of the ingest service: provider and service from settings."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from drl_trading.common.ports import MarketDataRepository, MessageBus
from drl_trading.common.settings import AppSettings
from drl_trading.ingest.core.ports import HistoricalDataProvider
from drl_trading.ingest.core.service import IngestService

Source = Literal["synthetic", "file", "ccxt"]


def build_provider(
    settings: AppSettings, source: Source, path: Path | str | None = None
) -> HistoricalDataProvider:
    cfg = settings.ingest
    if source == "synthetic":
        from drl_trading.ingest.adapter.synthetic_provider import SyntheticProvider

        return SyntheticProvider(seed=cfg.synthetic.seed, chunk_days=cfg.synthetic.chunk_days)
    if source == "file":
        if path is None:
            raise ValueError("--source file needs --path FILE (may contain {symbol})")
        from drl_trading.ingest.adapter.file_provider import FileProvider

        return FileProvider(
            path,
            layout=cfg.file.layout,
            timestamp_unit=cfg.file.timestamp_unit,
            chunk_rows=cfg.file.chunk_rows,
        )
    if source == "ccxt":
        from drl_trading.ingest.adapter.ccxt_provider import CcxtProvider

        c = cfg.ccxt
        return CcxtProvider(
            exchange_id=c.exchange,
            base_url=c.base_url,
            page_limit=c.page_limit,
            rate_limit_ms=c.rate_limit_ms,
            timeout_ms=c.timeout_ms,
            max_retries=c.max_retries,
        )
    raise ValueError(f"unknown source {source!r}; use synthetic, file or ccxt")


def bootstrap_ingest(
    settings: AppSettings,
    provider: HistoricalDataProvider,
    market_data: MarketDataRepository,
    bus: MessageBus,
) -> IngestService:
    return IngestService(provider, market_data, bus, policy=settings.ingest.validation.policy)
