"""The ingest workflow against fakes: policies, nothing lost, idempotency, the published event."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest

from drl_trading.common.adapter.memory_bus import InMemoryBus
from drl_trading.common.adapter.memory_market_data import InMemoryMarketData
from drl_trading.common.domain import Symbol, Timeframe, TimeRange, parse_time
from drl_trading.common.events import PreprocessDataRequested, ProcessingMode, Topic
from drl_trading.ingest.adapter.memory_provider import InMemoryProvider
from drl_trading.ingest.adapter.synthetic_provider import SyntheticProvider
from drl_trading.ingest.core.service import (
    BatchRejectedError,
    IngestService,
    SymbolIngestReport,
    TrainingDataRequest,
)
from drl_trading.ingest.core.validation import Rule, ValidationPolicy
from tests.conftest import make_bars

S = Symbol("BTCUSDT")
RANGE = TimeRange.parse("2024-01-01", "2024-01-01T02:00")


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
