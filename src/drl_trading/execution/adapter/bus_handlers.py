"""Bus entry points of execution: signals from ``completed.predict``, prices from the live bars.

Execution follows the market through the online ``requested.preprocess-data`` events (they carry
each new bar of the data timeframe, ``event.timeframe``): the paper broker fills pending orders
at the next bar's open and the risk engine marks the book at every close. A signal for bar t
therefore fills at the open of the first data bar after t's close, the training environment's
timing.
"""

from __future__ import annotations

from drl_trading.common.domain import Bar
from drl_trading.common.events import (
    Event,
    PredictionCompleted,
    PreprocessDataRequested,
    ProcessingMode,
)
from drl_trading.common.latency import StageLatency, stamp
from drl_trading.execution.core.service import ExecutionService
from drl_trading.strategy.api import Strategy


class ExecutionHandlers:
    def __init__(
        self, service: ExecutionService, strategy: Strategy, latency: StageLatency | None = None
    ) -> None:
        self.service = service
        self.strategy = strategy
        self.latency = latency if latency is not None else StageLatency()

    def on_prediction(self, event: Event) -> None:
        if not isinstance(event, PredictionCompleted):
            raise TypeError(f"expected PredictionCompleted, got {type(event).__name__}")
        result = self.service.on_signal(event, self.strategy)
        if event.stages and not result.duplicate:
            # the chain ends here: decided, and acknowledged by the broker when it was an order
            self.latency.record(stamp(event.stages, "execution"))

    def on_bar_request(self, event: Event) -> None:
        if not isinstance(event, PreprocessDataRequested):
            raise TypeError(f"expected PreprocessDataRequested, got {type(event).__name__}")
        if event.mode is not ProcessingMode.ONLINE or not event.bars:
            return
        symbol = event.symbols[0]
        for b in event.bars:
            self.service.on_bar(
                Bar(symbol, event.timeframe, b.open_time, b.open, b.high, b.low, b.close, b.volume)
            )
