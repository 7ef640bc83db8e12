"""The synthetic market's planted edge: edge 0 is today's market bit for bit, an edge > 0 plants
the Sharpe it states, and the bars stay valid, range-consistent and on every calendar."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from drl_trading.app.ingest import build_live_source, build_provider
from drl_trading.app.settings import ConfigError, load_settings
from drl_trading.common.adapter.always_open_calendar import AlwaysOpenCalendar
from drl_trading.common.adapter.exchange_calendars_calendar import ExchangeCalendarsCalendar
from drl_trading.common.adapter.fx_calendar import FxCalendar
from drl_trading.common.adapter.memory_market_data import InMemoryMarketData
from drl_trading.common.adapter.system_clock import ManualClock
from drl_trading.common.calendar import CalendarBook, MarketCalendar
from drl_trading.common.domain import Symbol, Timeframe
from drl_trading.evaluation.statistics import sharpe_ratio
from drl_trading.ingest.adapter.synthetic_edge import (
    bars_per_day,
    oracle_returns,
    plant,
    planted_sharpe,
)
from drl_trading.ingest.adapter.synthetic_live_source import SyntheticLiveSource
from drl_trading.ingest.adapter.synthetic_provider import SyntheticProvider

BTC = Symbol("BTCUSDT")
COLUMNS = ("open", "high", "low", "close", "volume")


def d(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def calendar(name: str | None) -> CalendarBook | None:
    if name is None:
        return None
    market: MarketCalendar = FxCalendar() if name == "fx" else ExchangeCalendarsCalendar(name)
    return CalendarBook(market)


def bars(
    provider: SyntheticProvider, timeframe: Timeframe, start: datetime, end: datetime, symbol: str
) -> pl.DataFrame:
    return pl.concat(list(provider.fetch(Symbol(symbol), timeframe, start, end)))


# Fingerprints of the provider's output before the edge existed (row count, column sums, last
# bar), one per seed, symbol, timeframe, calendar and range. Compared to 1e-12 relative: any
# change to the generator shows, a last-bit difference of the platform's exp/log does not.
BEFORE_THE_EDGE = [
    (
        (7, "BTCUSDT", Timeframe.M1, None, d(2024, 3, 1), d(2024, 3, 4)),
        4320,
        [347491.7366893869, 347914.0305072441, 347062.55967916193, 347486.6897289856,
         7096781.459752683],
        [80.42428540776265, 80.44404272339696, 79.97760846534094, 80.00646391854201,
         4043.6534193665916],
    ),
    (
        (3, "ETHUSDT", Timeframe.M5, None, d(2024, 1, 1), d(2024, 1, 8)),
        2016,
        [391380298.707096, 391684572.50396323, 391085074.67189187, 391388810.8552402,
         7595191.177304128],
        [197576.12847966803, 197686.38131406013, 197436.42744290363, 197522.64051240904,
         3230.6224234347605],
    ),
    (
        (11, "EURUSD", Timeframe.H1, "fx", d(2024, 1, 5), d(2024, 1, 12)),
        120,
        [1810515811.1056223, 1818538016.7982948, 1803057551.1177218, 1810700208.2168539,
         39718105.19365271],
        [15353927.856828943, 15394693.32433553, 15210964.803180644, 15233307.1753312,
         316033.4328011299],
    ),
    (
        (11, "AAPL", Timeframe.D1, "XNYS", d(2024, 1, 1), d(2024, 2, 1)),
        21,
        [0.03442045677194962, 0.035527460160980816, 0.0331371301843751, 0.034240105640312504,
         42246448.8619871],
        [0.0014059673106620193, 0.0015651747577574622, 0.0013837319016573606,
         0.0015030803196592894, 3420408.605742072],
    ),
    (
        (11, "AAPL", Timeframe.M15, "XNYS", d(2024, 1, 2), d(2024, 1, 5)),
        78,
        [0.16909318457159175, 0.17023027758375725, 0.1675404839653032, 0.16869502785058438,
         7689129.778245676],
        [0.001892890014207604, 0.0019194004517808867, 0.001883330782077841,
         0.001908767745771316, 62915.1055850625],
    ),
    (
        (5, "BTCUSDT", Timeframe.M1, None, d(2000, 1, 1), d(2000, 1, 2, 6)),
        1800,
        [23753722.095013984, 23766058.057621744, 23741895.45577222, 23754218.579164013,
         1847254.1425065938],
        [13533.651995273616, 13536.898186206638, 13526.902919065249, 13528.151934544152,
         1027.6512586338906],
    ),
]  # fmt: skip


@pytest.mark.parametrize(("case", "rows", "sums", "last"), BEFORE_THE_EDGE)
def test_edge_zero_makes_the_bars_made_before_the_edge_existed(
    case: tuple[int, str, Timeframe, str | None, datetime, datetime],
    rows: int,
    sums: list[float],
    last: list[float],
) -> None:
    seed, symbol, timeframe, market, start, end = case
    default = bars(
        SyntheticProvider(seed=seed, calendars=calendar(market)), timeframe, start, end, symbol
    )
    assert default.height == rows
    np.testing.assert_allclose([default[c].sum() for c in COLUMNS], sums, rtol=1e-12)
    np.testing.assert_allclose([default[c][-1] for c in COLUMNS], last, rtol=1e-12)
    # edge 0 on any edge timeframe is the same provider, bit for bit
    for edge_timeframe in (Timeframe.M5, Timeframe.H4):
        zero = SyntheticProvider(
            seed=seed, calendars=calendar(market), edge=0.0, edge_timeframe=edge_timeframe
        )
        assert_frame_equal(bars(zero, timeframe, start, end, symbol), default)


def test_plant_makes_each_edge_bar_an_ar1_of_the_generator_returns() -> None:
    rng = np.random.default_rng(0)
    increments = rng.standard_normal(1440) * 1e-3
    edge, width = 0.3, 60
    planted = plant(increments, edge, Timeframe.H1)
    base = increments.reshape(-1, width).sum(axis=1)
    got = planted.reshape(-1, width).sum(axis=1)
    expected = [base[0]]
    for b in base[1:]:
        expected.append(edge * expected[-1] + math.sqrt(1 - edge**2) * b)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)
    assert plant(increments, 0.0, Timeframe.H1) is increments


@cache
def oracle_sharpes(edge: float, edge_timeframe: Timeframe) -> tuple[float, ...]:
    """The oracle rule's annualised Sharpe on 60 days of the edge timeframe's bars of each of
    four seeds (24/7), as one user's dataset would be."""
    out = []
    for seed in (1, 2, 3, 4):
        provider = SyntheticProvider(
            seed=seed, chunk_days=60, edge=edge, edge_timeframe=edge_timeframe
        )
        close = bars(provider, edge_timeframe, d(2024, 1, 1), d(2024, 3, 1), "BTCUSDT")["close"]
        returns = oracle_returns(close.to_numpy())
        out.append(sharpe_ratio(returns, 365.0 * bars_per_day(edge_timeframe)))
    return tuple(out)


