"""Historical bars from local files: CSV or Parquet exports and Binance's public kline dumps.

History often already sits on disk (a broker export, a Parquet lake, the monthly kline zip files
Binance publishes), and ingesting it should need neither network access nor an exchange adapter.
This provider only *reads*: it maps the file's columns onto `common.bars`, turns timestamps into
UTC microseconds and keeps the file's row order. It never sorts, deduplicates or drops rows, and it
never turns text into NaN: judging bad rows is ingest's job (`ingest.core.validation`), and a
provider that quietly "fixes" data hides exactly the problems validation exists to report. What it
cannot read (a timestamp it cannot parse, text in a price column) is an error naming the file, the
data row and the raw value, so the file can be fixed rather than guessed at.

A *data row* is 1-based and excludes the header: data row N is line N + 1 of a CSV with a header
(line N without one; a blank line counts as a data row that holds no bar), row N of a Parquet
file. `fetch_numbered` hands ingest the data row of every bar, so validation's reports and the
quarantine name a bad line by the same number as this provider's errors.

Numeric timestamps are read by magnitude, value by value, when the unit is ``auto``: Binance moved
its spot files from milliseconds to microseconds in 2025, so one concatenated file may hold both.
ISO timestamps with an offset (``+02:00``, ``Z``) are converted to UTC; naive ones are taken as
UTC already. Without a named time column, a column pandas wrote for its index (the unnamed first
column of ``to_csv``, ``Unnamed: 0`` once re-read, ``__index_level_0__`` or ``index`` in Parquet)
is the time column when its first value is a timestamp.

A file holds a finite range of its own: `span` gives it, so a command can default to it, and
`check_range` names it when a requested range holds none of the file's bars.
"""

from __future__ import annotations

import gzip
import io
import math
import re
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Literal

import polars as pl

from drl_trading.common.bars import VALUE_COLUMNS, conform
from drl_trading.common.domain import Symbol, Timeframe, TimeRange, from_micros, to_micros, utc
from drl_trading.ingest.core.ports import SOURCE_ROW

Layout = Literal["auto", "generic", "binance"]
TimestampUnit = Literal["auto", "s", "ms", "us", "ns", "iso"]

_LAYOUTS: tuple[Layout, ...] = ("auto", "generic", "binance")
_UNITS: tuple[TimestampUnit, ...] = ("auto", "s", "ms", "us", "ns", "iso")
_TARGETS = ("open_time", *VALUE_COLUMNS)
_ROW = "__file_row"

# Accepted header names per canonical column, in order of preference, after `_normalise`.
_ALIASES: dict[str, tuple[str, ...]] = {
    "open_time": ("open_time", "timestamp", "time", "date", "datetime", "ts"),
    "open": ("open", "o"),
    "high": ("high", "h"),
    "low": ("low", "l"),
    "close": ("close", "c"),
    "volume": ("volume", "vol", "v"),
}
_WANTED = (
    "a time column (open_time, timestamp, time, date, datetime, ts or 'open time', or pandas' "
    "unnamed index column holding timestamps), "
    "open (open/o), high (high/h), low (low/l), close (close/c) and volume (volume/vol/v), "
    "matched case-insensitively"
)
BINANCE_KLINE_COLUMNS = (
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_asset_volume",
    "number_of_trades",
    "taker_buy_base_volume",
    "taker_buy_quote_volume",
    "ignore",
)
# Names pandas gives its index column: empty (`to_csv`), "Unnamed: 0" (a re-read `to_csv`),
# "__index_level_0__" (Parquet), "index"/"level_0" (`reset_index`); lower-cased and stripped.
_INDEX_NAME = re.compile(r"^(?:|unnamed: ?\d+|__index_level_\d+__|index|level_0)$")
# A number this large is an epoch timestamp (after 2001-09-09 in seconds), not a row counter.
_EPOCH_MIN = 1e9
# Names that mark a first line as a header (the futures files say count/quote_volume/...).
_HEADER_NAMES = frozenset(
    {a for names in _ALIASES.values() for a in names}
    | set(BINANCE_KLINE_COLUMNS)
    | {"quote_volume", "count", "taker_buy_volume"}
)
_POSITIONAL_WIDTHS = {"generic": 6, "binance": len(BINANCE_KLINE_COLUMNS)}

