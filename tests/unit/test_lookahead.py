"""`check lookahead`: perturbing the bars after a cut leaves every feature and observation at or
before it unchanged for a causal feature set, and a feature that peeks at the next bar is
reported with its column and time (and exits 1 on the command line)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

import drl_trading.preprocess.core.indicators as ind
from drl_trading.app.infrastructure import feature_set_for
from drl_trading.app.lookahead import NoBarsError, check_lookahead
from drl_trading.app.settings import AppSettings, load_settings
from drl_trading.common.adapter.fx_calendar import FxCalendar
from drl_trading.common.adapter.memory_market_data import InMemoryMarketData
from drl_trading.common.domain import Symbol, Timeframe, TimeRange
from drl_trading.ingest.adapter.synthetic_provider import SyntheticProvider
from drl_trading.preprocess.core.history import read_start
from drl_trading.preprocess.core.lookahead import (
    ROW,
    changes_at_or_before,
    perturb_after,
    pick_cuts,
)
from drl_trading.strategy.feature_set import (
    RSI,
    FeatureSetSpec,
    LogReturns,
    RealizedVolatility,
    TimeframeFeatures,
    VolumeZScore,
)
from drl_trading.testing.calendar_data import calendar_bars

BTC = Symbol("BTCUSDT")
EURUSD = Symbol("EURUSD")
RANGE = TimeRange.parse("2024-01-02", "2024-01-04")


def _quick(base: Timeframe, *context: Timeframe) -> FeatureSetSpec:
    """A feature set with a short warm-up: a day of 1m bars settles it."""
    indicators = (
        LogReturns(horizons=(1, 3)),
        RSI(period=5),
        RealizedVolatility(window=5),
        VolumeZScore(window=5),
    )
    return FeatureSetSpec(
        name="quick",
        base_timeframe=base,
        timeframes=tuple(
            TimeframeFeatures(timeframe=tf, indicators=indicators) for tf in (base, *context)
        ),
    )


def _settings(tmp_path: Path, spec: FeatureSetSpec | None = None, **extra: object) -> AppSettings:
    overrides: dict[str, object] = {"home": tmp_path / "home", **extra}
    if spec is not None:
        overrides["preprocess"] = {"feature_set": spec.model_dump(mode="json")}
    return load_settings(**overrides)  # type: ignore[arg-type]


def _stored(
    settings: AppSettings, symbol: Symbol, tf: Timeframe, rng: TimeRange
) -> InMemoryMarketData:
    """Synthetic ``tf`` bars of ``symbol`` from the feature set's look-back before ``rng``."""
    market = InMemoryMarketData()
    start = read_start(feature_set_for(settings), None, rng.start)
    for chunk in SyntheticProvider(seed=3).fetch(symbol, tf, start, rng.end):
        market.upsert_bars(symbol, tf, chunk)
    return market


def _peek_next_close(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plant look-ahead: RSI computed from the next bar's close (``shift(-1)``)."""
    honest = ind.rsi

    def leaky(close: np.ndarray, period: int) -> np.ndarray:
        c = np.asarray(close, dtype=np.float64)
        return honest(np.append(c[1:], c[-1]), period)

    monkeypatch.setattr(ind, "rsi", leaky)


# -- the core -----------------------------------------------------------------------------------


def _bars(n: int = 50) -> pl.DataFrame:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    chunks = list(
        SyntheticProvider(seed=1).fetch(BTC, Timeframe.M1, start, start + timedelta(minutes=n))
    )
    return pl.concat(chunks)


def test_bars_after_the_cut_change_and_stay_valid_bars_before_do_not() -> None:
    bars = _bars()
    cut = bars["open_time"][20]
    out = perturb_after(bars, cut, np.random.default_rng(0))
    assert out.head(20).equals(bars.head(20))
    after, was = out.tail(30), bars.tail(30)
    for col in ("open", "high", "low", "close", "volume"):
        assert (after[col] != was[col]).all(), col
    top = after.select(pl.max_horizontal("open", "close")).to_series()
    bottom = after.select(pl.min_horizontal("open", "close")).to_series()
    assert (after["high"] >= top).all() and (after["low"] <= bottom).all()
    assert (after["low"] > 0).all()


def test_cuts_are_spread_over_the_closes_and_follow_the_seed() -> None:
    closes = pl.Series(
        [datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=i) for i in range(100)]
    )
    cuts = pick_cuts(closes, 4, np.random.default_rng(5))
    assert len(cuts) == 4
    index = [closes.to_list().index(c) for c in cuts]
    # one in each quarter of the 99 closes that have a bar after them (not the last)
    assert [
        lo <= i < hi
        for i, (lo, hi) in zip(index, [(0, 24), (24, 49), (49, 74), (74, 99)], strict=True)
    ] == [True] * 4
    assert cuts == pick_cuts(closes, 4, np.random.default_rng(5))
    assert pick_cuts(closes.head(3), 8, np.random.default_rng(0)) == closes.head(2).to_list()


