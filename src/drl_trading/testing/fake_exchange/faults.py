"""Faults a test injects into the fake exchange between calls; each counter is consumed by the
requests it hits, so ``faults.rate_limit = 2`` answers exactly the next two requests with 429."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

Rejectable = Literal["insufficient_balance", "min_notional", "lot_size"]


@dataclass(slots=True)
class Faults:
    """What goes wrong, and how often.

    - ``latency_s``: seconds added before every response.
    - ``timeout_after_accept``: the next N ``POST /api/v3/order`` are executed (the order rests on
      the exchange) but the response is held ``hold_s`` seconds, past any sane client timeout.
    - ``drop_after_accept``: the next N order POSTs are executed, then the connection is closed
      without a response (ccxt raises NetworkError rather than RequestTimeout).
    - ``rate_limit`` / ``ban``: the next N requests get HTTP 429 / 418 with ``Retry-After:
      retry_after_s`` and Binance's -1003 body; nothing is executed.
    - ``server_errors``: the next N requests get ``server_error_status`` (5xx) with a non-JSON body,
      as Binance's gateway sends; nothing is executed.
    - ``drop_websocket``: the next N kline-stream subscribers a push reaches have their
      connection aborted instead (no close frame, the push is lost to them); ccxt.pro raises
      NetworkError in their ``watch_*`` and reconnects on the next call.
    - ``user_stream_delay_s``: seconds each user-data push (execution report) waits before it
      is sent, as a push lags its order's REST answer on a real network; pushes keep their order.
    - ``reject_next``: the next order POST is refused with that Binance rejection whatever the
      account holds; reset to None once used.

    Hooks for tests that act at the moment an order is executed (not faults, but consumed at the
    same point of the order POST, under the exchange's lock):

    - ``withheld``: set when an order POST whose response is held or dropped has been executed:
      the cue that the order is on the exchange while its client still waits (e.g. to kill it
      then). Clear it to wait for the next one.
    - ``on_accept``: called under the exchange's lock right after every order POST is executed,
      before its response (and before a held or dropped delivery); `FakeExchange.fill_on_arrival`
      sets it. It must not call the `FakeExchange` (its lock is held).
    """

    latency_s: float = 0.0
    timeout_after_accept: int = 0
    hold_s: float = 10.0
    drop_after_accept: int = 0
    rate_limit: int = 0
    ban: int = 0
    retry_after_s: int = 1
    server_errors: int = 0
    server_error_status: int = 503
    reject_next: Rejectable | None = None
    drop_websocket: int = 0
    user_stream_delay_s: float = 0.0
    withheld: threading.Event = field(default_factory=threading.Event)
    on_accept: Callable[[], None] | None = None

    def take_gateway_fault(self) -> str | None:
        """Consume the first pending request-level fault: "ban", "rate_limit", "server_error"."""
        if self.ban > 0:
            self.ban -= 1
            return "ban"
        if self.rate_limit > 0:
            self.rate_limit -= 1
            return "rate_limit"
        if self.server_errors > 0:
            self.server_errors -= 1
            return "server_error"
        return None

    def take_delivery_fault(self) -> str | None:
        """Consume the first pending fault of an executed order POST: "hold" or "drop" (then
        ``withheld`` is set); ``on_accept`` runs first."""
        if self.on_accept is not None:
            self.on_accept()
        if self.timeout_after_accept > 0:
            self.timeout_after_accept -= 1
            self.withheld.set()
            return "hold"
        if self.drop_after_accept > 0:
            self.drop_after_accept -= 1
            self.withheld.set()
            return "drop"
        return None

    def take_rejection(self) -> Rejectable | None:
        reason, self.reject_next = self.reject_next, None
        return reason
