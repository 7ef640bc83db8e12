"""The file source on files as users have them: what pandas writes (the time as an unnamed
index column, offsets in ISO timestamps), the file's own range as the default range of `ingest`
and `quickstart`, and the message when a requested range misses the file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

from drl_trading.app.offline_workflow import (
    OfflineWorkflow,
    SourceError,
    WorkflowError,
    history_range,
)
from drl_trading.app.settings import AppSettings, load_settings
from drl_trading.common.domain import Symbol, Timeframe, TimeRange
from drl_trading.ingest.adapter.file_provider import FileProvider, NoBarsInRangeError
from drl_trading.ingest.core.service import TrainingDataRequest

SYM = Symbol("TESTUSDT")
T0 = datetime(2024, 5, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
EVERYTHING = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


def frame(n: int, t0: datetime = T0, tz: str | None = "Europe/Berlin") -> pd.DataFrame:
    """``n`` 1m bars from ``t0`` (UTC) indexed by their open time, shown in ``tz`` (None:
    naive UTC), the way a user's pandas code holds them."""
    index = pd.date_range(t0, periods=n, freq="1min")
    index = index.tz_convert(tz) if tz is not None else index.tz_localize(None)
    close = 100.0 + np.arange(n, dtype=np.float64)
    return pd.DataFrame(
        {"open": close - 0.5, "high": close + 1, "low": close - 1, "close": close, "volume": 5.0},
        index=index,
    )


def opens(path: Path) -> list[datetime]:
    bars = FileProvider(path).read(SYM, *EVERYTHING)
    assert bars["close"].to_list() == [100.0 + i for i in range(bars.height)]
    return list(bars["open_time"])


def expected(n: int, t0: datetime = T0) -> list[datetime]:
    return [t0 + i * MINUTE for i in range(n)]


# -- the time column ---------------------------------------------------------------------------