def test_a_changed_value_and_a_row_in_one_computation_only_are_reported() -> None:
    t = [datetime(2024, 1, 1, h, tzinfo=UTC) for h in range(5)]
    ref = pl.DataFrame({"event_time": t, "a": [1.0, 2, 3, 4, 5], "b": [np.nan, 1, 1, 1, 1]})
    per = pl.DataFrame({"event_time": t, "a": [1.0, 2, 3.5, 9, 9], "b": [np.nan, 1, 1, 1, 1]})
    rows, changes = changes_at_or_before(ref, per, t[3], ("a", "b"))
    assert rows == 4
    (a,) = changes  # b: NaN on both sides and equal elsewhere; t[4] is after the cut
    assert (a.column, a.first, a.rows, a.largest, a.at) == ("a", t[2], 2, 5.0, t[3])
    assert changes_at_or_before(ref, per, t[3], ("a",), tolerance=5.0)[1] == []
    _, changes = changes_at_or_before(ref, per.filter(pl.col("event_time") != t[1]), t[3], ("b",))
    assert [(c.column, c.first, c.rows) for c in changes] == [(ROW, t[1], 1)]


# -- the workflow -------------------------------------------------------------------------------


def test_the_default_feature_set_has_no_look_ahead_on_synthetic_1m_bars(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    market = _stored(settings, BTC, Timeframe.M1, RANGE)
    report = check_lookahead(settings, [BTC], RANGE, cuts=2, market_data=market)
    assert report.findings == []
    assert report.data_timeframe is Timeframe.M1
    assert report.features == len(feature_set_for(settings).columns)
    assert report.observation_entries == report.features + 3
    assert len(report.cuts) == 2
    assert all(c.feature_rows > 0 and c.observation_rows == c.feature_rows for c in report.cuts)
    assert all(RANGE.start <= c.cut < RANGE.end for c in report.cuts)


def test_a_feature_that_peeks_at_the_next_bar_is_reported_with_its_column_and_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(tmp_path, _quick(Timeframe.M5, Timeframe.H1))
    market = _stored(settings, BTC, Timeframe.M1, RANGE)
    _peek_next_close(monkeypatch)
    report = check_lookahead(settings, [BTC], RANGE, cuts=3, market_data=market)
    assert len(report.cuts) == 3
    by_cut = {
        c.cut: {(f.kind, f.change.column) for f in report.findings if f.change.cut == c.cut}
        for c in report.cuts
    }
    for cut, found in by_cut.items():
        assert {("feature", "rsi_5__5m"), ("observation", "obs:rsi_5__5m")} <= found, cut
        assert {column for _, column in found} <= {
            "rsi_5__5m",
            "rsi_5__1h",
            "obs:rsi_5__5m",
            "obs:rsi_5__1h",
        }
    base = [f.change for f in report.findings if f.change.column == "rsi_5__5m"]
    # the row at the cut reads the first bar after it, and no earlier row does
    assert all((c.first, c.at, c.rows) == (c.cut, c.cut, 1) and c.largest > 0 for c in base)


def test_a_market_that_closes_is_checked_on_its_calendar(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(
        tmp_path,
        _quick(Timeframe.H1, Timeframe.H4),
        markets={"symbols": {"EURUSD": {"calendar": "fx"}}},
    )
    fx = FxCalendar()
    rng = TimeRange.parse("2024-06-10", "2024-06-24")  # two FX weeks and a weekend
    market = InMemoryMarketData()
    start = read_start(feature_set_for(settings), fx, rng.start)
    market.upsert_bars(
        EURUSD, Timeframe.H1, calendar_bars(EURUSD, fx, Timeframe.H1, start, rng.end)
    )
    report = check_lookahead(settings, [EURUSD], rng, cuts=4, market_data=market)
    assert report.data_timeframe is Timeframe.H1
    assert report.findings == [] and len(report.cuts) == 4
    assert all(c.cut.weekday() != 5 for c in report.cuts)  # a bar's close, never a Saturday
    assert all(c.feature_rows > 0 and c.observation_rows > 0 for c in report.cuts)
    _peek_next_close(monkeypatch)
    leaky = check_lookahead(settings, [EURUSD], rng, cuts=4, market_data=market)
    at_cut = {(f.change.cut, f.change.at) for f in leaky.findings if f.change.column == "rsi_5__1h"}
    assert at_cut == {(c.cut, c.cut) for c in leaky.cuts}


def test_no_stored_bars_is_one_message(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    with pytest.raises(NoBarsError, match=r"BTCUSDT: no 1m bars stored in .*drl-trading ingest"):
        check_lookahead(settings, [BTC], RANGE, market_data=InMemoryMarketData())


def test_the_command_lists_the_leak_and_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from drl_trading.app import lookahead as workflow
    from drl_trading.cli.commands import app

    spec = _quick(Timeframe.M5)
    settings = _settings(tmp_path, spec)
    market = _stored(settings, BTC, Timeframe.M1, RANGE)
    monkeypatch.setattr(workflow, "build_market_data", lambda *_a, **_k: market)
    _peek_next_close(monkeypatch)
    config = tmp_path / "c.yaml"
    config.write_text(
        "preprocess:\n  feature_set: " + spec.model_dump_json() + "\n", encoding="utf-8"
    )
    args = ["--home", str(tmp_path / "home"), "--config", str(config), "check", "lookahead"]
    args += ["-s", "BTCUSDT", "--start", "2024-01-02", "--end", "2024-01-04", "--cuts", "2"]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "400"})
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert "rsi_5__5m" in text and "obs:rsi_5__5m" in text
    assert "look-ahead: 2 column(s) changed at or before 2 of 2 cuts" in text
