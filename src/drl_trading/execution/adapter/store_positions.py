"""What inference needs from execution, read from the shared execution store (distributed mode).

Inference and execution are separate processes there, each consuming the bar stream on its own, so
inference may ask about a bar that execution has not marked yet. The agent's state must be as of the
bar being decided (what the training env and the embedded runtime see), so a read waits, briefly,
until the store's mark of the symbol reaches that bar's close: the last base bar close at or before
the clock (in a replay the market clock follows the events), on the symbol's market calendar (an
XLON hourly bar keyed 15:00 closes at 15:30; on a Sunday, Friday's last bar). After ``wait`` it goes
on with what the store holds and says so in the log. With ``changed`` (PostgreSQL's LISTEN/NOTIFY:
`PostgresExecutionStore.wait_for_commit`) the wait wakes when execution commits instead of polling
the store, and with ``listened`` the state a commit's notification carried is used without
reading the store (one round trip less per decision).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta

import structlog

from drl_trading.common.agent_state import AgentPosition
from drl_trading.common.bar_windows import BarWindows, SymbolWindows
from drl_trading.common.calendar import CalendarBook
from drl_trading.common.domain import Symbol, Timeframe, from_micros, to_micros
from drl_trading.common.ports import Clock
from drl_trading.execution.core.ports import ExecutionStore
from drl_trading.execution.core.records import SymbolState
from drl_trading.execution.core.service import agent_inputs

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
        changed: Callable[[float], bool] | None = None,
        on_wait: Callable[[float], None] | None = None,
        calendars: CalendarBook | None = None,
        listened: Callable[[Symbol], SymbolState | None] | None = None,
    ) -> None:
        """``calendars``: each symbol's market calendar (None: every symbol trades 24/7).
        ``listened``: a symbol's state as the commit notifications carried it, None when
        unknown (`PostgresExecutionStore.listened_state`); asked before the store is read."""
        self._store = store
        self._windows = SymbolWindows(calendars, base)
        self._base = base
        self._clock = clock
        self._wait = wait.total_seconds()
        self._sleep = sleep
        self._changed = changed
        self._on_wait = on_wait  # seconds waited for execution's mark (a metric)
        self._listened = listened
        self.listened = 0  # states known from notifications, no store read
        self.reads = 0  # store reads of a symbol's state
        if changed is not None:
            changed(0.0)  # listen from now on
        self.waits = 0
        self.late = 0
        self._last: tuple[Symbol, datetime, SymbolState] | None = None

    def _state(self, symbol: Symbol) -> SymbolState:
        """``symbol``'s state as execution last committed it, once its mark reached the current
        base bar's close (or the wait ran out). Inference asks for the position and then the
        price of the same bar: the state is read (and waited for) once per symbol and bar."""
        due = self._due(symbol, self._clock.now())
        if self._last is not None and self._last[:2] == (symbol, due):
            return self._last[2]
        state = self._load(symbol, due)
        self._last = (symbol, due, state)
        return state

    def _bar_windows(self, symbol: Symbol) -> BarWindows | None:
        """The symbol's base `BarWindows`; None on a 24/7 market (closed-form arithmetic)."""
        return self._windows.for_symbol(symbol)

    def _due(self, symbol: Symbol, now: datetime) -> datetime:
        """The close of the last base bar closed at or before ``now``."""
        windows = self._bar_windows(symbol)
        if windows is None:
            return self._base.floor(now)
        return from_micros(windows.close(windows.last_closed(to_micros(now))))

    def _load(self, symbol: Symbol, due: datetime) -> SymbolState:
        began = time.monotonic()
        deadline = began + self._wait
        waited = False
        while True:
            state = self._heard(symbol, due)
            if state is not None:
                break
            state = self._store.symbol_state(symbol)
            self.reads += 1
            if state.mark is not None and state.mark.as_of >= due:
                break
            if time.monotonic() >= deadline:
                if state.mark is not None:
                    self.late += 1
                    log.warning(
                        "execution store behind the bar; using what it holds",
                        symbol=str(symbol),
                        bar_close=due.isoformat(),
                        marked=state.mark.as_of.isoformat(),
                    )
                break
            waited = True
            if self._changed is not None:
                self._changed(max(deadline - time.monotonic(), 0.0))
            else:
                self._sleep(0.005)
        self.waits += waited
        if waited and self._on_wait is not None:
            self._on_wait(time.monotonic() - began)
        return state

    def _heard(self, symbol: Symbol, due: datetime) -> SymbolState | None:
        """The notified state when it is marked up to ``due`` (the store then holds the same)."""
        if self._listened is None:
            return None
        state = self._listened(symbol)
        if state is None or state.mark is None or state.mark.as_of < due:
            return None
        self.listened += 1
        return state

    def agent_position(self, symbol: Symbol) -> AgentPosition:
        state = self._state(symbol)
        if state.mark is None:
            return AgentPosition.flat()
        windows = self._bar_windows(symbol)
        got = agent_inputs(
            state.target,
            state.entry,
            state.position,
            state.mark.as_of,
            self._base.duration if windows is None else windows,
        )
        return AgentPosition(got.target_position, got.entry_price, got.bars_in_position)

    def price(self, symbol: Symbol) -> float:
        mark = self._state(symbol).mark
        if mark is None:
            raise LookupError(f"no price for {symbol} in the execution store yet")
        return mark.price