_CSV_SUFFIXES = (".csv", ".tsv", ".txt")
_PARQUET_SUFFIXES = (".parquet", ".pq")
_SUPPORTED = ".csv, .tsv, .txt (optionally .gz), .zip holding one such file, .parquet, .pq"

_NUMBER_RE = r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$"
_NUMBER = re.compile(_NUMBER_RE)
_DATE_LIKE = re.compile(r"^\d{4}-\d{2}-\d{2}")
_MISSING = ["", "nan", "-nan", "+nan", "null", "none", "na", "n/a"]
_MIN_US = to_micros(datetime(1, 1, 1, tzinfo=UTC))
_MAX_US = to_micros(datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC))
# Magnitude bounds of the auto unit: below 1e11 seconds (until year 5138), below 1e14
# milliseconds, below 1e17 microseconds, else nanoseconds.
_AUTO_BOUNDS = ((1e11, "s"), (1e14, "ms"), (1e17, "us"))
_INT_FACTOR = {"s": 1_000_000, "ms": 1_000, "us": 1}
_FLOAT_FACTOR = {"s": 1e6, "ms": 1e3, "us": 1.0, "ns": 1e-3}
_ISO_FORMAT = "%Y-%m-%dT%H:%M:%S%.f%:z"


class NoBarsInRangeError(ValueError):
    """A requested range holds none of the bars of a file that has bars elsewhere."""

    def __init__(self, label: str, symbol: Symbol, requested: TimeRange, held: TimeRange) -> None:
        self.symbol = symbol
        self.requested = requested
        self.held = held
        super().__init__(
            f"{label}: no {symbol} bars in the requested range {requested}; the file holds "
            f"{held}: ask for a range inside it (--start {held.start:%Y-%m-%dT%H:%M} --end "
            f"{held.end:%Y-%m-%dT%H:%M}), or leave --start/--end out to use the file's range"
        )


@dataclass(frozen=True, slots=True)
class _Table:
    """The six needed columns of one file, raw, with their 1-based data row numbers."""

    frame: pl.DataFrame  # columns _ROW and _TARGETS, dtypes as read
    label: str  # the file (and zip member) for messages
    columns: dict[str, str]  # canonical column -> how messages name the file's column
    header_lines: int | None  # lines before data row 1 in a CSV; None for Parquet

    def where(self, row: int) -> str:
        line = "" if self.header_lines is None else f" (line {row + self.header_lines})"
        return f"data row {row}{line}"

    def column(self, target: str) -> str:
        return f"column {self.columns[target]} ({target})"


