"""Which timeframe a symbol's stored bars are in: the data timeframe that preprocessing reads.

`drl-trading ingest --timeframe` stores bars under the timeframe they were declared as; the
preprocess service then writes coarser timeframes resampled from them over the same range. The
finest timeframe with bars in a range is therefore the one that came from the source, and it is
what commands working on stored bars (`preprocess`, `train`, `paper --source replay`) take as the
data timeframe without being told. A request whose symbols were stored at different timeframes
is refused: one request makes one set of bars per timeframe from one source timeframe.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from drl_trading.common.domain import Symbol, Timeframe
from drl_trading.common.errors import UsageError
from drl_trading.common.ports import MarketDataRepository

FINEST_FIRST = tuple(sorted(Timeframe, key=lambda t: t.minutes))
"""Every timeframe, shortest first: the order in which stored bars are looked for."""


class MixedTimeframesError(UsageError):
    """The symbols of one request were stored at different data timeframes."""

    retryable = False


def stored_timeframes(
    market_data: MarketDataRepository,
    symbols: Sequence[Symbol],
    start: datetime,
    end: datetime,
) -> dict[Symbol, Timeframe]:
    """The finest timeframe with bars in ``[start, end)`` of each symbol that has any (a symbol
    with none is absent: whoever reads its bars then says that none are stored)."""
    found: dict[Symbol, Timeframe] = {}
    wanted = {str(s): s for s in symbols}
    for tf in FINEST_FIRST:
        if len(found) == len(wanted):
            break
        held = market_data.coverages(tf, start, end)
        for name, symbol in wanted.items():
            if symbol not in found and name in held:
                found[symbol] = tf
    return found


def data_timeframe(
    market_data: MarketDataRepository,
    symbols: Sequence[Symbol],
    start: datetime,
    end: datetime,
    default: Timeframe = Timeframe.M1,
) -> Timeframe:
    """The data timeframe of ``symbols`` over ``[start, end)``: the finest timeframe stored for
    them there (``default`` when none has bars). Raises `MixedTimeframesError` naming each
    symbol's timeframe when they differ."""
    found = stored_timeframes(market_data, symbols, start, end)
    distinct = sorted(set(found.values()), key=lambda t: t.minutes)
    if not distinct:
        return default
    if len(distinct) > 1:
        each = ", ".join(f"{s} {found[s].value}" for s in symbols if s in found)
        raise MixedTimeframesError(
            f"the symbols' stored bars have different timeframes in {start:%Y-%m-%d %H:%M} .. "
            f"{end:%Y-%m-%d %H:%M} ({each}); run one request per timeframe, or ingest them all "
            f"with the same --timeframe"
        )
    return distinct[0]
