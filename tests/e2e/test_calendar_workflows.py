"""Issue 12, part 2, as a user meets it: an FX-like hourly file and a stock-like daily file, each
through `quickstart --timeframe` (ingest → preprocess → train → register → test backtest), then
`backtest`, then `paper --source replay` over the test part, with the served features compared
with `features export` of the same bars.

Measured before: the hourly file ingested as 1m reported 5,001 gaps and 419,800 missing bars and
resampled every 5m..1h bar from single hourly bars. Here each file is stored under its own
timeframe, its market's closures are no gaps, a daily bar is a session, every feature row is
stamped at its bar's calendar close, returns are annualised by the calendar's bars per year, and
the replay serves the trained features to 1e-9 without a missing bar at a weekend or a night.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import yaml

from drl_trading.common.adapter.duckdb_market_data import DuckDBMarketData
from drl_trading.common.adapter.exchange_calendars_calendar import ExchangeCalendarsCalendar
from drl_trading.common.adapter.fx_calendar import FxCalendar
from drl_trading.common.bar_windows import bar_closes, bar_slots, bars_per_year
from drl_trading.common.calendar import MarketCalendar
from drl_trading.common.domain import Symbol, Timeframe, parse_time, to_micros
from drl_trading.strategy.feature_set import FeatureSetSpec
from drl_trading.testing.calendar_data import write_calendar_csv
from drl_trading.testing.cli_process import run_cli
from drl_trading.testing.feature_parity import PARITY, compare_rows
from drl_trading.testing.tiny_training import PERMISSIVE_GATE

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

SHORT_MEMORY = [
    {"kind": "log_return", "horizons": [1, 2]},
    {"kind": "realized_vol", "window": 5},
    {"kind": "volume_zscore", "window": 5},
    {"kind": "bollinger", "period": 10},
]
"""Indicators that settle within a few bars, so that a few weeks of hourly or two years of
daily bars leave room for the warm-up, the splits and the replay."""


@dataclass(frozen=True)
class Market:
    symbol: str
    calendar_name: str
    timeframe: Timeframe
    start: str
    end: str
    context: tuple[Timeframe, ...]

    def calendar(self) -> MarketCalendar:
        return FxCalendar() if self.calendar_name == "fx" else ExchangeCalendarsCalendar("XNYS")

    def feature_set(self) -> dict[str, Any]:
        return {
            "name": f"cal_{self.timeframe.value}",
            "base_timeframe": self.timeframe.value,
            "timeframes": [
                {"timeframe": self.timeframe.value, "indicators": SHORT_MEMORY},
                *(
                    {"timeframe": tf.value, "indicators": [{"kind": "log_return", "horizons": [1]}]}
                    for tf in self.context
                ),
            ],
        }


FX = Market("EURUSD", "fx", Timeframe.H1, "2024-01-01", "2024-02-26", (Timeframe.H4, Timeframe.D1))
"""Eight FX weeks of hourly bars (Sunday 22:00 to Friday 22:00 UTC in winter)."""

STOCK = Market("AAPL", "XNYS", Timeframe.D1, "2022-01-01", "2024-01-01", ())
"""Two years of NYSE sessions: about 500 daily bars, none on weekends and holidays."""


def _config(path: Path, market: Market) -> Path:
    config = {
        "markets": {"symbols": {market.symbol: {"calendar": market.calendar_name}}},
        "preprocess": {"store_timeframes": [], "feature_set": market.feature_set()},
        "training": {
            "total_timesteps": 64,
            "random_agent_seeds": 1,
            "env": {"n_envs": 1, "episode_bars": 32},
            "algorithm": {"hyperparameters": {"n_steps": 32, "batch_size": 32, "n_epochs": 1}},
            "gate": PERMISSIVE_GATE,
        },
    }
    path.write_text(yaml.safe_dump(config))
    return path


def _ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-4000:])
    assert "Traceback" not in proc.stderr
    return proc


@pytest.mark.parametrize("market", [FX, STOCK], ids=["fx-1h", "xnys-1d"])
def test_a_closing_market_through_the_whole_workflow(tmp_path: Path, market: Market) -> None:
    calendar = market.calendar()
    tf = market.timeframe
    lo, hi = parse_time(market.start), parse_time(market.end)
    csv = write_calendar_csv(tmp_path / "bars.csv", market.symbol, calendar, tf, lo, hi)
    config = _config(tmp_path / "config.yaml", market)
    home = tmp_path / "home"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(home, *args, config=config, inherit_settings=False)

    qs = _ok(
        cli(
            "quickstart", "--source", "file", "--path", str(csv), "--symbols", market.symbol,
            "--timeframe", tf.value,
        )
    )  # fmt: skip
    slots = bar_slots(calendar, tf, lo, hi)
    # every bar of the file stored under its own timeframe, no gap reported across the closures
    row = re.search(rf"{market.symbol}\s+│\s+(\d+)\s+│\s+(\d+)\s+│.*│\s+(\d+)\s+│\s+(\d+)\s+│\s*$",
                    qs.stdout, re.M)  # fmt: skip
    assert row is not None, qs.stdout[-3000:]
    fetched, stored, gaps, missing = (int(g) for g in row.groups())
    assert fetched == stored == slots.size
    assert (gaps, missing) == (0, 0)
    assert "gap" not in qs.stderr
    # annualised by the calendar's bars per year, not 365 days of bars
    per_year = bars_per_year(calendar, tf, lo, hi)
    said = f"{per_year:,.6g} {tf.value} bars a year (market calendar {market.calendar_name})"
    assert f"annualised with {said}" in qs.stdout

    store = DuckDBMarketData(home / "market.duckdb")
    try:
        sym = Symbol(market.symbol)
        held = store.read_bars(sym, tf, lo, hi)
        assert held.height == slots.size
        assert store.coverage(sym, Timeframe.M1) is None
        if Timeframe.D1 in market.context:  # resampled daily bars are the market's sessions
            daily = store.read_bars(sym, Timeframe.D1, lo, hi)
            sessions = bar_slots(calendar, Timeframe.D1, lo, hi)
            keys = daily["open_time"].dt.epoch("us").to_numpy()
            assert set(keys) <= set(sessions) and daily.height >= sessions.size - 2
    finally:
        store.close()

    paper_args = re.search(r"--start (\S+) --end (\S+) --fresh", qs.stdout)
    assert paper_args is not None, qs.stdout[-2000:]
    start, end = paper_args.groups()

    bt = _ok(cli("backtest", "--model", "drl-example/1", "-s", market.symbol,
                 "--start", start, "--end", end))  # fmt: skip
    assert f"market calendar {market.calendar_name}" in bt.stdout + bt.stderr

    online = tmp_path / "online.parquet"
    paper = _ok(
        cli(
            "paper", "--model", "drl-example/1", "--symbols", market.symbol, "--source",
            "replay", "--start", start, "--end", end, "--fresh", "--record-features", str(online),
        )
    )  # fmt: skip
    assert "missing" not in paper.stderr.lower(), paper.stderr[-3000:]
    offline = tmp_path / "offline.parquet"
    _ok(cli("features", "export", "-s", market.symbol, "--start", start, "--end", end,
            "--out", str(offline)))  # fmt: skip

    spec = FeatureSetSpec.model_validate(market.feature_set())
    trained = pl.read_parquet(offline).select("event_time", *spec.columns)
    served = pl.read_parquet(online).select("event_time", *spec.columns)
    # one row per bar of the market in the replayed range, each at its bar's calendar close
    keys = bar_slots(calendar, tf, parse_time(start), parse_time(end))
    closes = bar_closes(calendar, tf, keys)
    times = trained["event_time"].dt.epoch("us").to_numpy()
    assert np.array_equal(times, closes), (times[:3], closes[:3])
    assert served.height == trained.height == keys.size > 10
    n, worst, where = compare_rows(
        spec,
        {r[0]: r[1:] for r in trained.iter_rows()},
        {r[0]: r[1:] for r in served.iter_rows()},
    )
    assert n == keys.size
    assert worst <= PARITY, where
    report = json.loads(next((home / "reports").glob("paper*.json")).read_text())
    assert report  # the session wrote its report


def test_closures_in_the_range_are_not_gaps_but_a_missing_session_is(tmp_path: Path) -> None:
    """The daily stock file with one session removed: exactly one gap of one bar, while every
    weekend and holiday of the two years stays silent."""
    calendar = STOCK.calendar()
    lo, hi = parse_time(STOCK.start), parse_time(STOCK.end)
    csv = write_calendar_csv(tmp_path / "bars.csv", STOCK.symbol, calendar, Timeframe.D1, lo, hi)
    lines = csv.read_text().splitlines()
    removed = lines.pop(100)  # a session in the middle
    csv.write_text("\n".join(lines) + "\n")
    config = _config(tmp_path / "config.yaml", STOCK)
    done = _ok(
        run_cli(
            tmp_path / "home", "ingest", "--source", "file", "--path", str(csv), "-s", "AAPL",
            "--timeframe", "1d", config=config, inherit_settings=False,
        )
    )  # fmt: skip
    day = removed.split(",")[0][:10]
    assert to_micros(parse_time(day)) in set(bar_slots(calendar, Timeframe.D1, lo, hi))
    gaps = [line for line in done.stderr.splitlines() if line.startswith("AAPL: gap")]
    # the session's own close ends the gap (16:00 New York), not the next midnight
    close = datetime.fromtimestamp(
        int(bar_closes(calendar, Timeframe.D1, [to_micros(parse_time(day))])[0]) / 1e6, UTC
    )
    assert gaps == [f"AAPL: gap {day}T00:00:00+00:00 .. {close.isoformat()} (1 bars missing)"]
