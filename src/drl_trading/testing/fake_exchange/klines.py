"""The fake exchange's candles: 1m bars built from its trade prints (or set by a test), served
at any Binance interval up to 1d by aggregating them. Times are epoch milliseconds (UTC)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

import polars as pl

from drl_trading.common.bars import conform
from drl_trading.common.domain import Bar

MINUTE_MS = 60_000
INTERVAL_MS: dict[str, int] = {
    "1m": MINUTE_MS,
    "3m": 3 * MINUTE_MS,
    "5m": 5 * MINUTE_MS,
    "15m": 15 * MINUTE_MS,
    "30m": 30 * MINUTE_MS,
    "1h": 60 * MINUTE_MS,
    "2h": 120 * MINUTE_MS,
    "4h": 240 * MINUTE_MS,
    "6h": 360 * MINUTE_MS,
    "8h": 480 * MINUTE_MS,
    "12h": 720 * MINUTE_MS,
    "1d": 1440 * MINUTE_MS,
}

BarRow = tuple[datetime | int, float, float, float, float, float]
BarsInput = pl.DataFrame | Iterable[Bar] | Iterable[BarRow]


@dataclass(slots=True)
class Kline:
    open: float
    high: float
    low: float
    close: float
    volume: float
    quote_volume: float
    trades: int

    def absorb(self, other: Kline) -> None:
        self.high = max(self.high, other.high)
        self.low = min(self.low, other.low)
        self.close = other.close
        self.volume += other.volume
        self.quote_volume += other.quote_volume
        self.trades += other.trades


def to_ms(moment: datetime | int) -> int:
    if isinstance(moment, int):
        return moment
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment}: the fake exchange needs UTC-aware times")
    return int(moment.timestamp() * 1000)


class KlineBook:
    """1m klines per symbol, keyed by open time (ms)."""

    def __init__(self) -> None:
        self._bars: dict[str, dict[int, Kline]] = {}

    def record_trade(self, symbol: str, price: float, volume: float, time_ms: int) -> None:
        """Fold one trade print into the 1m kline that contains ``time_ms``."""
        open_ms = time_ms - time_ms % MINUTE_MS
        bars = self._bars.setdefault(symbol, {})
        print_bar = Kline(price, price, price, price, volume, price * volume, 1)
        current = bars.get(open_ms)
        if current is None:
            bars[open_ms] = print_bar
        else:
            current.absorb(print_bar)

    def set_bars(self, symbol: str, bars: BarsInput) -> None:
        """Replace ``symbol``'s history with 1m bars: a bar frame (`drl_trading.common.bars`
        schema), `Bar`s, or ``(open_time, open, high, low, close, volume)`` rows with
        ``open_time`` a UTC datetime or epoch ms."""
        rows: list[BarRow]
        if isinstance(bars, pl.DataFrame):
            frame = conform(bars)
            rows = list(frame.iter_rows())
        else:
            rows = [
                (b.open_time, b.open, b.high, b.low, b.close, b.volume) if isinstance(b, Bar) else b
                for b in bars  # type: ignore[union-attr]
            ]
        history: dict[int, Kline] = {}
        for open_time, o, h, low, c, v in rows:
            open_ms = to_ms(open_time)
            if open_ms % MINUTE_MS:
                raise ValueError(
                    f"bar open time {open_time} of {symbol} is not on a minute boundary"
                )
            history[open_ms] = Kline(
                float(o), float(h), float(low), float(c), float(v), float(c) * float(v), 1
            )
        self._bars[symbol] = history

    def query(
        self, symbol: str, interval_ms: int, start_ms: int | None, end_ms: int | None, limit: int
    ) -> list[list[object]]:
        """Binance kline rows: open time in [start, end], the first ``limit`` from ``start``,
        else the latest ``limit``."""
        grouped: dict[int, Kline] = {}
        for open_ms in sorted(self._bars.get(symbol, {})):
            bar = self._bars[symbol][open_ms]
            bucket = open_ms - open_ms % interval_ms
            if bucket in grouped:
                grouped[bucket].absorb(bar)
            else:
                grouped[bucket] = replace(bar)
        opens = [
            t
            for t in sorted(grouped)
            if (start_ms is None or t >= start_ms) and (end_ms is None or t <= end_ms)
        ]
        opens = opens[:limit] if start_ms is not None else opens[-limit:]
        return [_row(t, interval_ms, grouped[t]) for t in opens]

    def window(self, symbol: str, start_ms: int) -> list[Kline]:
        """The 1m klines of ``symbol`` from ``start_ms`` on, in time order (for the 24h ticker)."""
        bars = self._bars.get(symbol, {})
        return [bars[t] for t in sorted(bars) if t >= start_ms]


def _row(open_ms: int, interval_ms: int, bar: Kline) -> list[object]:
    return [
        open_ms,
        _num(bar.open),
        _num(bar.high),
        _num(bar.low),
        _num(bar.close),
        _num(bar.volume),
        open_ms + interval_ms - 1,
        _num(bar.quote_volume),
        bar.trades,
        "0.00000000",
        "0.00000000",
        "0",
    ]


def _num(value: float) -> str:
    return f"{value:.8f}"
