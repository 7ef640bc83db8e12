"""Seeded synthetic 1m OHLCV: realistic enough to train and test on, reproducible to the bit.

The series of one symbol is a pure function of ``(seed, symbol, minute)``, whatever range is
asked for: a daily chain (a Markov chain of regimes with their own drift and volatility, and
GARCH(1,1) daily volatility) is run from a fixed anchor date, and each day's minutes are a
stochastic-volatility Brownian bridge between that day's open and close levels, seeded by the
day. So ingesting January and then February yields exactly the bars of one January-February
ingest, and the live synthetic source can continue any stored history.

Intraday structure: volatility and volume follow a UTC session profile (Asia, Europe and US
opens), volume is lower at weekends and rises with the size of the move, and minute volatility
clusters (an AR(1) log-volatility), with Student-t shocks for fat tails.

Other timeframes and markets that close are views of the same minutes: ``fetch`` keeps the
minutes the symbol's market calendar has open (`drl_trading.common.bar_windows.bar_keys`) and
aggregates them into the bars of the timeframe asked (open first, high max, low min, close last,
volume summed; a 1d bar is its session). On the 24/7 calendar, 1m bars are the minutes
themselves, bit for bit.

A learnable edge of known size can be planted (``edge > 0``): the returns of the bars of
``edge_timeframe`` become an AR(1) of coefficient ``edge`` (`drl_trading.ingest.adapter.
synthetic_edge`, which also states the Sharpe the edge plants); ``edge`` 0, the default, makes
the same bars as a provider without it, bit for bit.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from datetime import datetime, timedelta

import numpy as np
import polars as pl

from drl_trading.common.bar_windows import CLOSED, bar_first_opens, bar_keys
from drl_trading.common.bars import BAR_SCHEMA, TIME_DTYPE, conform, ohlcv_aggregations
from drl_trading.common.calendar import CalendarBook, MarketCalendar
from drl_trading.common.domain import EPOCH, Symbol, Timeframe, to_micros, utc
from drl_trading.ingest.adapter.synthetic_edge import check_edge, plant

ANCHOR = datetime(2000, 1, 1, tzinfo=EPOCH.tzinfo)
MINUTES_PER_DAY = 1440
_DAY_US = 86_400_000_000

# Regimes: (daily drift, volatility multiplier, volume multiplier)
_REGIMES = np.array(
    [
        (0.0015, 0.85, 1.0),  # steady uptrend
        (-0.0020, 1.25, 1.3),  # downtrend
        (0.0, 0.60, 0.8),  # range
        (-0.0060, 2.40, 2.2),  # crisis
    ]
)
_TRANSITIONS = np.array(
    [
        [0.970, 0.015, 0.013, 0.002],
        [0.020, 0.960, 0.015, 0.005],
        [0.020, 0.015, 0.963, 0.002],
        [0.050, 0.100, 0.050, 0.800],
    ]
)
_CUMULATIVE = np.cumsum(_TRANSITIONS, axis=1)


def _symbol_key(symbol: str) -> int:
    return int.from_bytes(hashlib.sha256(symbol.encode()).digest()[:8], "little")


def _session_profile() -> np.ndarray:
    """Relative activity per UTC minute of the day, mean 1."""
    m = np.arange(MINUTES_PER_DAY) / 60.0

    def bump(centre: float, width: float, height: float) -> np.ndarray:
        d = np.minimum(np.abs(m - centre), 24 - np.abs(m - centre))
        return height * np.exp(-0.5 * (d / width) ** 2)

    profile = 0.55 + bump(1.0, 1.5, 0.35) + bump(8.0, 1.2, 0.45) + bump(14.5, 1.5, 0.9)
    return profile / profile.mean()


_PROFILE = _session_profile()


class _DailyChain:
    """Regime, daily volatility and day-open log price for every day since the anchor."""

    def __init__(self, seed: int, symbol: str) -> None:
        key = _symbol_key(symbol)
        self._rng = np.random.default_rng([seed, key, 0xDA11])
        self.log_open = [math.log(10 ** (1.0 + 3.5 * ((key >> 8) % 1000) / 1000.0))]
        self.regime: list[int] = [0]
        self.vol: list[float] = []
        self._h = 0.03**2
        self._eps = 0.0

    def extend_to(self, day: int) -> None:
        """Ensure days ``0..day`` (inclusive) have their open, regime and volatility."""
        rng = self._rng
        long_run, alpha, beta = 0.03**2, 0.08, 0.90
        omega = long_run * (1 - alpha - beta)
        while len(self.vol) <= day:
            self._h = omega + alpha * self._eps**2 + beta * self._h
            regime = self.regime[-1]
            drift, vol_mult, _ = _REGIMES[regime]
            sigma = math.sqrt(self._h) * vol_mult
            self._eps = sigma * float(rng.standard_normal())
            self.vol.append(sigma)
            self.log_open.append(self.log_open[-1] + drift + self._eps)
            nxt = int(np.searchsorted(_CUMULATIVE[regime], rng.random(), side="right"))
            self.regime.append(min(nxt, len(_REGIMES) - 1))


class SyntheticProvider:
    """``fetch`` yields chunks of ``chunk_days`` days of bars (bars keyed in those days).

    ``calendars``: each symbol's market calendar (None: every symbol trades 24/7). ``edge``: the
    AR(1) coefficient of the returns of ``edge_timeframe``'s bars (0: none planted; see
    `drl_trading.ingest.adapter.synthetic_edge`).
    """

    name = "synthetic"

    def __init__(
        self,
        seed: int = 7,
        chunk_days: int = 7,
        calendars: CalendarBook | None = None,
        *,
        edge: float = 0.0,
        edge_timeframe: Timeframe = Timeframe.H1,
    ) -> None:
        if chunk_days < 1:
            raise ValueError("chunk_days must be >= 1")
        check_edge(edge, edge_timeframe)
        self.seed = seed
        self.chunk_days = chunk_days
        self.calendars = calendars
        self.edge = edge
        self.edge_timeframe = edge_timeframe
        self._chains: dict[str, _DailyChain] = {}

    def fetch(
        self, symbol: Symbol, timeframe: Timeframe, start: datetime, end: datetime
    ) -> Iterator[pl.DataFrame]:
        start, end = utc(start), utc(end)
        if start < ANCHOR:
            raise ValueError(f"synthetic data starts at {ANCHOR.date()}; asked from {start}")
        calendar = None if self.calendars is None else self.calendars.for_symbol(symbol)
        if calendar is not None and calendar.always_open:
            calendar = None
        first_day = (to_micros(start) - to_micros(ANCHOR)) // _DAY_US
        last_day = (to_micros(end) - 1 - to_micros(ANCHOR)) // _DAY_US
        # a session keyed (labelled) on day D may open on the evening before (FX): its minutes
        # come from the day before the chunk too
        before = 1 if calendar is not None and timeframe is Timeframe.D1 else 0
        for chunk_start in range(first_day, last_day + 1, self.chunk_days):
            chunk_end = min(chunk_start + self.chunk_days, last_day + 1)
            days = range(max(chunk_start - before, 0), chunk_end)
            frame = pl.concat([self.day(symbol, d) for d in days])
            if calendar is not None or timeframe is not Timeframe.M1:
                frame = _aggregate(frame, timeframe, calendar)
                lo, hi = (ANCHOR + timedelta(days=d) for d in (chunk_start, chunk_end))
                frame = frame.filter((pl.col("open_time") >= lo) & (pl.col("open_time") < hi))
                if calendar is not None and timeframe is Timeframe.D1 and chunk_start < before:
                    frame = _after_anchor(frame, calendar)
            yield frame.filter((pl.col("open_time") >= start) & (pl.col("open_time") < end))

    def day(self, symbol: Symbol, day: int) -> pl.DataFrame:
        """The 1440 1m bars of day number ``day`` since the anchor (every minute, 24/7)."""
        return self._day(symbol, day)

    def _day(self, symbol: Symbol, day: int) -> pl.DataFrame:
        chain = self._chains.setdefault(str(symbol), _DailyChain(self.seed, str(symbol)))
        chain.extend_to(day)
        rng = np.random.default_rng([self.seed, _symbol_key(str(symbol)), day + 1])
        n = MINUTES_PER_DAY
        regime = chain.regime[day]
        day_open, day_close = chain.log_open[day], chain.log_open[day + 1]
        weekday = (ANCHOR + timedelta(days=day)).weekday()

        # Clustered minute volatility: AR(1) log-volatility via an exponential filter.
        shocks = rng.standard_normal(n)
        persistence = 0.97
        # Start the filter in its stationary distribution (no burst of volatility at midnight).
        shocks[0] *= math.sqrt((1 - persistence) / (1 + persistence))
        logvol = (
            pl.Series(shocks).ewm_mean(alpha=1 - persistence, adjust=False).to_numpy()
            * math.sqrt((1 + persistence) / (1 - persistence))
            * 0.25
        )
        sigma = chain.vol[day] / math.sqrt(n) * _PROFILE * np.exp(logvol - 0.5 * 0.25**2)
        dof = 5.0
        z = rng.standard_t(dof, n) / math.sqrt(dof / (dof - 2))
        increments = plant(sigma * z, self.edge, self.edge_timeframe)
        walk = np.cumsum(increments)
        var = np.cumsum(sigma**2)
        frac = var / var[-1]
        path = day_open + frac * (day_close - day_open) + walk - frac * walk[-1]

        close = np.exp(path)
        open_ = np.empty(n)
        open_[0] = math.exp(day_open)
        open_[1:] = close[:-1]
        wick_hi = np.abs(rng.standard_normal(n)) * 0.6 * sigma
        wick_lo = np.abs(rng.standard_normal(n)) * 0.6 * sigma
        high = np.maximum(open_, close) * np.exp(wick_hi)
        low = np.minimum(open_, close) * np.exp(-wick_lo)

        base_volume = 50.0 + (_symbol_key(str(symbol)) % 5000)
        move = np.abs(np.log(close / open_)) / sigma
        volume = (
            base_volume
            * _PROFILE
            * (0.6 if weekday >= 5 else 1.0)
            * _REGIMES[regime, 2]
            * (0.4 + 0.6 * move)
            * rng.lognormal(0.0, 0.35, n)
        )
        t0 = to_micros(ANCHOR) + day * _DAY_US
        times = (
            pl.Series("open_time", np.arange(t0, t0 + n * 60_000_000, 60_000_000, dtype=np.int64))
            .cast(pl.Datetime("us"))
            .dt.replace_time_zone("UTC")
            .cast(TIME_DTYPE)
        )
        return pl.DataFrame(
            {
                "open_time": times,
                "open": open_,
                "high": high,
                "low": low,
                "close": close,
                "volume": volume,
            },
            schema=BAR_SCHEMA,
        )


def _aggregate(
    minutes: pl.DataFrame, timeframe: Timeframe, calendar: MarketCalendar | None
) -> pl.DataFrame:
    """The bars of ``timeframe`` made of the open ``minutes`` (sorted 1m bars): each bar keyed
    by `bar_keys` (the epoch-grid window, or the session label for 1d on a calendar), minutes
    of a closed market dropped."""
    times = minutes["open_time"].dt.epoch("us").to_numpy()
    if calendar is None:
        keys = times - times % timeframe.micros
    else:
        keys = bar_keys(calendar, timeframe, times)
    keyed = minutes.with_columns(pl.Series("key", keys, dtype=pl.Int64)).filter(
        pl.col("key") != CLOSED
    )
    bars = (
        keyed.group_by("key", maintain_order=True)
        .agg(*ohlcv_aggregations())
        .with_columns(
            pl.col("key").cast(pl.Datetime("us")).dt.replace_time_zone("UTC").cast(TIME_DTYPE)
        )
    )
    return conform(bars.rename({"key": "open_time"}))


def _after_anchor(bars: pl.DataFrame, calendar: MarketCalendar) -> pl.DataFrame:
    """Without the daily bars whose session opens before the anchor (only part of it exists)."""
    keys = bars["open_time"].dt.epoch("us").to_numpy()
    opens = bar_first_opens(calendar, Timeframe.D1, keys)
    return bars.filter(pl.Series(opens >= to_micros(ANCHOR)))
