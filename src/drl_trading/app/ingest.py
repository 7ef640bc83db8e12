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
from drl_trading.common.adapter.always_open_calendar import AlwaysOpenCalendar
from drl_trading.common.bar_windows import bar_slots
from drl_trading.common.calendar import CalendarBook
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
            edge=cfg.synthetic.edge,
            edge_timeframe=Timeframe(cfg.synthetic.edge_timeframe),
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


def stored_bars(
    market_data: MarketDataRepository,
    symbols: Sequence[Symbol],
    timeframe: Timeframe,
    start: datetime,
    end: datetime,
    calendars: CalendarBook | None = None,
) -> dict[Symbol, tuple[int, int]]:
    """Per symbol, how many ``timeframe`` bars are stored in ``[start, end)`` and how many the
    symbol's market makes there (``calendars``; None: 24/7), read back from the store (after
    its staged writes are flushed): what an interrupted ingest reports, so that the figure is
    what a rerun will find and not what the progress bar last showed."""
    out: dict[Symbol, tuple[int, int]] = {}
    for s in symbols:
        calendar = AlwaysOpenCalendar() if calendars is None else calendars.for_symbol(s)
        expected = int(bar_slots(calendar, timeframe, start, end).size)
        out[s] = (market_data.read_bars(s, timeframe, start, end).height, expected)
    return out


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
    *,
    timeframe: Timeframe = Timeframe.M1,
    calendars: CalendarBook | None = None,
) -> OnlineIngestService:
    """Online ingest on ``bus``: gap fill from ``history`` (None: the stored bars), catch-up,
    then the live bars of ``source``; `OnlineIngestService.start` begins the session.
    ``timeframe``: the bars the session streams; ``calendars``: `build_calendars` (None: 24/7)."""
    service = OnlineIngestService(
        history, source, market_data, bus, clock, timeframe=timeframe, calendars=calendars
    )
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
    *,
    timeframe: Timeframe = Timeframe.M1,
) -> tuple[LiveBarSource, HistoricalDataProvider | None]:
    """The live bar source of ``kind`` from ``start`` and the provider that fills the gap and
    the warm-up history before it (None: the stored bars, for a replay of them). Its bars are
    of ``timeframe`` (the session's data timeframe) on each symbol's market calendar
    (``markets``): no bar is expected, waited for or paced while a market is closed.
    ``ccxt-live`` follows the exchange's websocket candles (`CcxtWsSource`, which polls where
    there is no stream) unless ``ingest.ccxt.websocket`` is false or ``base_url`` replaces the
    REST host without a ``ws_url``: then it polls (`CcxtLiveSource`)."""
    calendars = build_calendars(settings)
    if kind == "replay":
        from drl_trading.ingest.adapter.replay_source import ReplaySource

        if end is None:
            raise ValueError("a replay needs an end")
        replay = ReplaySource(
            market_data, symbols, start, end, speed=speed, timeframe=timeframe, calendars=calendars
        )
        return replay, None
    if kind == "synthetic-live":
        from drl_trading.ingest.adapter.synthetic_live_source import SyntheticLiveSource

        synthetic = settings.ingest.synthetic
        live = SyntheticLiveSource(
            synthetic.seed,
            symbols,
            start,
            speed=speed,
            timeframe=timeframe,
            calendars=calendars,
            edge=synthetic.edge,
            edge_timeframe=Timeframe(synthetic.edge_timeframe),
        )
        return live, build_provider(settings, "synthetic")
    from drl_trading.ingest.adapter.ccxt_live_source import CcxtLiveSource
    from drl_trading.ingest.adapter.ccxt_provider import CcxtProvider

    exchange = build_provider(settings, "ccxt")  # gap fill and warm-up from the same exchange
    assert isinstance(exchange, CcxtProvider)
    c = settings.ingest.ccxt
    # the stream of the exchange's own host is not the one of a REST host replaced by base_url
    if c.websocket and (c.base_url is None or c.ws_url is not None):
        from drl_trading.ingest.adapter.ccxt_ws_source import CcxtWsSource

        streamed = CcxtWsSource(
            exchange,
            symbols,
            clock,
            ws_url=c.ws_url,
            start=start,
            poll_interval=c.poll_interval_s,
            close_delay=timedelta(seconds=c.close_delay_s),
            timeframe=timeframe,
            calendars=calendars,
        )
        return streamed, exchange
    live_ccxt = CcxtLiveSource(
        exchange,
        symbols,
        clock,
        start=start,
        poll_interval=c.poll_interval_s,
        close_delay=timedelta(seconds=c.close_delay_s),
        timeframe=timeframe,
        calendars=calendars,
    )
    return live_ccxt, exchange
