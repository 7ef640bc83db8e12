"""FileProvider: CSV/Parquet/Binance layouts, timestamp units, filtering, chunking, errors, and
row numbers that validation shares."""

from __future__ import annotations

import gzip
import math
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from drl_trading.common.adapter.memory_bus import InMemoryBus
from drl_trading.common.adapter.memory_market_data import InMemoryMarketData
from drl_trading.common.bars import BAR_SCHEMA
from drl_trading.common.domain import Symbol, Timeframe, TimeRange, to_micros
from drl_trading.ingest.adapter.file_provider import FileProvider
from drl_trading.ingest.core.ports import SOURCE_ROW, HistoricalDataProvider, RowNumberedProvider
from drl_trading.ingest.core.service import BatchRejectedError, IngestService, TrainingDataRequest
from drl_trading.ingest.core.validation import ValidationPolicy

BTC = Symbol("BTCUSDT")
T0 = datetime(2024, 1, 1, tzinfo=UTC)
START = datetime(2000, 1, 1, tzinfo=UTC)
END = datetime(2100, 1, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def _times(n: int, t0: datetime = T0) -> list[datetime]:
    return [t0 + i * MINUTE for i in range(n)]


def _bar_values(i: int) -> tuple[float, float, float, float, float]:
    base = 100.0 + i
    return base, base + 2.0, base - 1.0, base + 0.5, 10.0 + i


def _expected(n: int, t0: datetime = T0) -> pl.DataFrame:
    rows = [(t, *_bar_values(i)) for i, t in enumerate(_times(n, t0))]
    return pl.DataFrame(rows, schema=BAR_SCHEMA, orient="row")


def _binance_lines(n: int, unit: str, t0: datetime = T0) -> list[str]:
    scale = {"ms": 1_000, "us": 1}[unit]
    lines = []
    for i, t in enumerate(_times(n, t0)):
        open_us = to_micros(t)
        close_us = open_us + 60_000_000 - 1
        o, h, lo, c, v = _bar_values(i)
        lines.append(
            f"{open_us // scale},{o:.8f},{h:.8f},{lo:.8f},{c:.8f},{v:.8f},{close_us // scale},"
            f"{v * c:.8f},{50 + i},{v / 2:.8f},{v * c / 2:.8f},0"
        )
    return lines


def _fetch_all(provider: FileProvider, symbol: Symbol = BTC) -> pl.DataFrame:
    chunks = list(provider.fetch(symbol, Timeframe.M1, START, END))
    assert all(c.schema == pl.Schema(BAR_SCHEMA) for c in chunks)
    return pl.concat(chunks) if chunks else pl.DataFrame(schema=BAR_SCHEMA)


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_satisfies_the_port() -> None:
    provider: HistoricalDataProvider = FileProvider("x.csv")
    assert provider.name == "file"


def test_generic_csv_with_header_and_iso_z_timestamps(tmp_path: Path) -> None:
    lines = ["Timestamp,Open,High,Low,Close,Volume"]
    for i, t in enumerate(_times(5)):
        o, h, lo, c, v = _bar_values(i)
        lines.append(f"{t:%Y-%m-%dT%H:%M:%S}Z,{o},{h},{lo},{c},{v}")
    path = _write(tmp_path / "bars.csv", lines)
    out = _fetch_all(FileProvider(path))
    assert out.equals(_expected(5))


def test_short_names_offsets_naive_and_plain_dates(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "bars.csv",
        [
            "date,o,h,l,c,vol",
            "2024-01-01,1,2,0.5,1.5,10",
            "2024-01-01 00:01:00,1,2,0.5,1.5,10",
            "2024-01-01T02:02:00+02:00,1,2,0.5,1.5,10",
            "2024-01-01T00:03:00.250000Z,1,2,0.5,1.5,10",
        ],
    )
    out = _fetch_all(FileProvider(path))
    assert out["open_time"].to_list() == [
        T0,
        T0 + MINUTE,
        T0 + 2 * MINUTE,
        T0 + 3 * MINUTE + timedelta(milliseconds=250),
    ]


@pytest.mark.parametrize(("unit", "scale"), [("s", 1_000_000), ("ms", 1_000), ("us", 1)])
@pytest.mark.parametrize("explicit", [False, True])
def test_numeric_timestamp_units(tmp_path: Path, unit: str, scale: int, explicit: bool) -> None:
    lines = ["open_time,open,high,low,close,volume"]
    for i, t in enumerate(_times(4)):
        o, h, lo, c, v = _bar_values(i)
        lines.append(f"{to_micros(t) // scale},{o},{h},{lo},{c},{v}")
    path = _write(tmp_path / "bars.csv", lines)
    provider = FileProvider(path, timestamp_unit=unit if explicit else "auto")  # type: ignore[arg-type]
    assert _fetch_all(provider).equals(_expected(4))


def test_headerless_six_columns_is_generic(tmp_path: Path) -> None:
    lines = []
    for i, t in enumerate(_times(3)):
        o, h, lo, c, v = _bar_values(i)
        lines.append(f"{to_micros(t) // 1000},{o},{h},{lo},{c},{v}")
    path = _write(tmp_path / "bars.csv", lines)
    assert _fetch_all(FileProvider(path, layout="generic")).equals(_expected(3))
    assert _fetch_all(FileProvider(path)).equals(_expected(3))


@pytest.mark.parametrize("unit", ["ms", "us"])
@pytest.mark.parametrize("layout", ["auto", "binance"])
def test_binance_headerless_klines(tmp_path: Path, unit: str, layout: str) -> None:
    path = _write(tmp_path / "BTCUSDT-1m-2024-01.csv", _binance_lines(6, unit))
    out = _fetch_all(FileProvider(path, layout=layout))  # type: ignore[arg-type]
    assert out.equals(_expected(6))


def test_binance_file_with_header_line(tmp_path: Path) -> None:
    header = (
        "open_time,open,high,low,close,volume,close_time,quote_volume,count,"
        "taker_buy_volume,taker_buy_quote_volume,ignore"
    )
    path = _write(tmp_path / "k.csv", [header, *_binance_lines(3, "ms")])
    assert _fetch_all(FileProvider(path, layout="binance")).equals(_expected(3))


def test_binance_mixed_ms_and_us_in_one_file(tmp_path: Path) -> None:
    lines = _binance_lines(4, "ms")[:2] + _binance_lines(4, "us")[2:]
    path = _write(tmp_path / "k.csv", lines)
    assert _fetch_all(FileProvider(path)).equals(_expected(4))


@pytest.mark.parametrize("unit", ["ms", "us"])
def test_binance_zip(tmp_path: Path, unit: str) -> None:
    path = tmp_path / "BTCUSDT-1m-2025-01.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("BTCUSDT-1m-2025-01.csv", "\n".join(_binance_lines(5, unit)) + "\n")
    assert _fetch_all(FileProvider(path)).equals(_expected(5))


def test_gzipped_csv(tmp_path: Path) -> None:
    path = tmp_path / "k.csv.gz"
    path.write_bytes(gzip.compress(("\n".join(_binance_lines(3, "ms")) + "\n").encode()))
    assert _fetch_all(FileProvider(path)).equals(_expected(3))


def test_parquet_with_datetime_and_numeric_times(tmp_path: Path) -> None:
    expected = _expected(4)
    expected.rename({"open_time": "Datetime", "volume": "V"}).write_parquet(tmp_path / "a.parquet")
    naive = expected.with_columns(pl.col("open_time").dt.replace_time_zone(None))
    naive.write_parquet(tmp_path / "b.pq")
    ms = expected.with_columns(pl.col("open_time").dt.epoch("ms").alias("ts")).drop("open_time")
    ms.write_parquet(tmp_path / "c.parquet")
    for name in ("a.parquet", "b.pq", "c.parquet"):
        assert _fetch_all(FileProvider(tmp_path / name)).equals(expected), name


def test_symbol_pattern_serves_several_symbols(tmp_path: Path) -> None:
    eth = Symbol("ETH/USDT")
    _write(tmp_path / "BTCUSDT-1m.csv", _binance_lines(3, "ms"))
    _write(tmp_path / "ETH_USDT-1m.csv", _binance_lines(5, "ms", T0 + timedelta(days=1)))
    provider = FileProvider(str(tmp_path / "{symbol}-1m.csv"))
    assert _fetch_all(provider, BTC).equals(_expected(3))
    assert _fetch_all(provider, eth).equals(_expected(5, T0 + timedelta(days=1)))


def test_missing_file_names_path_and_pattern(tmp_path: Path) -> None:
    provider = FileProvider(str(tmp_path / "{symbol}.csv"))
    with pytest.raises(FileNotFoundError) as info:
        list(provider.fetch(BTC, Timeframe.M1, START, END))
    assert str(tmp_path / "BTCUSDT.csv") in str(info.value)
    assert "{symbol}.csv" in str(info.value)


def test_range_filter_is_half_open(tmp_path: Path) -> None:
    path = _write(tmp_path / "k.csv", _binance_lines(10, "ms"))
    chunks = list(FileProvider(path).fetch(BTC, Timeframe.M1, T0 + 2 * MINUTE, T0 + 5 * MINUTE))
    out = pl.concat(chunks)
    assert out["open_time"].to_list() == [T0 + 2 * MINUTE, T0 + 3 * MINUTE, T0 + 4 * MINUTE]
    assert out.equals(_expected(10).slice(2, 3))
    assert list(FileProvider(path).fetch(BTC, Timeframe.M1, T0 - MINUTE * 9, T0)) == []


def test_chunking_preserves_everything_in_order(tmp_path: Path) -> None:
    path = _write(tmp_path / "k.csv", _binance_lines(35, "ms"))
    chunks = list(FileProvider(path, chunk_rows=10).fetch(BTC, Timeframe.M1, START, END))
    assert [c.height for c in chunks] == [10, 10, 10, 5]
    assert pl.concat(chunks).equals(_fetch_all(FileProvider(path)))
    assert pl.concat(chunks).equals(_expected(35))


def test_bad_timestamp_names_file_row_and_value(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "bars.csv",
        [
            "time,open,high,low,close,volume",
            "2024-01-01T00:00:00Z,1,2,0.5,1.5,10",
            "2024-01-01T00:01:00Z,1,2,0.5,1.5,10",
            "yesterday noon,1,2,0.5,1.5,10",
        ],
    )
    with pytest.raises(ValueError, match="timestamp") as info:
        list(FileProvider(path).fetch(BTC, Timeframe.M1, START, END))
    message = str(info.value)
    assert "bars.csv" in message
    assert "data row 3" in message
    assert "'yesterday noon'" in message


def test_explicit_unit_rejects_iso_text(tmp_path: Path) -> None:
    path = _write(tmp_path / "b.csv", ["ts,o,h,l,c,v", "2024-01-01T00:00:00Z,1,2,0.5,1.5,10"])
    with pytest.raises(ValueError, match="data row 1"):
        list(FileProvider(path, timestamp_unit="ms").fetch(BTC, Timeframe.M1, START, END))


def test_text_in_a_value_column_is_an_error(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "bars.csv",
        [
            "ts,open,high,low,close,volume",
            "1704067200,1,2,0.5,1.5,10",
            "1704067260,1,2,0.5,n/a?,10",
        ],
    )
    with pytest.raises(ValueError, match=r"data row 2.*'close'") as info:
        list(FileProvider(path).fetch(BTC, Timeframe.M1, START, END))
    assert "'n/a?'" in str(info.value)


def test_missing_column_lists_found_and_needed(tmp_path: Path) -> None:
    path = _write(tmp_path / "bars.csv", ["time,open,high,low,close", "2024-01-01,1,2,0.5,1.5"])
    with pytest.raises(ValueError, match="no column for volume") as info:
        list(FileProvider(path).fetch(BTC, Timeframe.M1, START, END))
    message = str(info.value)
    assert "['time', 'open', 'high', 'low', 'close']" in message
    assert "volume/vol/v" in message


def test_headerless_with_wrong_width_is_an_error(tmp_path: Path) -> None:
    path = _write(tmp_path / "bars.csv", ["1704067200,1,2,0.5,1.5"])
    with pytest.raises(ValueError, match="has 5"):
        list(FileProvider(path).fetch(BTC, Timeframe.M1, START, END))


def test_bad_rows_pass_through_unchanged(tmp_path: Path) -> None:
    t = [to_micros(x) // 1000 for x in _times(6)]
    path = _write(
        tmp_path / "bars.csv",
        [
            "open_time,open,high,low,close,volume",
            f"{t[0]},1,2,0.5,1.5,10",
            f"{t[2]},NaN,2,0.5,1.5,10",  # out of order (next row is earlier)
            f"{t[1]},1,2,0.5,1.5,-3",  # negative volume
            f"{t[1]},1,2,0.5,1.5,",  # duplicate time, empty volume
            f"{t[3]},nan,5,0.5,1.5,10",  # high far above: left to validation too
            f"{t[5]},1,2,0.5,1.5,10",  # gap
        ],
    )
    out = _fetch_all(FileProvider(path, chunk_rows=2))
    assert out.height == 6
    minutes = [0, 2, 1, 1, 3, 5]
    assert out["open_time"].to_list() == [T0 + m * MINUTE for m in minutes]
    assert math.isnan(out["open"][1])
    assert out["volume"][2] == -3.0
    assert math.isnan(out["volume"][3])
    assert math.isnan(out["open"][4])


def test_blank_trailing_lines_are_not_rows(tmp_path: Path) -> None:
    path = tmp_path / "k.csv"
    path.write_text("\n".join(_binance_lines(3, "ms")) + "\n\n\n")
    assert _fetch_all(FileProvider(path)).height == 3


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="chunk_rows"):
        FileProvider("x.csv", chunk_rows=0)
    with pytest.raises(ValueError, match="layout"):
        FileProvider("x.csv", layout="mt4")  # type: ignore[arg-type]


def test_numbered_fetch_gives_each_bar_its_data_row(tmp_path: Path) -> None:
    """Data row N is line N + 1 under a header; a blank line is a data row with no bar; a range
    read out of the middle keeps the file's numbers, across chunks."""
    lines = ["open_time,open,high,low,close,volume"]
    for i, t in enumerate(_times(8)):
        lines.append(f"{t:%Y-%m-%dT%H:%M:%S}Z,{','.join(map(str, _bar_values(i)))}")
    lines.insert(4, "")  # line 5, data row 4
    provider = FileProvider(_write(tmp_path / "bars.csv", lines), chunk_rows=2)
    chunks = list(provider.fetch_numbered(BTC, Timeframe.M1, T0 + 2 * MINUTE, END))
    assert [c.height for c in chunks] == [2, 2, 2]
    got = pl.concat(chunks)
    assert got[SOURCE_ROW].to_list() == [3, 5, 6, 7, 8, 9]
    assert got.drop(SOURCE_ROW).equals(
        pl.concat(list(provider.fetch(BTC, Timeframe.M1, T0 + 2 * MINUTE, END)))
    )
    assert isinstance(provider, RowNumberedProvider)

    parquet = tmp_path / "bars.parquet"
    _expected(4).write_parquet(parquet)
    rows = pl.concat(
        list(FileProvider(parquet).fetch_numbered(BTC, Timeframe.M1, T0 + MINUTE, END))
    )
    assert rows[SOURCE_ROW].to_list() == [2, 3, 4]


def _lines_with_row_101(volume: str) -> list[str]:
    """A CSV with a header and 180 bars; data row 101 (line 102) has ``volume``."""
    lines = ["open_time,open,high,low,close,volume"]
    for i, t in enumerate(_times(180)):
        lines.append(f"{t:%Y-%m-%dT%H:%M:%S}Z,100,101,99,100.5,{volume if i == 100 else 10}")
    return lines


@pytest.mark.parametrize("start", [T0, T0 + 40 * MINUTE], ids=["whole-file", "from-line-42"])
def test_the_reader_and_validation_name_a_bad_line_by_the_same_row(
    tmp_path: Path, start: datetime
) -> None:
    unreadable = _write(tmp_path / "text.csv", _lines_with_row_101("abc"))
    with pytest.raises(ValueError, match=r"'abc' as a number in data row 101 \(line 102\)"):
        list(FileProvider(unreadable).fetch(BTC, Timeframe.M1, start, END))

    invalid = FileProvider(_write(tmp_path / "neg.csv", _lines_with_row_101("-1")), chunk_rows=30)
    repo, bus = InMemoryMarketData(), InMemoryBus()
    rng = TimeRange(start, T0 + 180 * MINUTE)
    rejecting = IngestService(invalid, repo, bus, policy=ValidationPolicy.REJECT)
    with pytest.raises(BatchRejectedError, match=r"rule negative_volume: data row 101 \("):
        rejecting.ingest_history(TrainingDataRequest((BTC,), rng), request_preprocessing=False)
    quarantining = IngestService(invalid, repo, bus, policy=ValidationPolicy.QUARANTINE)
    report = quarantining.ingest_history(
        TrainingDataRequest((BTC,), rng), request_preprocessing=False
    )
    (example,) = report.symbols[0].examples
    assert example.row == 101
    assert example.describe().startswith("rule negative_volume: data row 101 (")
    assert repo.read_quarantine(BTC)["detail"].to_list() == ["negative_volume (data row 101)"]