class FileProvider:
    """Bars of one CSV/Parquet file per symbol; ``path`` may contain ``{symbol}``.

    ``{symbol}`` is replaced by `Symbol.file_stem`, so ``data/{symbol}-1m.csv`` serves several
    symbols. ``fetch`` reads the file, keeps the rows with ``start <= open_time < end`` in file
    order and yields them in frames of at most ``chunk_rows`` rows.
    """

    name = "file"

    def __init__(
        self,
        path: str | Path,
        layout: Layout = "auto",
        timestamp_unit: TimestampUnit = "auto",
        chunk_rows: int = 200_000,
    ) -> None:
        if layout not in _LAYOUTS:
            raise ValueError(f"unknown layout {layout!r}; use one of {', '.join(_LAYOUTS)}")
        if timestamp_unit not in _UNITS:
            raise ValueError(
                f"unknown timestamp_unit {timestamp_unit!r}; use one of {', '.join(_UNITS)}"
            )
        if chunk_rows < 1:
            raise ValueError("chunk_rows must be >= 1")
        self.path = str(path)
        self.layout = layout
        self.timestamp_unit = timestamp_unit
        self.chunk_rows = chunk_rows
        # the last file read and its open times, keyed by (path, size, mtime): `span`,
        # `check_range` and `fetch` of one command read a file once
        self._last: tuple[tuple[Path, int, int], _Table, pl.Series] | None = None

    def resolve(self, symbol: Symbol) -> Path:
        """The file holding ``symbol``'s bars."""
        return Path(self.path.replace("{symbol}", symbol.file_stem)).expanduser()

    def fetch(
        self, symbol: Symbol, timeframe: Timeframe, start: datetime, end: datetime
    ) -> Iterator[pl.DataFrame]:
        """Read the whole file now (so a bad file fails at the call) and yield its chunks. The
        file's bars are what they are, whatever ``timeframe`` is asked: ingest's spacing check
        refuses a file whose bars are not of it."""
        return self._chunks(self.read(symbol, start, end))

    def fetch_numbered(
        self, symbol: Symbol, timeframe: Timeframe, start: datetime, end: datetime
    ) -> Iterator[pl.DataFrame]:
        """`fetch`'s chunks with each bar's data row in the file (column `SOURCE_ROW`)."""
        return self._chunks(self.read_numbered(symbol, start, end))

    def source_of(self, symbol: Symbol) -> str:
        """``file NAME``: the file of ``symbol``, as messages name it."""
        return f"file {self.resolve(symbol).name}"

    def read(self, symbol: Symbol, start: datetime, end: datetime) -> pl.DataFrame:
        """All rows of ``symbol``'s file with ``start <= open_time < end``, in file order."""
        return self.read_numbered(symbol, start, end).drop(SOURCE_ROW)

    def span(self, symbol: Symbol, timeframe: Timeframe = Timeframe.M1) -> TimeRange:
        """The range ``symbol``'s file holds: its earliest open time to its latest plus one bar
        of ``timeframe`` (end exclusive, like every range), whatever the rows' order. Raises
        ValueError for a file without bars."""
        table, micros = self._table(symbol)
        if micros.is_empty():
            raise ValueError(f"{table.label}: the file holds no bars (a header only)")
        first, last = micros.min(), micros.max()
        assert isinstance(first, int)
        assert isinstance(last, int)
        return TimeRange(from_micros(first), from_micros(last) + timeframe.duration)

    def check_range(self, symbol: Symbol, start: datetime, end: datetime) -> None:
        """Raise `NoBarsInRangeError` (naming the file's own range) when ``[start, end)`` holds
        none of the bars of ``symbol``'s file; `fetch` itself yields nothing then, as every
        provider does for a range without bars."""
        table, micros = self._table(symbol)
        lo, hi = to_micros(utc(start)), to_micros(utc(end))
        if micros.is_empty() or hi <= lo or bool(((micros >= lo) & (micros < hi)).any()):
            return
        raise NoBarsInRangeError(table.label, symbol, TimeRange(start, end), self.span(symbol))

    def read_numbered(self, symbol: Symbol, start: datetime, end: datetime) -> pl.DataFrame:
        """`read`'s rows and, in column `SOURCE_ROW` (Int64), the data row each came from."""
        table, micros = self._table(symbol)
        lo, hi = to_micros(utc(start)), to_micros(utc(end))
        keep = (micros >= lo) & (micros < hi)
        frame = table.frame.with_columns(micros.alias("open_time")).filter(keep)
        values = [_values(table, frame, col) for col in VALUE_COLUMNS]
        out = frame.select(
            pl.col("open_time").cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
        ).with_columns(values)
        return conform(out).with_columns(frame[_ROW].cast(pl.Int64).alias(SOURCE_ROW))

    def _table(self, symbol: Symbol) -> tuple[_Table, pl.Series]:
        """``symbol``'s file, read (or reused while unchanged), and its open times (Int64 UTC
        epoch microseconds)."""
        path = self.resolve(symbol)
        if not path.is_file():
            pattern = f" (from pattern {self.path!r})" if "{symbol}" in self.path else ""
            what = "is a directory, not a file" if path.is_dir() else "not found"
            raise FileNotFoundError(f"bar file for {symbol} {what}: {path}{pattern}")
        stat = path.stat()
        key = (path.resolve(), stat.st_size, stat.st_mtime_ns)
        if self._last is not None and self._last[0] == key:
            return self._last[1], self._last[2]
        table = self._load(path)
        micros = self._timestamps(table)
        self._last = (key, table, micros)
        return table, micros

    def _chunks(self, bars: pl.DataFrame) -> Iterator[pl.DataFrame]:
        return (
            bars.slice(offset, self.chunk_rows) for offset in range(0, bars.height, self.chunk_rows)
        )

    # -- reading ------------------------------------------------------------------------------

    def _load(self, path: Path) -> _Table:
        name = path.name.lower()
        if name.endswith(".zip"):
            return self._load_zip(path)
        data: bytes | None = None
        if name.endswith(".gz"):
            data = _gunzip(path)
            name = name[: -len(".gz")]
        if name.endswith(_PARQUET_SUFFIXES):
            return self._read_parquet(data if data is not None else path, str(path))
        if name.endswith(_CSV_SUFFIXES):
            return self._read_csv(data if data is not None else path, str(path))
        raise ValueError(f"{path}: unsupported file type; supported: {_SUPPORTED}")

    def _load_zip(self, path: Path) -> _Table:
        try:
            with zipfile.ZipFile(path) as archive:
                members = [
                    m
                    for m in archive.infolist()
                    if not m.is_dir()
                    and not m.filename.startswith("__MACOSX/")
                    and not Path(m.filename).name.startswith(".")
                ]
                readable = [
                    m
                    for m in members
                    if m.filename.lower().endswith(_CSV_SUFFIXES + _PARQUET_SUFFIXES)
                ]
                if len(readable) != 1:
                    names = [m.filename for m in members]
                    raise ValueError(
                        f"{path}: a zip must hold exactly one CSV or Parquet file; it holds {names}"
                    )
                member = readable[0]
                data = archive.read(member)
        except zipfile.BadZipFile as exc:
            raise ValueError(f"{path}: not a readable zip file ({exc})") from exc
        label = f"{path} ({member.filename})"
        if member.filename.lower().endswith(_PARQUET_SUFFIXES):
            return self._read_parquet(data, label)
        return self._read_csv(data, label)

    def _read_csv(self, source: bytes | Path, label: str) -> _Table:
        first = _first_line(source)
        if not first.strip():
            raise ValueError(f"{label}: the file is empty or starts with a blank line")
        sep = _sniff_separator(first)
        src: str | bytes = source if isinstance(source, bytes) else str(source)
        try:
            cells = pl.read_csv(
                src, has_header=False, n_rows=1, separator=sep, infer_schema=False
            ).row(0)
            header = _looks_like_header(cells)
            raw_names: list[str] = []
            if header:
                head = pl.read_csv(src, n_rows=1, separator=sep, infer_schema=False)
                sample = head.row(0, named=True) if head.height else {}
                raw_names = head.columns
                sources = self._by_name(raw_names, label, sample)
                raw = pl.read_csv(
                    src, separator=sep, infer_schema=False, columns=list(sources.values())
                ).select(pl.col(sources[t]).alias(t) for t in _TARGETS)
            else:
                sources = self._by_position(len(cells), label)
                raw = pl.read_csv(
                    src,
                    has_header=False,
                    separator=sep,
                    infer_schema=False,
                    columns=list(range(len(_TARGETS))),
                )
                raw.columns = list(_TARGETS)
        except pl.exceptions.PolarsError as exc:
            raise ValueError(f"{label}: cannot read as CSV: {exc}") from exc
        raw = raw.with_row_index(_ROW, offset=1)
        # Blank lines come back as all-null rows; they hold no bar, so they are not rows at all.
        raw = raw.filter(~pl.all_horizontal(pl.col(list(_TARGETS)).is_null()))
        columns = _display(sources, raw_names) if header else sources
        return _Table(raw, label, columns, 1 if header else 0)

    def _read_parquet(self, source: bytes | Path, label: str) -> _Table:
        src: io.BytesIO | str = io.BytesIO(source) if isinstance(source, bytes) else str(source)
        try:
            head = pl.read_parquet(src, n_rows=1)
            names = head.columns
            sample = head.row(0, named=True) if head.height else {}
            sources = self._by_name(names, label, sample)
            if isinstance(src, io.BytesIO):
                src.seek(0)
            raw = pl.read_parquet(src, columns=list(sources.values()))
        except pl.exceptions.PolarsError as exc:
            raise ValueError(f"{label}: cannot read as Parquet: {exc}") from exc
        raw = raw.select(pl.col(sources[t]).alias(t) for t in _TARGETS)
        return _Table(raw.with_row_index(_ROW, offset=1), label, _display(sources, names), None)

    def _by_name(
        self, names: Sequence[str], label: str, sample: dict[str, object]
    ) -> dict[str, str]:
        """The file's column of each target, by header name; the time column may be pandas'
        index column instead (``sample``: the first data row, to tell timestamps from a row
        counter)."""
        normalised: dict[str, str] = {}
        for n in names:
            normalised.setdefault(_normalise(n), n)
        found: dict[str, str] = {}
        for target, aliases in _ALIASES.items():
            match = next((normalised[a] for a in aliases if a in normalised), None)
            if match is not None:
                found[target] = match
        index = [n for n in names if _INDEX_NAME.match(n.strip().lower())]
        if "open_time" not in found and index:
            # without a data row there is nothing to misread: the index column is the time
            timed = next((n for n in index if not sample or _holds_time(sample.get(n))), None)
            if timed is not None:
                found["open_time"] = timed
        missing = [t for t in _TARGETS if t not in found]
        if missing:
            held = ", ".join(f"column {_shown(n, names)} holds {sample.get(n)!r}" for n in index)
            unnamed = f" ({held}, not a timestamp)" if index and "open_time" in missing else ""
            raise ValueError(
                f"{label}: no column for {', '.join(missing)}; the file has columns "
                f"{list(names)}{unnamed}; needed: {_WANTED}"
            )
        return found

    def _by_position(self, width: int, label: str) -> dict[str, str]:
        if self.layout == "auto":
            layouts = [k for k, w in _POSITIONAL_WIDTHS.items() if w == width]
            if not layouts:
                raise ValueError(
                    f"{label}: a CSV without a header must have 6 columns (time, open, high, low, "
                    f"close, volume) or 12 (a Binance kline file); this one has {width}. "
                    f"Otherwise add a header naming {_WANTED}"
                )
        elif width != _POSITIONAL_WIDTHS[self.layout]:
            raise ValueError(
                f"{label}: layout {self.layout!r} without a header needs "
                f"{_POSITIONAL_WIDTHS[self.layout]} columns; this file has {width}"
            )
        return {t: str(i + 1) for i, t in enumerate(_TARGETS)}

    # -- parsing ------------------------------------------------------------------------------

    def _timestamps(self, table: _Table) -> pl.Series:
        """Open times as Int64 UTC epoch microseconds; raises at the first unreadable one."""
        raw = table.frame["open_time"]
        unit = self.timestamp_unit
        dtype = raw.dtype
        if isinstance(dtype, pl.Datetime):
            micros = raw.dt.epoch("us")
        elif isinstance(dtype, pl.Date):
            micros = raw.cast(pl.Datetime("us")).dt.epoch("us")
        elif dtype.is_numeric() and unit != "iso":
            micros = _numeric_micros(raw, unit)
        elif dtype == pl.String:
            micros = _string_micros(raw, unit)
        else:
            micros = pl.Series([None] * raw.len(), dtype=pl.Int64)
        bad = micros.is_null()
        if bad.any():
            i = int(bad.arg_true()[0])
            row = int(table.frame[_ROW][i])
            value = raw[i]
            what = "an empty timestamp" if value is None else f"the timestamp {value!r}"
            raise ValueError(
                f"{table.label}: cannot read {what} in {table.where(row)}, "
                f"{table.column('open_time')} ({dtype}); {_unit_hint(unit)}"
            )
        return micros.cast(pl.Int64)


