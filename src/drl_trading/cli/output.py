"""How a listing command writes its rows: a rich table for a person, CSV or JSON for a program.

A table is for reading, so its cells are words and short numbers (``yes``/``no``, six significant
digits); CSV and JSON are for programs, so they hold every row and column at full precision,
JSON with real booleans and numbers. Only the rows go to stdout in those formats: notes go to
stderr, so the output parses as it is.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from enum import Enum, StrEnum
from typing import Annotated, TextIO

import typer
from rich.text import Text

from drl_trading.evaluation.report_html import yes_no


class OutputFormat(StrEnum):
    TABLE = "table"
    CSV = "csv"
    JSON = "json"


FormatOption = Annotated[
    OutputFormat,
    typer.Option(
        "--format",
        case_sensitive=False,
        help="table (for a person), or csv or json on stdout (every row and column, full "
        "precision, for a program).",
    ),
]


def table_cell(value: object) -> Text:
    """``value`` as a person reads it in a table; a `Text`, so that brackets in it are shown
    rather than taken for rich markup."""
    if value is None:
        return Text("")
    if isinstance(value, bool):
        return Text(yes_no(value))
    if isinstance(value, datetime | date):
        return Text(value.isoformat())
    if isinstance(value, float):
        return Text(f"{value:.6g}")
    if isinstance(value, Enum):
        return Text(str(value.value))
    return Text(str(value))


def json_value(value: object) -> object:
    """``value`` as JSON holds it: booleans and numbers as such, times in ISO 8601, a NaN or an
    infinity (which JSON cannot hold) as null."""
    if isinstance(value, Enum):
        return value.value
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def csv_cell(value: object) -> str:
    """``value`` as a CSV field: empty for none, ``true``/``false``, floats at full precision
    (``repr`` round-trips)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return str(value.value)
    return str(value)


def write_rows(
    fmt: OutputFormat,
    columns: Sequence[str],
    rows: Iterable[Sequence[object]],
    stream: TextIO,
    *,
    lineterminator: str = "\n",
) -> int:
    """Write ``rows`` (values in the order of ``columns``) as CSV with a header line or as one
    JSON array of objects keyed by column; returns the number of rows written."""
    n = 0
    if fmt is OutputFormat.CSV:
        writer = csv.writer(stream, lineterminator=lineterminator)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([csv_cell(v) for v in row])
            n += 1
        return n
    if fmt is OutputFormat.JSON:
        objects = [{c: json_value(v) for c, v in zip(columns, row, strict=True)} for row in rows]
        stream.write(json.dumps(objects, indent=2) + "\n")
        return len(objects)
    raise ValueError(f"{fmt.value} is not a machine format")
