"""Benchmark of the calendar arithmetic: per-bar lookups and whole-year arrays, per calendar.

For the 24/7, FX and XNYS calendars at 1m and 1h (and 1d): the scalar `BarWindows` lookups an
online engine makes once per bar (``key`` of a time, ``close`` of a bar, ``next_slot``,
``slots_between``), in lookups per second over one year of shuffled times, and the vectorised
`bar_slots` + `bar_closes` of a whole year. Also the one-off costs: importing exchange_calendars
and building XNYS's schedule. For comparison, exchange_calendars' own ``is_open_on_minute``.

    .venv/bin/python benchmarks/market_calendars.py [--lookups 200000]
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import UTC, datetime

from drl_trading.common.adapter.always_open_calendar import AlwaysOpenCalendar
from drl_trading.common.adapter.exchange_calendars_calendar import ExchangeCalendarsCalendar
from drl_trading.common.adapter.fx_calendar import FxCalendar
from drl_trading.common.bar_windows import BarWindows, bar_closes, bar_slots
from drl_trading.common.calendar import MarketCalendar
from drl_trading.common.domain import Timeframe, to_micros
from timing import line, timed

START = datetime(2024, 1, 1, tzinfo=UTC)
END = datetime(2025, 1, 1, tzinfo=UTC)


def _lookups(cal: MarketCalendar, tf: Timeframe, n: int) -> None:
    windows = BarWindows(cal, tf)
    slots = bar_slots(cal, tf, START, END).tolist()
    rng = random.Random(7)
    keys = [rng.choice(slots) for _ in range(n)]
    pairs = [(rng.choice(slots), rng.choice(slots)) for _ in range(n // 4)]
    lo, hi = to_micros(START), to_micros(END)
    times = [rng.randrange(lo, hi) for _ in range(n)]
    windows.close(keys[0])  # build the span once, as a running engine has
    windows.slots_between(slots[0], slots[-1])
    name = f"{cal.name} {tf}"
    for what, fn, rows in [
        ("key(t)", lambda: [windows.key(t) for t in times], n),
        ("close(key)", lambda: [windows.close(k) for k in keys], n),
        ("next_slot(t)", lambda: [windows.next_slot(t) for t in times], n),
        ("slots_between", lambda: [windows.slots_between(a, b) for a, b in pairs], len(pairs)),
    ]:
        _, took = timed(fn, 5)
        line(f"  {name:<9} {what}", took, rows, unit="lookups", width=34)
    (keys_year, _), took = timed(lambda: (bar_slots(cal, tf, START, END), None), 3)
    _, took_c = timed(lambda: bar_closes(cal, tf, keys_year), 3)
    line(f"  {name:<9} slots of 2024", took, len(keys_year), unit="slots", width=34)
    line(f"  {name:<9} closes of 2024", took_c, len(keys_year), unit="slots", width=34)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lookups", type=int, default=200_000)
    args = parser.parse_args()
    t0 = time.perf_counter()
    import exchange_calendars as xc
    import pandas as pd

    print(f"import exchange_calendars     {time.perf_counter() - t0:9.3f} s")
    xnys = ExchangeCalendarsCalendar("XNYS")
    t0 = time.perf_counter()
    xnys.sessions(START, END)
    print(f"build XNYS 2023..2025         {time.perf_counter() - t0:9.3f} s")
    for cal in (AlwaysOpenCalendar(), FxCalendar(), xnys):
        print(f"{cal.name}:")
        for tf in (Timeframe.M1, Timeframe.H1, Timeframe.D1):
            _lookups(cal, tf, args.lookups)
    native = xc.get_calendar("XNYS", start="2023-12-01", end="2025-01-31")
    rng = random.Random(7)
    lo, hi = to_micros(START) // 60_000_000, to_micros(END) // 60_000_000
    minutes = [pd.Timestamp(rng.randrange(lo, hi) * 60, unit="s", tz=UTC) for _ in range(2000)]
    _, took = timed(lambda: [native.is_open_on_minute(m) for m in minutes], 3)
    line("exchange_calendars is_open_on_minute", took, len(minutes), unit="lookups", width=34)


if __name__ == "__main__":
    main()