@pytest.mark.parametrize(
    ("edge", "edge_timeframe"),
    [
        (0.0, Timeframe.H1),
        (0.25, Timeframe.H1),
        (0.5, Timeframe.H1),
        (0.0, Timeframe.M5),
        (0.1, Timeframe.M5),
        (0.2, Timeframe.M5),
    ],
)
def test_the_oracle_rule_realises_the_planted_sharpe(
    edge: float, edge_timeframe: Timeframe
) -> None:
    realised = oracle_sharpes(edge, edge_timeframe)
    # An annualised Sharpe over 60 days has a standard error of about sqrt(365 / 60) = 2.5;
    # the mean of 4 independent series, 1.2. Allow 4 of those plus 10 % for the stated figure's
    # own measurement (and how it varies with the sample's volatility regimes).
    standard_error = math.sqrt(365.0 / 60.0) / math.sqrt(len(realised))
    stated = planted_sharpe(edge, edge_timeframe)
    assert abs(float(np.mean(realised)) - stated) < 4 * standard_error + 0.1 * stated, (
        realised,
        stated,
    )
    if edge == 0.0:
        assert stated == 0.0
    else:
        assert stated > 8 * standard_error  # the test tells an edge from none


def test_planted_sharpe_grows_with_the_edge_and_refuses_what_cannot_be_planted() -> None:
    for tf in (
        Timeframe.M1,
        Timeframe.M5,
        Timeframe.M15,
        Timeframe.M30,
        Timeframe.H1,
        Timeframe.H4,
    ):
        values = [planted_sharpe(e, tf) for e in (0.0, 0.05, 0.1, 0.2, 0.3, 0.5)]
        assert values[0] == 0.0
        assert all(b > a for a, b in itertools.pairwise(values)), (tf, values)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        planted_sharpe(1.0)
    with pytest.raises(ValueError, match="intraday"):
        SyntheticProvider(edge=0.1, edge_timeframe=Timeframe.D1)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        SyntheticProvider(edge=-0.1)


