"""Composition of the execution service: its store, its broker (the paper broker, or the
exchange broker a live session passes: `app.live_broker`), the risk limits of the strategy, and
its bus handlers; the embedded runtime and `serve execution` both call `compose_execution`;
`kill`/`resume` on a stored account call `bootstrap_execution` (no bus, `app/paper_account.py`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from drl_trading.app.infrastructure import build_strategy
from drl_trading.app.settings import AppSettings
from drl_trading.app.topology import subscribe
from drl_trading.common.domain import Symbol
from drl_trading.common.latency import StageLatency
from drl_trading.common.ports import Clock, MessageBus
from drl_trading.execution.adapter.bus_handlers import ExecutionHandlers
from drl_trading.execution.adapter.memory_store import InMemoryExecutionStore
from drl_trading.execution.adapter.paper_broker import PaperBroker
from drl_trading.execution.adapter.sqlite_store import SQLiteExecutionStore
from drl_trading.execution.core.config import ExecutionSettings
from drl_trading.execution.core.ports import Broker, ExecutionStore, VenueStateSource
from drl_trading.execution.core.service import ExecutionService
from drl_trading.strategy.api import RiskParameters

if TYPE_CHECKING:
    from drl_trading.execution.adapter.ccxt_broker import CcxtBroker


@dataclass(frozen=True, slots=True)
class ExecutionComponents:
    service: ExecutionService
    broker: Broker
    store: ExecutionStore
    handlers: ExecutionHandlers | None = None
    """Set when composed onto a bus (`compose_execution`)."""

    def close(self) -> None:
        """Close the store, and the broker where it holds connections (an exchange broker's
        order stream)."""
        self.store.close()
        closer = getattr(self.broker, "close", None)
        if callable(closer):
            closer()


def bootstrap_execution(
    settings: ExecutionSettings,
    risk: RiskParameters,
    clock: Clock,
    home: Path,
    symbols: Sequence[Symbol] = (),
    postgres: tuple[str, str] | None = None,
    *,
    broker: Broker | None = None,
    venue: VenueStateSource | None = None,
    bus: MessageBus | None = None,
    mark_commit_bars: int = 1,
) -> ExecutionComponents:
    """``broker`` (default: a paper broker) plus the configured store; a store holding a
    portfolio resumes it, so the initial cash only matters the first time. With ``capital:
    per_symbol`` the initial cash is split equally over ``symbols`` (the traded universe;
    required then). ``postgres`` is the (DSN, schema) of the database for ``store: postgres``.
    ``venue`` (a live broker's account) turns reconciliation on, with the policy of
    ``execution.reconciliation``; its halts go to ``bus``. ``mark_commit_bars``: see
    `ExecutionService` (1 where another process reads the marks as they move)."""
    capital: dict[Symbol, float] | None = None
    if settings.capital == "per_symbol":
        if not symbols:
            raise ValueError("execution.capital 'per_symbol' needs the traded symbols")
        unique = list(dict.fromkeys(symbols))
        capital = {s: settings.initial_cash / len(unique) for s in unique}
    store: ExecutionStore
    if settings.store == "memory":
        store = InMemoryExecutionStore()
    elif settings.store == "postgres":
        from drl_trading.execution.adapter.postgres_store import PostgresExecutionStore

        if postgres is None:
            raise ValueError("execution.store 'postgres' needs the database settings")
        store = PostgresExecutionStore(postgres[0], schema=postgres[1])
    else:
        store = SQLiteExecutionStore(settings.store_path or home / "execution.sqlite")
    if broker is None:
        broker = PaperBroker(settings.fee_bps, settings.slippage_bps, settings.initial_cash)
    service = ExecutionService(
        broker,
        store,
        settings.limits(risk),
        clock,
        capital,
        venue=venue,
        reconciliation=settings.reconciliation.policy() if venue is not None else None,
        bus=bus,
        mark_commit_bars=mark_commit_bars,
    )
    return ExecutionComponents(service, broker, store)


def compose_execution(
    settings: AppSettings,
    bus: MessageBus,
    clock: Clock,
    symbols: Sequence[Symbol],
    latency: StageLatency | None = None,
    broker: CcxtBroker | None = None,
    mark_commit_bars: int = 1,
) -> ExecutionComponents:
    """The execution service of ``settings`` subscribed to ``bus``: signals in, orders to the
    broker, the book marked at each live bar (of the data timeframe). ``latency`` records the
    online chain's stages. ``broker``: a live session's exchange broker, also the venue the
    service reconciles with (default: the paper broker). ``mark_commit_bars``: see
    `ExecutionService` (1 for ``serve execution``: inference in another process waits on the
    stored marks)."""
    strategy = build_strategy(settings)
    pg = settings.postgres
    parts = bootstrap_execution(
        settings.execution,
        strategy.risk_parameters(),
        clock,
        settings.home,
        symbols,
        (pg.dsn(), pg.schema_name) if settings.execution.store == "postgres" else None,
        broker=broker,
        venue=broker,
        bus=bus if broker is not None else None,
        mark_commit_bars=mark_commit_bars,
    )
    handlers = ExecutionHandlers(parts.service, strategy, latency)
    subscribe(bus, "execution", handlers)
    return ExecutionComponents(parts.service, parts.broker, parts.store, handlers)
