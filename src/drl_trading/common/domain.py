"""Domain value types shared by every service.

Identifiers are small value types rather than bare strings so that a symbol can never be passed
where a timeframe is expected, and every timestamp in the code base is a timezone-aware UTC
`datetime` with microsecond precision (the finest precision Feast and Arrow agree on).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema

_SYMBOL_RE = re.compile(r"^[A-Z0-9][A-Z0-9._\-/:]{0,39}$")


class Symbol(str):
    """An instrument identifier such as ``BTCUSDT`` or ``BTC/USDT``.

    Symbols are upper-cased on construction so that ``btcusdt`` and ``BTCUSDT`` name one series in
    every store; anything outside letters, digits and ``. _ - / :`` is rejected because the symbol
    becomes part of file names, Kafka keys and Feast entity keys.
    """

    __slots__ = ()

    def __new__(cls, value: str) -> Symbol:
        text = str(value).strip().upper()
        if not _SYMBOL_RE.match(text):
            raise ValueError(
                f"invalid symbol {value!r}: use 1-40 letters, digits or . _ - / : (e.g. BTCUSDT)"
            )
        return super().__new__(cls, text)

    @property
    def file_stem(self) -> str:
        """A form of the symbol safe to use in file names (``BTC/USDT`` -> ``BTC_USDT``)."""
        return self.replace("/", "_").replace(":", "_")

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(
            cls, core_schema.str_schema(), serialization=core_schema.to_string_ser_schema()
        )


def parse_symbols(text: str | list[str]) -> list[Symbol]:
    """Parse ``"BTCUSDT,ETHUSDT"`` (or a list) into unique symbols, keeping the given order."""
    parts = text.split(",") if isinstance(text, str) else text
    out: list[Symbol] = []
    for part in parts:
        if part.strip():
            sym = Symbol(part)
            if sym not in out:
                out.append(sym)
    if not out:
        raise ValueError("no symbol given")
    return out


class Timeframe(StrEnum):
    """Bar durations the framework resamples to. Bars are labelled by their UTC open time."""

    M1 = "1m"
    M5 = "5m"
    M15 = "15m"
    M30 = "30m"
    H1 = "1h"
    H4 = "4h"
    D1 = "1d"

    @property
    def minutes(self) -> int:
        return _MINUTES[self.value]

    @property
    def duration(self) -> timedelta:
        return timedelta(minutes=self.minutes)

    @property
    def micros(self) -> int:
        """Duration in microseconds, the unit of every stored timestamp."""
        return self.minutes * 60_000_000

    @property
    def polars_every(self) -> str:
        """The duration string polars' ``group_by_dynamic`` expects (``"1h"``, ``"15m"``...)."""
        return f"{self.minutes}m"

    def floor(self, ts: datetime) -> datetime:
        """Open time of the bar of this timeframe containing ``ts`` (grid anchored at epoch)."""
        micros = to_micros(ts)
        return from_micros(micros - micros % self.micros)

    def is_on_grid(self, ts: datetime) -> bool:
        return to_micros(ts) % self.micros == 0

    @classmethod
    def parse(cls, value: str | Timeframe) -> Timeframe:
        try:
            return cls(value)
        except ValueError:
            allowed = ", ".join(t.value for t in cls)
            raise ValueError(f"unknown timeframe {value!r}; allowed: {allowed}") from None

    def __str__(self) -> str:
        return self.value


_MINUTES = {"1m": 1, "5m": 5, "15m": 15, "30m": 30, "1h": 60, "4h": 240, "1d": 1440}

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def utc(ts: datetime) -> datetime:
    """Return ``ts`` as an aware UTC datetime; naive input is taken as UTC."""
    if ts.tzinfo is None:
        return ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC)


def parse_time(text: str | datetime) -> datetime:
    """Parse a date or ISO-8601 timestamp given by a user; naive values are UTC."""
    if isinstance(text, datetime):
        return utc(text)
    try:
        return utc(datetime.fromisoformat(text.strip().replace("Z", "+00:00")))
    except ValueError:
        raise ValueError(
            f"cannot read time {text!r}: use an ISO date or timestamp such as 2024-01-01 "
            "or 2024-01-01T12:30:00Z"
        ) from None


def to_micros(ts: datetime) -> int:
    delta = utc(ts) - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=int(micros))


@dataclass(frozen=True, slots=True)
class TimeRange:
    """A half-open UTC interval ``[start, end)``."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", utc(self.start))
        object.__setattr__(self, "end", utc(self.end))
        if self.end <= self.start:
            raise ValueError(f"empty time range: end {self.end} is not after start {self.start}")

    @classmethod
    def parse(cls, start: str | datetime, end: str | datetime) -> TimeRange:
        return cls(parse_time(start), parse_time(end))

    def __str__(self) -> str:
        """For messages: ``2024-01-10 00:00..2024-01-30 00:00 UTC`` (seconds only if any)."""
        fmt = "%Y-%m-%d %H:%M"
        if any(t.second or t.microsecond for t in (self.start, self.end)):
            fmt += ":%S"
        return f"{self.start:{fmt}}..{self.end:{fmt}} UTC"


@dataclass(frozen=True, slots=True)
class Bar:
    """One OHLCV bar; batches travel as polars frames (see `bars.py`) instead."""

    symbol: Symbol
    timeframe: Timeframe
    open_time: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float

    @property
    def close_time(self) -> datetime:
        return self.open_time + self.timeframe.duration


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class Action(StrEnum):
    """The discrete decision of a policy; target positions are -1, 0 and +1."""

    SHORT = "short"
    FLAT = "flat"
    LONG = "long"


@dataclass(frozen=True, slots=True)
class Signal:
    """A policy's decision for one symbol at one bar, as published on ``completed.predict``."""

    symbol: Symbol
    action: Action
    target_position: float
    confidence: float
    model_uri: str
    feature_time: datetime


@dataclass(frozen=True, slots=True)
class Order:
    client_order_id: str
    symbol: Symbol
    side: Side
    quantity: float
    limit_price: float | None = None


@dataclass(frozen=True, slots=True)
class Fill:
    client_order_id: str
    symbol: Symbol
    side: Side
    quantity: float
    price: float
    fee: float
    filled_at: datetime


@dataclass(frozen=True, slots=True)
class Trade:
    """A closed round trip; realised PnL is in quote currency after fees."""

    symbol: Symbol
    entry: Fill
    exit: Fill
    realised_pnl: float