def _values(table: _Table, frame: pl.DataFrame, name: str) -> pl.Series:
    """One value column as Float64; empty and NaN-like cells are NaN, other text is an error."""
    raw = frame[name]
    if raw.dtype == pl.String:
        text = raw.str.strip_chars()
        out = text.cast(pl.Float64, strict=False)
        bad = out.is_null() & text.is_not_null() & ~text.str.to_lowercase().is_in(_MISSING)
        if bad.any():
            i = int(bad.arg_true()[0])
            row = int(frame[_ROW][i])
            raise ValueError(
                f"{table.label}: cannot read {raw[i]!r} as a number in {table.where(row)}, "
                f"{table.column(name)}"
            )
    elif raw.dtype.is_numeric() or raw.dtype == pl.Null:
        out = raw.cast(pl.Float64)
    else:
        raise ValueError(f"{table.label}: {table.column(name)} holds {raw.dtype}, not numbers")
    return out.fill_null(float("nan")).alias(name)


def _numeric_micros(values: pl.Series, unit: TimestampUnit) -> pl.Series:
    """Epoch numbers in ``unit`` (or, for ``auto``, each by its magnitude) as Int64 microseconds;
    null where not finite or outside the years 1-9999."""
    v = pl.col("v")
    approx = v.cast(pl.Float64)
    if unit == "auto":
        mag = approx.abs()
        chosen: pl.Expr = pl.lit("ns")
        for bound, name in reversed(_AUTO_BOUNDS):
            chosen = pl.when(mag < bound).then(pl.lit(name)).otherwise(chosen)
    else:
        chosen = pl.lit(unit)
    factor = pl.col("unit").replace_strict(_FLOAT_FACTOR, return_dtype=pl.Float64)
    scaled = pl.col("approx") * factor
    in_range = scaled.is_between(_MIN_US, _MAX_US)
    if values.dtype.is_integer():
        ints = v.cast(pl.Int64, strict=False)
        exact = (
            pl.when(pl.col("unit") == "ns")
            .then(ints // 1_000)
            .otherwise(ints * pl.col("unit").replace_strict(_INT_FACTOR, default=1))
        )
    else:
        exact = scaled.round(0).cast(pl.Int64, strict=False)
    return (
        pl.DataFrame({"v": values})
        .with_columns(approx.alias("approx"), chosen.alias("unit"))
        .select(pl.when(in_range).then(exact).otherwise(None).cast(pl.Int64))
        .to_series()
    )


def _string_micros(raw: pl.Series, unit: TimestampUnit) -> pl.Series:
    """Epoch numbers and ISO-8601 strings as Int64 microseconds; null where unreadable."""
    text = raw.str.strip_chars()
    numeric = text.str.contains(_NUMBER_RE).fill_null(False)
    if unit == "iso":
        return _iso_micros(text)
    ints = _numeric_micros(text.str.to_integer(strict=False), unit)
    floats = _numeric_micros(text.cast(pl.Float64, strict=False), unit)
    number = ints.fill_null(floats)
    if unit != "auto":
        return pl.select(pl.when(numeric).then(number)).to_series()
    iso = _iso_micros(pl.select(pl.when(~numeric).then(text)).to_series())
    return pl.select(pl.when(numeric).then(number).otherwise(iso)).to_series()


def _iso_micros(text: pl.Series) -> pl.Series:
    """ISO-8601 dates and timestamps (``Z``, offsets, or naive = UTC) as Int64 microseconds."""
    normal = (
        text.str.replace(r"^(\d{4}-\d{2}-\d{2})[ tT]", "${1}T")
        .str.replace(r"^(\d{4}-\d{2}-\d{2})$", "${1}T00:00:00")
        .str.replace(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2})([Zz+-]|$)", "${1}:00${2}")
        .str.replace(r"[Zz]$", "+00:00")
        .str.replace(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?)$", "${1}+00:00")
    )
    fast = normal.str.to_datetime(
        _ISO_FORMAT, time_unit="us", time_zone="UTC", strict=False
    ).dt.epoch("us")
    todo = text.filter(fast.is_null() & text.is_not_null()).unique()
    if todo.is_empty():
        return fast
    # Forms the fast path does not take (``+0530``, basic ``20240101T0000``...): Python's parser.
    slow = {t: m for t in todo.to_list() if (m := _python_iso(t)) is not None}
    if not slow:
        return fast
    return fast.fill_null(text.replace_strict(slow, default=None, return_dtype=pl.Int64))


