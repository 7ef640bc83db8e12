"""Bus entry points of execution: signals from ``completed.predict``, prices from the live bars.

Execution follows the market through the online ``requested.preprocess-data`` events (they carry
each new bar of the data timeframe, ``event.timeframe``): the paper broker fills pending orders
at the next bar's open and the risk engine marks the book at every close. A signal for bar t
therefore fills at the open of the first data bar after t's close, the training environment's
timing.

With several instances (one consumer group, the symbols split by partition) the account is
shared: each event is handled holding the `AccountLock`, and on the state another instance
committed, reloaded first when it moved.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

from drl_trading.common.domain import Bar
from drl_trading.common.events import (
    Event,
    PredictionCompleted,
    PreprocessDataRequested,
    ProcessingMode,
)
from drl_trading.common.latency import StageLatency, stamp
from drl_trading.execution.core.service import ExecutionService, client_order_id
from drl_trading.strategy.api import Strategy


class AccountLock(Protocol):
    """The account held by one process at a time (`PostgresExecutionStore.hold_account`)."""

    def hold_account(
        self, signal_id: str | None = None, client_order_id: str | None = None
    ) -> AbstractContextManager[bool]:
        """Hold it for a ``with`` block; yields whether another process committed it since
        this one last loaded or committed. ``signal_id``: the signal the block handles, whose
        processed mark the store may read together with the lock (one round trip less);
        ``client_order_id``: the id its order would carry, whether an order holds it read so
        too (two round trips less for an order: the service's check and the commit's)."""
        ...


class ExecutionHandlers:
    def __init__(
        self,
        service: ExecutionService,
        strategy: Strategy,
        latency: StageLatency | None = None,
        account: AccountLock | None = None,
    ) -> None:
        """``account``: set when other instances share the account (None: this one alone)."""
        self.service = service
        self.strategy = strategy
        self.latency = latency if latency is not None else StageLatency()
        self.account = account

    @contextmanager
    def _holding(self, signal_id: str | None = None) -> Iterator[None]:
        if self.account is None:
            yield
            return
        order_id = None if signal_id is None else client_order_id(signal_id)
        with self.account.hold_account(signal_id, order_id) as behind:
            if behind:
                self.service.reload()
            yield

    def on_prediction(self, event: Event) -> None:
        if not isinstance(event, PredictionCompleted):
            raise TypeError(f"expected PredictionCompleted, got {type(event).__name__}")
        with self._holding(event.event_id):
            result = self.service.on_signal(event, self.strategy)
        if event.stages and not result.duplicate:
            # the chain ends here: decided, and acknowledged by the broker when it was an order
            self.latency.record(stamp(event.stages, "execution"))

    def on_bar_request(self, event: Event) -> None:
        if not isinstance(event, PreprocessDataRequested):
            raise TypeError(f"expected PreprocessDataRequested, got {type(event).__name__}")
        if event.mode is not ProcessingMode.ONLINE or not event.bars:
            return
        symbol, tf = event.symbols[0], event.timeframe
        bars = [
            Bar(symbol, tf, b.open_time, b.open, b.high, b.low, b.close, b.volume)
            for b in event.bars
        ]
        with self._holding():
            for bar in bars:
                self.service.on_bar(bar)
