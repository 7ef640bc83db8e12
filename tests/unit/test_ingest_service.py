"""The ingest workflow against fakes: policies, nothing lost, idempotency, the published event."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import polars as pl
import pytest

from drl_trading.common.adapter.always_open_calendar import AlwaysOpenCalendar
from drl_trading.common.adapter.exchange_calendars_calendar import ExchangeCalendarsCalendar
from drl_trading.common.adapter.fx_calendar import FxCalendar
from drl_trading.common.adapter.memory_bus import InMemoryBus
from drl_trading.common.adapter.memory_market_data import InMemoryMarketData
from drl_trading.common.bar_windows import bar_slots
from drl_trading.common.calendar import CalendarBook, MarketCalendar
from drl_trading.common.domain import Symbol, Timeframe, TimeRange, parse_time
from drl_trading.common.events import PreprocessDataRequested, ProcessingMode, Topic
from drl_trading.ingest.adapter.memory_provider import InMemoryProvider
from drl_trading.ingest.adapter.synthetic_provider import SyntheticProvider
from drl_trading.ingest.core.ports import HistoricalDataProvider
from drl_trading.ingest.core.service import (
    BatchRejectedError,
    FinerBarsStoredError,
    IngestService,
    SymbolIngestReport,
    TrainingDataRequest,
)
from drl_trading.ingest.core.spacing import SpacingMismatchError
from drl_trading.ingest.core.validation import Rule, ValidationPolicy
from tests.conftest import make_bars

S = Symbol("BTCUSDT")
RANGE = TimeRange.parse("2024-01-01", "2024-01-01T02:00")
DAY = timedelta(days=1)


def _bad_bars() -> pl.DataFrame:
    bars = make_bars("2024-01-01", 120)
    vol = bars["volume"].to_list()
    vol[70] = -3.0
    return bars.with_columns(pl.Series("volume", vol))


def _service(
    bars: pl.DataFrame, policy: ValidationPolicy
) -> tuple[IngestService, InMemoryMarketData, InMemoryBus]:
    """Ingest over the in-memory provider serving ``bars`` in chunks of 60, bad rows included."""
    repo, bus = InMemoryMarketData(), InMemoryBus()
    provider = InMemoryProvider({S: bars}, chunk_rows=60)
    return IngestService(provider, repo, bus, policy=policy), repo, bus


def test_reject_policy_names_rule_row_and_what_was_stored() -> None:
    service, repo, bus = _service(_bad_bars(), ValidationPolicy.REJECT)
    with pytest.raises(BatchRejectedError) as info:
        service.ingest_history(TrainingDataRequest((S,), RANGE))
    message = str(info.value)
    assert "rule negative_volume: data row 71 " in message  # 1-based over the fetched rows
    assert "2024-01-01T01:10:00+00:00" in message
    assert "bars before 2024-01-01T01:00:00+00:00 were valid and are stored" in message
    cov = repo.coverage(S, Timeframe.M1)
    assert cov is not None
    assert cov.bars == 60  # the first, valid chunk; nothing of the rejected one
    assert bus.messages(Topic.PREPROCESS_REQUESTED) == []


def test_quarantine_policy_stores_good_rows_and_keeps_bad_ones() -> None:
    service, repo, _ = _service(_bad_bars(), ValidationPolicy.QUARANTINE)
    report = service.ingest_history(TrainingDataRequest((S,), RANGE))
    sym = report.symbols[0]
    assert sym.fetched_rows == 120
    assert sym.stored_rows == 119
    assert sym.quarantined_rows == 1
    assert sym.violation_counts == {Rule.NEGATIVE_VOLUME: 1}
    q = repo.read_quarantine(S)
    assert q.height == 1
    assert q["rule"][0] == "negative_volume"
    assert q["detail"][0] == "negative_volume (data row 71)"
    assert [v.row for v in sym.examples] == [71]
    assert not sym.nothing_stored
    assert q["volume"][0] == -3.0
    # nothing lost: stored + quarantined == fetched
    assert repo.coverage(S, Timeframe.M1).bars + q.height == 120  # type: ignore[union-attr]
    # the quarantined minute is reported as a gap
    assert [(g.start, g.missing_bars) for g in sym.gaps] == [(parse_time("2024-01-01T01:10"), 1)]


def test_ingest_publishes_preprocess_request_with_correlation_id() -> None:
    repo, bus = InMemoryMarketData(), InMemoryBus()
    service = IngestService(SyntheticProvider(), repo, bus)
    request = TrainingDataRequest((S, Symbol("ETHUSDT")), RANGE)
    report = service.ingest_history(request)
    (event,) = bus.messages(Topic.PREPROCESS_REQUESTED)
    assert isinstance(event, PreprocessDataRequested)
    assert event.correlation_id == request.request_id
    assert event.mode is ProcessingMode.OFFLINE
    assert event.symbols == [S, Symbol("ETHUSDT")]
    assert (event.start, event.end) == (RANGE.start, RANGE.end)
    assert report.preprocess_event_id == event.event_id
    assert report.stored_rows == 240


def _counts(rep: SymbolIngestReport) -> tuple[int, int, int, int]:
    """Stored, new, updated, unchanged."""
    return rep.stored_rows, rep.inserted_rows, rep.updated_rows, rep.unchanged_rows


def test_ingesting_the_same_range_twice_is_idempotent() -> None:
    repo, bus = InMemoryMarketData(), InMemoryBus()
    service = IngestService(SyntheticProvider(), repo, bus)
    first = service.ingest_history(TrainingDataRequest((S,), RANGE))
    before = repo.read_bars(S, Timeframe.M1, RANGE.start, RANGE.end)
    second = service.ingest_history(TrainingDataRequest((S,), RANGE))
    after = repo.read_bars(S, Timeframe.M1, RANGE.start, RANGE.end)
    assert _counts(first.symbols[0]) == (120, 120, 0, 0)
    assert _counts(second.symbols[0]) == (120, 0, 0, 120)  # nothing changed: not new, not updated
    assert after.equals(before)


def test_a_changed_source_row_is_reported_as_updated() -> None:
    bars = make_bars("2024-01-01", 120)
    service, repo, _ = _service(bars, ValidationPolicy.REJECT)
    service.ingest_history(TrainingDataRequest((S,), RANGE), request_preprocessing=False)
    revised = bars.with_columns(
        pl.when(pl.int_range(pl.len()) == 90)
        .then(pl.col("close") + 0.01)
        .otherwise(pl.col("close"))
        .alias("close")
    )
    provider = InMemoryProvider({S: revised}, chunk_rows=60)
    again = IngestService(provider, repo, InMemoryBus()).ingest_history(
        TrainingDataRequest((S,), RANGE), request_preprocessing=False
    )
    assert _counts(again.symbols[0]) == (120, 0, 1, 119)


def test_every_row_quarantined_is_reported_as_nothing_stored() -> None:
    bars = make_bars("2024-01-01", 120).with_columns(pl.col("open_time") + timedelta(seconds=30))
    service, repo, bus = _service(bars, ValidationPolicy.QUARANTINE)
    report = service.ingest_history(TrainingDataRequest((S,), RANGE), request_preprocessing=False)
    sym = report.symbols[0]
    assert (sym.fetched_rows, sym.quarantined_rows, sym.stored_rows) == (120, 120, 0)
    assert sym.nothing_stored
    assert report.nothing_stored == [sym]
    assert sym.violations() == "off_grid=120"
    assert repo.coverage(S, Timeframe.M1) is None
    event = service.request_preprocessing(TrainingDataRequest((S,), RANGE, request_id="r-1"))
    assert bus.messages(Topic.PREPROCESS_REQUESTED) == [event]
    assert event.correlation_id == "r-1"


def test_no_data_is_reported_as_one_gap() -> None:
    service, _, _ = _service(make_bars("2024-01-01", 0), ValidationPolicy.REJECT)
    report = service.ingest_history(TrainingDataRequest((S,), RANGE), request_preprocessing=False)
    assert report.symbols[0].missing_bars == 120


# --- timeframes, market calendars and the spacing check -------------------------------------

EURUSD = Symbol("EURUSD")
FX_WEEKS = TimeRange.parse("2024-03-04", "2024-03-18")  # Monday to Monday: two FX weekends


def _calendar_service(
    provider: HistoricalDataProvider,
    calendar: MarketCalendar,
    policy: ValidationPolicy = ValidationPolicy.REJECT,
) -> tuple[IngestService, InMemoryMarketData]:
    repo = InMemoryMarketData()
    book = CalendarBook(AlwaysOpenCalendar(), {EURUSD: calendar})
    return IngestService(provider, repo, InMemoryBus(), policy=policy, calendars=book), repo


def _fx_hours() -> pl.DataFrame:
    """The FX market's 1h bars of `FX_WEEKS` (synthetic, 24/7 minutes kept where FX is open)."""
    fx = SyntheticProvider(seed=4, chunk_days=3, calendars=CalendarBook(FxCalendar()))
    return pl.concat(list(fx.fetch(EURUSD, Timeframe.H1, FX_WEEKS.start, FX_WEEKS.end)))


