"""Ports shared by several services. Core code depends on these Protocols, never on adapters."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

import polars as pl

from drl_trading.common.agent_state import AgentPosition
from drl_trading.common.domain import Bar, Symbol, Timeframe
from drl_trading.common.events import Event

Handler = Callable[[Event], None]


class MessageBus(Protocol):
    """Topics with per-key ordering, consumer groups and at-least-once delivery.

    A consumer group is named after the service that owns it; a handler that keeps failing has its
    message moved to ``dlq.<topic>`` and an `ErrorOccurred` published on ``error.<group>``. Handlers
    must therefore be idempotent. Delivery happens inside `poll`, so a single-threaded process and
    a Kafka consumer loop drive handlers the same way.
    """

    def publish(self, topic: str, event: Event, *, key: str) -> None: ...

    def subscribe(self, topic: str, *, group: str, handler: Handler) -> None: ...

    def poll(self, max_messages: int | None = None, timeout: float | None = None) -> int:
        """Deliver pending messages to handlers; returns how many were handled or dead-lettered.

        ``timeout``: how long to wait for a first message when none is pending (None: the
        adapter's default, 0: not at all); a bus that holds every message in memory never
        waits."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class UpsertResult:
    """How the rows of one upsert (distinct open times) met the store: new keys, existing keys
    whose values changed, and existing keys whose values were already equal (not rewritten)."""

    inserted: int
    updated: int
    unchanged: int = 0

    @property
    def written(self) -> int:
        """Rows whose stored values this upsert changed (new or updated)."""
        return self.inserted + self.updated

    @property
    def stored(self) -> int:
        """Rows of the upsert now held in the store, changed or not."""
        return self.inserted + self.updated + self.unchanged


@dataclass(frozen=True, slots=True)
class Coverage:
    first_open_time: datetime
    last_open_time: datetime
    bars: int


class MarketDataRepository(Protocol):
    """OHLCV storage keyed by (symbol, timeframe, open time); writes are idempotent upserts.

    An upsert's `UpsertResult` counts each distinct open time once: a row whose values equal the
    stored ones is unchanged, neither inserted nor updated, so repeating an upsert reports 0 new
    and 0 updated; within one frame the last row of an open time wins. A write-behind adapter
    stages small writes and counts them against what is stored or staged; reads flush first, so
    a process always reads what it wrote."""

    def upsert_bars(
        self, symbol: Symbol, timeframe: Timeframe, bars: pl.DataFrame
    ) -> UpsertResult: ...

    def upsert_bar(self, bar: Bar) -> UpsertResult:
        """One bar of its own symbol and timeframe, counted as `upsert_bars` of its one-row
        frame counts it: online ingest's write of each live bar, which a write-behind adapter
        stages without building a frame on the path to the order (~0.1 ms a bar)."""
        ...

    def read_bars(
        self, symbol: Symbol, timeframe: Timeframe, start: datetime, end: datetime
    ) -> pl.DataFrame:
        """Bars with ``start <= open_time < end`` in time order, in the schema of `bars.py`."""
        ...

    def coverage(self, symbol: Symbol, timeframe: Timeframe) -> Coverage | None: ...

    def coverages(
        self, timeframe: Timeframe, start: datetime | None = None, end: datetime | None = None
    ) -> dict[Symbol, Coverage]:
        """Every symbol with stored ``timeframe`` bars and its coverage, by symbol name; with
        ``start``/``end`` only the bars with ``start <= open_time < end`` count (a symbol with
        none there is absent). What a session checks before it starts, and names when a symbol
        or range has no bars."""
        ...

    def quarantine(
        self, symbol: Symbol, timeframe: Timeframe, rows: pl.DataFrame, batch_id: str
    ) -> int:
        """Keep rejected rows (bar columns plus ``rule`` and ``detail``) out of the bar table."""
        ...

    def read_quarantine(self, symbol: Symbol | None = None) -> pl.DataFrame: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class FeatureViewSpec:
    """One stored feature table: a feature-set version aligned on its base timeframe.

    Rows are keyed by ``symbol`` and ``event_time``, the close time of the base bar, i.e. the first
    instant at which every value in the row was known.
    """

    name: str
    feature_set_name: str
    feature_set_version: str
    base_timeframe: Timeframe
    columns: tuple[str, ...]
    ttl: timedelta = field(default=timedelta(days=2))


@dataclass(frozen=True, slots=True)
class OnlineFeatures:
    """The latest feature vector of one symbol as the online store serves it."""

    event_time: datetime
    values: tuple[float, ...]  # in the view's column order


class FeatureStore(Protocol):
    def register(self, view: FeatureViewSpec) -> None:
        """Declare (or update) the view so that it can be written and read."""
        ...

    def write_offline(self, view: FeatureViewSpec, symbol: Symbol, frame: pl.DataFrame) -> int:
        """Store rows (``event_time`` + the view's columns); rewriting a time replaces it."""
        ...

    def historical_features(self, view: FeatureViewSpec, entities: pl.DataFrame) -> pl.DataFrame:
        """Point-in-time read: for each (``symbol``, ``event_time``) the latest row at or before it.

        Returns the entity columns plus the view's columns, in the entities' order, with nulls
        where no row was known at that time.
        """
        ...

    def write_online(
        self, view: FeatureViewSpec, symbol: Symbol, event_time: datetime, values: Sequence[float]
    ) -> None:
        """Make ``values`` (the view's columns, in order) the symbol's latest online vector; an
        older ``event_time`` than the stored one is ignored (late writes never go back in time)."""
        ...

    def online_features(
        self, view: FeatureViewSpec, symbols: Sequence[Symbol]
    ) -> dict[Symbol, OnlineFeatures]:
        """The latest vector of each symbol that has one (absent symbols are left out)."""
        ...


class Clock(Protocol):
    def now(self) -> datetime: ...


class PositionProvider(Protocol):
    def agent_position(self, symbol: Symbol) -> AgentPosition:
        """The symbol's position as of the last fill; flat for a symbol never traded."""
        ...


PriceSource = Callable[[Symbol], float]
"""The latest close of ``symbol`` (the base bar that just closed, i.e. its last 1m close).

The unrealised-return part of the agent state is priced at the close of the bar whose features
are observed, as in training; the features themselves do not carry prices. Only called while a
position is open. Raise `LookupError` (or return a non-positive value) when no price is known:
the symbol is then skipped rather than fed a made-up state.
"""