def _python_iso(text: str) -> int | None:
    try:
        return to_micros(datetime.fromisoformat(text))
    except ValueError:
        return None


def _unit_hint(unit: TimestampUnit) -> str:
    if unit == "iso":
        return "timestamp_unit 'iso' expects ISO-8601 dates or timestamps (2024-01-01T00:00:00Z)"
    if unit == "auto":
        return (
            "expected epoch seconds, milliseconds, microseconds or nanoseconds, "
            "or an ISO-8601 date or timestamp (2024-01-01T00:00:00Z)"
        )
    return f"timestamp_unit {unit!r} expects epoch numbers in that unit (years 1-9999)"


def _gunzip(path: Path) -> bytes:
    try:
        return gzip.decompress(path.read_bytes())
    except (OSError, EOFError) as exc:
        raise ValueError(f"{path}: not a readable gzip file ({exc})") from exc


def _first_line(source: bytes | Path) -> str:
    if isinstance(source, bytes):
        head = source[:65_536]
    else:
        with source.open("rb") as fh:
            head = fh.read(65_536)
    return head.split(b"\n", 1)[0].decode("utf-8", errors="replace").lstrip("\ufeff")


def _sniff_separator(line: str) -> str:
    counts = {sep: line.count(sep) for sep in (",", ";", "\t", "|")}
    best = max(counts, key=lambda sep: counts[sep])
    return best if counts[best] > 0 else ","