def test_an_fx_weekend_is_no_gap_and_a_removed_session_is_one() -> None:
    bars = _fx_hours()
    slots = bar_slots(FxCalendar(), Timeframe.H1, FX_WEEKS.start, FX_WEEKS.end)
    assert bars["open_time"].dt.epoch("us").to_list() == slots.tolist()
    request = TrainingDataRequest((EURUSD,), FX_WEEKS, timeframe=Timeframe.H1)
    service, repo = _calendar_service(InMemoryProvider({EURUSD: bars}), FxCalendar())
    rep = service.ingest_history(request, request_preprocessing=False).symbols[0]
    assert (rep.stored_rows, rep.gaps) == (slots.size, [])
    assert repo.read_bars(EURUSD, Timeframe.H1, FX_WEEKS.start, FX_WEEKS.end).height == slots.size
    # on a 24/7 clock the same bars report both weekends as missing hours
    on_24_7 = IngestService(InMemoryProvider({EURUSD: bars}), InMemoryMarketData(), InMemoryBus())
    weekend = on_24_7.ingest_history(request, request_preprocessing=False).symbols[0]
    assert len(weekend.gaps) == 2 and weekend.missing_bars == 14 * 24 - slots.size

    wednesday = parse_time("2024-03-12T21:00")  # the FX session of Wednesday 13 March (EDT)
    session = (pl.col("open_time") >= wednesday) & (pl.col("open_time") < wednesday + DAY)
    holed = _calendar_service(InMemoryProvider({EURUSD: bars.filter(~session)}), FxCalendar())[0]
    rep = holed.ingest_history(request, request_preprocessing=False).symbols[0]
    assert [(g.start, g.end, g.missing_bars) for g in rep.gaps] == [
        (wednesday, wednesday + DAY, 24)
    ]