@pytest.mark.parametrize(
    ("market", "timeframe", "start", "end"),
    [
        (None, Timeframe.M1, d(2024, 3, 1), d(2024, 3, 4)),
        (None, Timeframe.M5, d(2024, 3, 1), d(2024, 3, 4)),
        ("fx", Timeframe.H1, d(2024, 1, 5), d(2024, 1, 12)),
        ("XNYS", Timeframe.M15, d(2024, 1, 2), d(2024, 1, 6)),
        ("XNYS", Timeframe.D1, d(2024, 1, 1), d(2024, 2, 1)),
    ],
)
def test_planted_bars_are_valid_and_the_same_whatever_range_is_asked(
    market: str | None, timeframe: Timeframe, start: datetime, end: datetime
) -> None:
    def planted() -> SyntheticProvider:
        return SyntheticProvider(seed=3, chunk_days=2, calendars=calendar(market), edge=0.4)

    whole = bars(planted(), timeframe, start, end, "BTCUSDT")
    plain = bars(
        SyntheticProvider(seed=3, calendars=calendar(market)), timeframe, start, end, "BTCUSDT"
    )
    assert whole["open_time"].equals(plain["open_time"])  # the same bars exist
    assert not np.allclose(whole["close"].to_numpy(), plain["close"].to_numpy())
    o, h, lo, c, v = (whole[col].to_numpy() for col in COLUMNS)
    assert np.isfinite(np.stack([o, h, lo, c, v])).all()
    assert np.all(h >= np.maximum(o, c)) and np.all(lo <= np.minimum(o, c))
    assert np.all(lo > 0) and np.all(v > 0)
    # a range cut inside days, by a provider that has been further ahead, gives the same bars
    provider = planted()
    bars(provider, timeframe, end, end + timedelta(days=3), "BTCUSDT")
    cut_start, cut_end = start + timedelta(days=1, hours=5), end - timedelta(hours=7)
    part = bars(provider, timeframe, cut_start, cut_end, "BTCUSDT")
    time = pl.col("open_time")
    assert_frame_equal(part, whole.filter((time >= cut_start) & (time < cut_end)))


def test_planted_minutes_join_across_midnight_and_keep_their_volatility() -> None:
    start, end = d(2024, 1, 1), d(2024, 1, 21)
    planted = bars(SyntheticProvider(seed=2, edge=0.3), Timeframe.M1, start, end, "BTCUSDT")
    plain = bars(SyntheticProvider(seed=2), Timeframe.M1, start, end, "BTCUSDT")
    o, c = planted["open"].to_numpy(), planted["close"].to_numpy()
    np.testing.assert_allclose(o[1:], c[:-1], rtol=1e-12)  # each bar opens at the last close

    def hourly(frame: pl.DataFrame) -> np.ndarray:
        close = frame["close"].to_numpy()[59::60]
        return np.diff(np.log(close))

    r, r0 = hourly(planted), hourly(plain)
    assert abs(r.std() / r0.std() - 1) < 0.1  # sqrt(1 - edge²) keeps the bar volatility
    # The previous hour predicts the next: lag-1 autocorrelation about 0.8 × edge (the day's
    # bridge and the restart at midnight take the rest), 0 without the edge; the standard error
    # over 480 hours is about 0.05.
    lag1 = float(np.corrcoef(r[:-1], r[1:])[0, 1])
    assert 0.12 < lag1 < 0.36, lag1
    assert abs(float(np.corrcoef(r0[:-1], r0[1:])[0, 1])) < 0.12
    # volatility still clusters (minute |returns| autocorrelate)
    a = np.abs(np.diff(np.log(c)))
    a = a - a.mean()
    assert float(np.dot(a[:-1], a[1:]) / np.dot(a, a)) > 0.05


def test_settings_build_the_planted_provider_and_live_source(tmp_path: Path) -> None:
    settings = load_settings(
        home=tmp_path, ingest={"synthetic": {"seed": 4, "edge": 0.2, "edge_timeframe": "5m"}}
    )
    provider = build_provider(settings, "synthetic")
    assert isinstance(provider, SyntheticProvider)
    assert (provider.edge, provider.edge_timeframe) == (0.2, Timeframe.M5)
    start = d(2024, 1, 2)
    live, gap = build_live_source(
        settings,
        "synthetic-live",
        [BTC],
        InMemoryMarketData(),
        ManualClock(start),
        start,
        timeframe=Timeframe.M5,
    )
    assert isinstance(gap, SyntheticProvider) and gap.edge == 0.2
    stream = live.bars()
    streamed = [next(stream) for _ in range(30)]
    live.close()
    history = bars(provider, Timeframe.M5, start, start + timedelta(minutes=150), "BTCUSDT")
    assert [b.close for b in streamed] == history["close"].to_list()


def test_the_live_source_continues_planted_minutes() -> None:
    start = d(2024, 1, 2, 23, 50)
    source = SyntheticLiveSource(
        5, [BTC], start, calendars=CalendarBook(AlwaysOpenCalendar()), edge=0.3
    )
    stream = source.bars()
    streamed = [next(stream) for _ in range(20)]  # across midnight
    source.close()
    history = bars(
        SyntheticProvider(seed=5, edge=0.3),
        Timeframe.M1,
        start,
        start + timedelta(minutes=20),
        "BTCUSDT",
    )
    assert [b.close for b in streamed] == history["close"].to_list()


@pytest.mark.parametrize(
    ("synthetic", "key"),
    [
        ({"edge": -0.1}, "ingest.synthetic.edge"),
        ({"edge_timeframe": "1d"}, "ingest.synthetic.edge_timeframe"),
    ],
)
def test_settings_refuse_an_edge_that_cannot_be_planted(
    tmp_path: Path, synthetic: dict[str, object], key: str
) -> None:
    with pytest.raises(ConfigError, match=key):
        load_settings(home=tmp_path, ingest={"synthetic": synthetic})
