"""The feature matrix as training sees it: point-in-time reads at every base bar's close.

Entity timestamps come from the stored base-timeframe bars, not from the feature rows, so a bar
whose features are missing is visible (counted in ``missing_rows``) instead of silently absent.
Training and ``features export`` share this function so that what a user inspects is exactly
what a model is trained on.

A bar's close is its market calendar's (`drl_trading.common.bar_windows.bar_closes`): the end of
its window on a 24/7 market, earlier where the market closes inside it (an XLON 1h bar keyed
15:00 UTC closes at 15:30), a daily bar at its session close. The base bars are those preprocess
stored, or the ingested bars themselves when the base timeframe is the data's.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from drl_trading.common.bar_windows import bar_closes
from drl_trading.common.bars import TIME_DTYPE
from drl_trading.common.calendar import MarketCalendar
from drl_trading.common.domain import Symbol, Timeframe, TimeRange
from drl_trading.common.ports import FeatureStore, FeatureViewSpec, MarketDataRepository


class DatasetError(LookupError):
    pass


@dataclass(frozen=True, slots=True)
class FeatureDataset:
    """``frame``: symbol, event_time, the view's columns, then the base bar's OHLCV (prefixed
    ``bar_``), sorted by symbol then time. ``missing_rows``: base bars without features."""

    frame: pl.DataFrame
    missing_rows: dict[Symbol, int]


def load_feature_matrix(
    market_data: MarketDataRepository,
    features: FeatureStore,
    view: FeatureViewSpec,
    symbols: list[Symbol],
    rng: TimeRange,
    calendar: MarketCalendar | None = None,
) -> FeatureDataset:
    """The features of ``view`` at the close of every base bar of ``symbols`` that closes in
    ``rng``. ``calendar``: the symbols' market calendar (None: 24/7); `DatasetError` when no
    base bars are stored or some lie outside the calendar's sessions."""
    base = view.base_timeframe
    parts: list[pl.DataFrame] = []
    missing: dict[Symbol, int] = {}
    for symbol in symbols:
        bars = market_data.read_bars(symbol, base, rng.start, rng.end)
        closes = _closes(bars, base, calendar, symbol)
        inside = closes <= rng.end
        bars, closes = bars.filter(inside), closes.filter(inside)
        if bars.is_empty():
            raise DatasetError(
                f"{symbol}: no {base.value} bars stored in [{rng.start.isoformat()}, "
                f"{rng.end.isoformat()}); run `drl-trading ingest ... --preprocess` first"
            )
        entities = pl.DataFrame({"symbol": [str(symbol)] * bars.height, "event_time": closes})
        got = features.historical_features(view, entities)
        got = pl.concat(
            [got, bars.select(pl.all().exclude("open_time").name.prefix("bar_"))],
            how="horizontal",
        ).with_columns(bars["open_time"].alias("bar_open_time"))
        complete = got.drop_nulls(list(view.columns))
        missing[symbol] = got.height - complete.height
        parts.append(complete)
    frame = pl.concat(parts)
    if frame.is_empty():
        raise DatasetError(
            f"no feature rows for {', '.join(symbols)} in the range; preprocess it first "
            f"(feature view {view.name})"
        )
    return FeatureDataset(frame, missing)


def _closes(
    bars: pl.DataFrame, base: Timeframe, calendar: MarketCalendar | None, symbol: Symbol
) -> pl.Series:
    """The close of each bar of ``bars`` (a ``TIME_DTYPE`` series): ``open_time + base`` on a
    24/7 market, the calendar's close otherwise."""
    if calendar is None or calendar.always_open:
        return (bars["open_time"] + base.duration).cast(TIME_DTYPE).alias("event_time")
    keys = bars["open_time"].dt.epoch("us").to_numpy()
    try:
        closes = bar_closes(calendar, base, keys)
    except ValueError as exc:
        raise DatasetError(
            f"{symbol}: stored {base.value} bars lie outside the sessions of market calendar "
            f"{calendar.name}: {exc}; set markets.symbols.{symbol}.calendar to the calendar the "
            "data was ingested with, or ingest and preprocess it again"
        ) from None
    return pl.Series("event_time", closes, dtype=pl.Int64).cast(TIME_DTYPE)
