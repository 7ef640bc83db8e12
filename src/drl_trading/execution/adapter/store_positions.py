"""What inference needs from execution, read from the shared execution store (distributed mode).

Inference and execution are separate processes there, each consuming the bar stream on its own,
so inference may ask about a bar that execution has not marked yet. The agent's state must be as
of the bar being decided (what the training env and the embedded runtime see), so a read waits,
briefly, until the store's mark of the symbol reaches that bar's close: the close of the base bar
the clock is at (in a replay the market clock follows the events). After ``wait`` it goes on with
what the store holds and says so in the log.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta

import structlog

from drl_trading.common.domain import Symbol, Timeframe
from drl_trading.common.ports import Clock
from drl_trading.execution.adapter.memory_store import InMemoryExecutionStore
from drl_trading.execution.adapter.paper_broker import PaperBroker
from drl_trading.execution.core.ports import ExecutionStore
from drl_trading.execution.core.risk import ExecutionLimits
from drl_trading.execution.core.service import ExecutionService
from drl_trading.inference.core.ports import AgentPosition

log = structlog.get_logger(__name__)


class StorePositions:
    def __init__(
        self,
        store: ExecutionStore,
        base: Timeframe,
        clock: Clock,
        *,
        wait: timedelta = timedelta(seconds=3),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._store = store
        self._base = base
        self._clock = clock
        self._wait = wait.total_seconds()
        self._sleep = sleep
        self.waits = 0
        self.late = 0
        self._last: tuple[Symbol, datetime, ExecutionService | None] | None = None

    def _service(self, symbol: Symbol) -> ExecutionService | None:
        """A read-only view of the account as execution last committed it, once its mark of
        ``symbol`` reached the current base bar's close (or the wait ran out). Inference asks
        for the position and then the price of the same bar: the view is loaded (and waited
        for) once per symbol and bar."""
        due = self._base.floor(self._clock.now())
        if self._last is not None and self._last[:2] == (symbol, due):
            return self._last[2]
        service = self._load(symbol, due)
        self._last = (symbol, due, service)
        return service

    def _load(self, symbol: Symbol, due: datetime) -> ExecutionService | None:
        deadline = time.monotonic() + self._wait
        waited = False
        while True:
            checkpoint = self._store.load()
            mark = checkpoint.marks.get(symbol) if checkpoint is not None else None
            if mark is not None and mark.as_of >= due:
                break
            if time.monotonic() >= deadline:
                if checkpoint is not None:
                    self.late += 1
                    log.warning(
                        "execution store behind the bar; using what it holds",
                        symbol=str(symbol),
                        bar_close=due.isoformat(),
                        marked=None if mark is None else mark.as_of.isoformat(),
                    )
                break
            waited = True
            self._sleep(0.005)
        self.waits += waited
        if checkpoint is None:
            return None
        view = InMemoryExecutionStore()
        view.commit(checkpoint)  # a private copy: nothing goes back to the shared store
        broker = PaperBroker(0.0, 0.0, checkpoint.portfolio.cash)
        return ExecutionService(broker, view, ExecutionLimits(), self._clock)

    def agent_position(self, symbol: Symbol) -> AgentPosition:
        service = self._service(symbol)
        mark = service.mark(symbol) if service is not None else None
        if service is None or mark is None:
            return AgentPosition.flat()
        got = service.agent_position(symbol, mark.as_of, self._base.duration)
        return AgentPosition(got.target_position, got.entry_price, got.bars_in_position)

    def price(self, symbol: Symbol) -> float:
        service = self._service(symbol)
        mark = service.mark(symbol) if service is not None else None
        if mark is None:
            raise LookupError(f"no price for {symbol} in the execution store yet")
        return mark.price