def test_pandas_default_to_csv_has_its_time_in_the_unnamed_first_column(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    frame(5).to_csv(path)
    assert path.read_text().splitlines()[:2] == [
        ",open,high,low,close,volume",
        "2024-05-01 02:00:00+02:00,99.5,101.0,99.0,100.0,5.0",
    ]
    assert opens(path) == expected(5)  # +02:00 converted to UTC


def test_a_re_read_pandas_csv_names_its_time_column_unnamed_0(tmp_path: Path) -> None:
    first, again, twice = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    frame(4).to_csv(first)
    pd.read_csv(first).to_csv(again, index=False)  # header "Unnamed: 0,open,..."
    pd.read_csv(first).to_csv(twice)  # a row counter first, then "Unnamed: 0"
    assert again.read_text().startswith("Unnamed: 0,open")
    assert twice.read_text().splitlines()[1].startswith("0,2024-05-01 02:00:00+02:00")
    assert opens(again) == expected(4)
    assert opens(twice) == expected(4)  # the counter 0, 1, 2 ... is no timestamp


@pytest.mark.parametrize("label", ["timestamp", "Date", "Datetime", "time", "open_time"])
def test_a_named_index_is_the_time_column(tmp_path: Path, label: str) -> None:
    path = tmp_path / "bars.csv"
    frame(3).rename_axis(label).to_csv(path)
    assert opens(path) == expected(3)


def test_pandas_parquet_index_and_reset_index_are_the_time_column(tmp_path: Path) -> None:
    indexed, reset = tmp_path / "a.parquet", tmp_path / "b.parquet"
    frame(3).to_parquet(indexed)  # the index is column __index_level_0__
    frame(3).reset_index().to_parquet(reset)  # the index is column "index"
    assert "__index_level_0__" in pl.read_parquet_schema(indexed)
    assert opens(indexed) == expected(3)
    assert opens(reset) == expected(3)


def test_epoch_numbers_in_the_unnamed_column_are_read_by_magnitude(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    ms = [int(t.timestamp() * 1000) for t in expected(3)]
    path.write_text(
        ",open,high,low,close,volume\n"
        + "".join(f"{m},99.5,101,99,{100 + i},5\n" for i, m in enumerate(ms))
    )
    assert opens(path) == expected(3)


def test_a_named_time_column_wins_over_the_unnamed_index(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    frame(3).reset_index(drop=True).assign(
        timestamp=[t.isoformat() for t in expected(3, T0 + timedelta(days=1))]
    ).to_csv(path)  # "" holds 0, 1, 2; "timestamp" the times
    assert opens(path) == expected(3, T0 + timedelta(days=1))


def test_an_unnamed_row_counter_without_a_time_column_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    frame(3).reset_index(drop=True).to_csv(path)
    with pytest.raises(ValueError, match="no column for open_time") as err:
        FileProvider(path).read(SYM, *EVERYTHING)
    message = str(err.value)
    assert str(path) in message
    assert "(column 1 (unnamed) holds '0', not a timestamp)" in message
    assert "pandas' unnamed index column holding timestamps" in message


def test_an_unreadable_timestamp_names_the_unnamed_column(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text(
        ",open,high,low,close,volume\n"
        "2024-05-01 00:00:00,1,2,0.5,1.5,5\n"
        "2024-05-01 00:0x:00,1,2,0.5,1.5,5\n"
    )
    with pytest.raises(ValueError, match=r"'2024-05-01 00:0x:00' in data row 2 \(line 3\), "):
        FileProvider(path).read(SYM, *EVERYTHING)
    with pytest.raises(ValueError, match=r"column 1 \(unnamed\) \(open_time\)"):
        FileProvider(path).read(SYM, *EVERYTHING)


# -- time zones --------------------------------------------------------------------------------


def test_each_offset_is_converted_to_utc_across_a_dst_change(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    # Berlin leaves +01:00 for +02:00 at 2024-03-31 01:00 UTC
    frame(4, datetime(2024, 3, 31, 0, 58, tzinfo=UTC)).to_csv(path)
    lines = path.read_text().splitlines()
    assert lines[2].startswith("2024-03-31 01:59:00+01:00")
    assert lines[3].startswith("2024-03-31 03:00:00+02:00")
    assert opens(path) == expected(4, datetime(2024, 3, 31, 0, 58, tzinfo=UTC))


def test_z_and_offsets_are_utc_and_naive_timestamps_are_taken_as_utc(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text(
        "timestamp,open,high,low,close,volume\n"
        "2024-05-01T00:00:00Z,99.5,101,99,100,5\n"
        "2024-05-01T05:31:00+05:30,99.5,101,99,101,5\n"
        "2024-04-30 20:02:00-04:00,99.5,101,99,102,5\n"
        "2024-05-01 00:03:00,99.5,101,99,103,5\n"
    )
    assert opens(path) == expected(4)
    naive = tmp_path / "naive.csv"
    frame(3, tz=None).to_csv(naive)
    assert naive.read_text().splitlines()[1].startswith("2024-05-01 00:00:00,")
    assert opens(naive) == expected(3)


# -- the file's range --------------------------------------------------------------------------


def test_the_span_is_first_bar_to_last_bar_plus_one_in_any_row_order(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    frame(10).iloc[[3, 0, 9, 5]].to_csv(path)
    assert FileProvider(path).span(SYM) == TimeRange(T0, T0 + 10 * MINUTE)


def test_a_file_of_a_header_only_has_no_span(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    frame(0).to_csv(path)
    with pytest.raises(ValueError, match="the file holds no bars"):
        FileProvider(path).span(SYM)


def test_a_changed_file_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    provider = FileProvider(path)
    frame(10).to_csv(path)
    assert provider.span(SYM).end == T0 + 10 * MINUTE
    frame(20).to_csv(path)
    assert provider.span(SYM).end == T0 + 20 * MINUTE
    assert provider.read(SYM, *EVERYTHING).height == 20


def test_a_range_without_the_files_bars_names_the_files_range(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    frame(24 * 60).to_csv(path)
    provider = FileProvider(path)
    start, end = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC)
    with pytest.raises(NoBarsInRangeError) as err:
        provider.check_range(SYM, start, end)
    assert str(err.value) == (
        f"{path}: no TESTUSDT bars in the requested range 2024-01-01 00:00..2024-03-01 00:00 "
        "UTC; the file holds 2024-05-01 00:00..2024-05-02 00:00 UTC: ask for a range inside it "
        "(--start 2024-05-01T00:00 --end 2024-05-02T00:00), or leave --start/--end out to use "
        "the file's range"
    )
    assert err.value.held == TimeRange(T0, T0 + timedelta(days=1))
    assert (
        list(provider.fetch(SYM, Timeframe.M1, start, end)) == []
    )  # fetch itself, like every provider
    provider.check_range(SYM, T0 - timedelta(days=1), T0 + MINUTE)  # one bar is enough
    provider.check_range(SYM, start, start)  # an empty range asks for nothing


# -- the command's range -----------------------------------------------------------------------


@pytest.fixture
def settings(tmp_path: Path) -> AppSettings:
    return load_settings(
        home=tmp_path / "home", market_data={"kind": "memory"}, feature_store={"kind": "memory"}
    )


def test_without_start_and_end_a_file_gives_its_own_range(
    settings: AppSettings, tmp_path: Path
) -> None:
    path = tmp_path / "bars.csv"
    frame(2 * 24 * 60).to_csv(path)
    chosen = history_range(settings, "file", path, [SYM], None, None)
    assert chosen.range == TimeRange(T0, T0 + timedelta(days=2))
    assert chosen.note == "using the file's range 2024-05-01 00:00..2024-05-03 00:00 UTC"
    only_start = history_range(settings, "file", path, [SYM], "2024-05-02", None)
    assert only_start.range == TimeRange(T0 + timedelta(days=1), T0 + timedelta(days=2))
    assert only_start.note == "using the file's end 2024-05-03 00:00 UTC"
    only_end = history_range(settings, "file", path, [SYM], None, "2024-05-01T12:00")
    assert only_end.range == TimeRange(T0, T0 + timedelta(hours=12))
    assert only_end.note == "using the file's start 2024-05-01 00:00 UTC"
    given = history_range(settings, "file", path, [SYM], "2024-01-01", "2024-02-01")
    assert (given.range, given.note) == (TimeRange.parse("2024-01-01", "2024-02-01"), None)


def test_the_range_of_several_files_spans_them_all(settings: AppSettings, tmp_path: Path) -> None:
    other = Symbol("OTHERUSDT")
    frame(60).to_csv(tmp_path / f"{SYM.file_stem}.csv")
    frame(60, T0 + timedelta(hours=5)).to_csv(tmp_path / f"{other.file_stem}.csv")
    chosen = history_range(settings, "file", tmp_path / "{symbol}.csv", [SYM, other], None, None)
    assert chosen.range == TimeRange(T0, T0 + timedelta(hours=6))


def test_a_bound_past_the_file_and_other_sources_without_bounds_are_usage_errors(
    settings: AppSettings, tmp_path: Path
) -> None:
    path = tmp_path / "bars.csv"
    frame(60).to_csv(path)
    with pytest.raises(SourceError, match=r"^--start 2024-06-01 leaves nothing of the file's "):
        history_range(settings, "file", path, [SYM], "2024-06-01", None)
    with pytest.raises(SourceError, match=r"^--start and --end are needed for --source synth"):
        history_range(settings, "synthetic", None, [SYM], None, None)
    with pytest.raises(SourceError, match=r"^--end is needed for --source ccxt"):
        history_range(settings, "ccxt", None, [SYM], "2024-01-01", None)
    with pytest.raises(SourceError, match=r"--source file needs --path"):
        history_range(settings, "file", None, [SYM], None, None)
    with pytest.raises(SourceError, match=r"bar file for TESTUSDT not found: .*nope\.csv"):
        history_range(settings, "file", tmp_path / "nope.csv", [SYM], None, None)
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,open,high,low,close,volume\nsoon,1,2,0.5,1.5,5\n")
    with pytest.raises(WorkflowError, match=r"cannot read the timestamp 'soon' in data row 1"):
        history_range(settings, "file", bad, [SYM], None, None)


def test_ingesting_a_range_the_file_misses_is_a_usage_error_naming_its_range(
    settings: AppSettings, tmp_path: Path
) -> None:
    path = tmp_path / "bars.csv"
    frame(60).to_csv(path)
    request = TrainingDataRequest((SYM,), TimeRange.parse("2024-01-01", "2024-03-01"))
    with OfflineWorkflow.open(settings) as workflow:
        with pytest.raises(SourceError, match=r"the file holds 2024-05-01 00:00..2024-05-01 01:00"):
            workflow.ingest("file", path, request, request_preprocessing=True)
        assert workflow.runtime.market_data.coverages(Timeframe.M1) == {}  # nothing stored
        own = history_range(settings, "file", path, [SYM], None, None).range
        report = workflow.ingest(
            "file", path, TrainingDataRequest((SYM,), own), request_preprocessing=False
        )
    assert report.symbols[0].stored_rows == 60
    assert report.symbols[0].gaps == []