def test_an_exchange_holiday_is_no_gap() -> None:
    xnys = ExchangeCalendarsCalendar("XNYS")
    rng = TimeRange.parse("2024-07-01", "2024-07-09")  # Independence Day, Thursday 4 July
    book = CalendarBook(AlwaysOpenCalendar(), {EURUSD: xnys})
    daily = pl.concat(
        list(
            SyntheticProvider(seed=4, calendars=book).fetch(
                EURUSD, Timeframe.D1, rng.start, rng.end
            )
        )
    )
    days = [t.day for t in daily["open_time"].to_list()]
    assert days == [1, 2, 3, 5, 8]  # sessions only: no 4 July, no weekend
    request = TrainingDataRequest((EURUSD,), rng, timeframe=Timeframe.D1)
    service, _ = _calendar_service(InMemoryProvider({EURUSD: daily}), xnys)
    rep = service.ingest_history(request, request_preprocessing=False).symbols[0]
    assert (rep.stored_rows, rep.gaps) == (5, [])


def test_out_of_session_rows_are_quarantined_or_rejected_by_policy() -> None:
    bars = _fx_hours()
    saturday = make_bars("2024-03-09T12:00", 2, step_minutes=60)  # the market is closed
    mixed = pl.concat([bars.filter(pl.col("open_time") < saturday["open_time"][0]), saturday,
                       bars.filter(pl.col("open_time") > saturday["open_time"][0])])  # fmt: skip
    request = TrainingDataRequest((EURUSD,), FX_WEEKS, timeframe=Timeframe.H1)
    provider = InMemoryProvider({EURUSD: mixed})
    service, repo = _calendar_service(provider, FxCalendar(), ValidationPolicy.QUARANTINE)
    rep = service.ingest_history(request, request_preprocessing=False).symbols[0]
    assert rep.violation_counts == {Rule.MARKET_CLOSED: 2}
    assert (rep.quarantined_rows, rep.stored_rows, rep.gaps) == (2, bars.height, [])
    q = repo.read_quarantine(EURUSD)
    assert q["rule"].to_list() == ["market_closed"] * 2 and set(q["timeframe"]) == {"1h"}

    service, repo = _calendar_service(provider, FxCalendar(), ValidationPolicy.REJECT)
    with pytest.raises(BatchRejectedError, match="rule market_closed: data row"):
        service.ingest_history(request, request_preprocessing=False)


