"""Composition of the ingest service: historical providers and live sources from settings, the
batch service, and the online service subscribed to its topics."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from drl_trading.app.infrastructure import build_calendars
from drl_trading.app.settings import AppSettings
from drl_trading.app.topology import subscribe
from drl_trading.common.domain import Symbol, Timeframe
from drl_trading.common.ports import Clock, MarketDataRepository, MessageBus
from drl_trading.ingest.adapter.online_handlers import OnlineIngestHandlers
from drl_trading.ingest.core.live import LiveBarSource
from drl_trading.ingest.core.online_service import OnlineIngestService
from drl_trading.ingest.core.ports import HistoricalDataProvider
from drl_trading.ingest.core.service import IngestService

Source = Literal["synthetic", "file", "ccxt"]


def build_provider(
    settings: AppSettings, source: Source, path: Path | str | None = None
) -> HistoricalDataProvider:
    cfg = settings.ingest
    if source == "synthetic":
        from drl_trading.ingest.adapter.synthetic_provider import SyntheticProvider

        return SyntheticProvider(
            seed=cfg.synthetic.seed,
            chunk_days=cfg.synthetic.chunk_days,
            calendars=build_calendars(settings),
        )
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


def stored_minutes(
    market_data: MarketDataRepository, symbols: Sequence[Symbol], start: datetime, end: datetime
) -> dict[Symbol, int]:
    """How many 1m bars of ``symbols`` are stored in ``[start, end)``, read back from the
    store (after its staged writes are flushed): what an interrupted ingest reports, so that
    the figure is what a rerun will find and not what the progress bar last showed."""
    return {s: market_data.read_bars(s, Timeframe.M1, start, end).height for s in symbols}


def bootstrap_ingest(
    settings: AppSettings,
    provider: HistoricalDataProvider,
    market_data: MarketDataRepository,
    bus: MessageBus,
) -> IngestService:
    """The batch ingest service, judging each symbol's bars by its market calendar
    (``markets``): closures are no gaps, bars inside them are ``market_closed``."""
    return IngestService(
        provider,
        market_data,
        bus,
        policy=settings.ingest.validation.policy,
        calendars=build_calendars(settings),
    )


def compose_online_ingest(
    bus: MessageBus,
    market_data: MarketDataRepository,
    source: LiveBarSource,
    history: HistoricalDataProvider | None,
    clock: Clock,
) -> OnlineIngestService:
    """Online ingest on ``bus``: gap fill from ``history`` (None: the stored bars), catch-up,
    then the live bars of ``source``; `OnlineIngestService.start` begins the session."""
    service = OnlineIngestService(history, source, market_data, bus, clock)
    subscribe(bus, "ingest", OnlineIngestHandlers(service))
    return service


LiveSourceKind = Literal["replay", "synthetic-live", "ccxt-live"]


def build_live_source(
    settings: AppSettings,
    kind: LiveSourceKind,
    symbols: Sequence[Symbol],
    market_data: MarketDataRepository,
    clock: Clock,
    start: datetime,
    end: datetime | None = None,
    speed: float | None = None,
) -> tuple[LiveBarSource, HistoricalDataProvider | None]:
    """The live bar source of ``kind`` from ``start`` and the provider that fills the gap and
    the warm-up history before it (None: the stored bars, for a replay of them)."""
    if kind == "replay":
        from drl_trading.ingest.adapter.replay_source import ReplaySource

        if end is None:
            raise ValueError("a replay needs an end")
        return ReplaySource(market_data, symbols, start, end, speed=speed), None
    if kind == "synthetic-live":
        from drl_trading.ingest.adapter.synthetic_live_source import SyntheticLiveSource

        seed = settings.ingest.synthetic.seed
        live = SyntheticLiveSource(seed, symbols, start, speed=speed)
        return live, build_provider(settings, "synthetic")
    from drl_trading.ingest.adapter.ccxt_live_source import CcxtLiveSource
    from drl_trading.ingest.adapter.ccxt_provider import CcxtProvider

    exchange = build_provider(settings, "ccxt")  # gap fill and warm-up from the same exchange
    assert isinstance(exchange, CcxtProvider)
    c = settings.ingest.ccxt
    live_ccxt = CcxtLiveSource(
        exchange,
        symbols,
        clock,
        start=start,
        poll_interval=c.poll_interval_s,
        close_delay=timedelta(seconds=c.close_delay_s),
    )
    return live_ccxt, exchange