def _display(sources: dict[str, str], names: Sequence[str]) -> dict[str, str]:
    return {target: _shown(name, names) for target, name in sources.items()}


def _shown(name: str, names: Sequence[str]) -> str:
    """How messages name a column: its header, or its position where the header is empty."""
    if name.strip():
        return repr(name)
    return f"{list(names).index(name) + 1} (unnamed)"


def _holds_time(value: object) -> bool:
    """Whether a first data row's cell is a timestamp: a date or time, an ISO date string, or
    an epoch number too large for a row counter."""
    if isinstance(value, datetime | date):
        return True
    if isinstance(value, str):
        text = value.strip()
        if _DATE_LIKE.match(text):
            return True
        return bool(_NUMBER.match(text)) and abs(float(text)) >= _EPOCH_MIN
    if isinstance(value, int | float) and not isinstance(value, bool):
        return math.isfinite(value) and abs(value) >= _EPOCH_MIN
    return False


def _normalise(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().strip("\"'").lower())


def _looks_like_header(cells: Sequence[object]) -> bool:
    """A first line is a header if it names a known column or holds no number and no date."""
    texts = [_normalise(str(c)) if c is not None else "" for c in cells]
    if any(t in _HEADER_NAMES for t in texts):
        return True
    return not any(_NUMBER.match(t) or _DATE_LIKE.match(t) for t in texts)