def test_hourly_bars_declared_1m_are_refused_with_their_spacing_and_nothing_stored() -> None:
    hourly = make_bars("2024-01-01", 48, step_minutes=60)
    service, repo, bus = _service(hourly, ValidationPolicy.QUARANTINE)
    rng = TimeRange.parse("2024-01-01", "2024-01-03")
    with pytest.raises(SpacingMismatchError) as info:
        service.ingest_history(TrainingDataRequest((S,), rng))
    assert str(info.value).startswith(
        "BTCUSDT: the bars from source memory are 1h apart (47 of 47 steps), not 1m as declared"
    )
    assert info.value.exit_code == 2
    assert repo.coverage(S, Timeframe.M1) is None and repo.coverage(S, Timeframe.H1) is None
    assert bus.messages(Topic.PREPROCESS_REQUESTED) == []
    # declared as what they are, the same bars are stored under 1h, with no gap
    request = TrainingDataRequest((S,), rng, timeframe=Timeframe.H1)
    rep = service.ingest_history(request, request_preprocessing=False).symbols[0]
    assert (rep.stored_rows, rep.gaps) == (48, [])
    assert repo.read_bars(S, Timeframe.H1, rng.start, rng.end).height == 48


def test_illiquid_1m_bars_with_holes_pass_the_spacing_check() -> None:
    bars = make_bars("2024-01-01", 600)
    traded = bars.filter(pl.Series(np.arange(600) % 5 % 2 == 0))  # steps 2m, 2m, 1m, 2m, ...
    steps = traded["open_time"].diff().drop_nulls()
    assert steps.mode().item() == timedelta(minutes=2)
    service, _, _ = _service(traded, ValidationPolicy.REJECT)
    request = TrainingDataRequest((S,), TimeRange.parse("2024-01-01", "2024-01-01T10:00"))
    rep = service.ingest_history(request, request_preprocessing=False).symbols[0]
    assert rep.stored_rows == traded.height
    assert rep.missing_bars == 600 - traded.height


def test_hourly_bars_are_stored_and_preprocessing_is_asked_for_1h() -> None:
    hourly = make_bars("2024-01-01", 48, step_minutes=60)
    service, repo, bus = _service(hourly, ValidationPolicy.REJECT)
    request = TrainingDataRequest(
        (S,), TimeRange.parse("2024-01-01", "2024-01-03"), timeframe=Timeframe.H1
    )
    rep = service.ingest_history(request)
    assert rep.symbols[0].stored_rows == 48 and rep.symbols[0].missing_bars == 0
    assert repo.coverage(S, Timeframe.H1) is not None
    (msg,) = bus.messages(Topic.PREPROCESS_REQUESTED)
    assert isinstance(msg, PreprocessDataRequested) and msg.timeframe == Timeframe.H1


def test_ingesting_over_finer_stored_bars_is_refused_before_any_fetch() -> None:
    hourly = make_bars("2024-01-01", 48, step_minutes=60)
    service, repo, bus = _service(hourly, ValidationPolicy.REJECT)
    repo.upsert_bars(S, Timeframe.M1, make_bars("2024-01-02", 30))
    request = TrainingDataRequest(
        (S,), TimeRange.parse("2024-01-01", "2024-01-03"), timeframe=Timeframe.H1
    )
    with pytest.raises(FinerBarsStoredError, match="1m bars are stored over the requested range"):
        service.ingest_history(request)
    assert repo.coverage(S, Timeframe.H1) is None
    assert bus.messages(Topic.PREPROCESS_REQUESTED) == []
