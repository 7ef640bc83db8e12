"""Faults a test injects into the fake exchange between calls; each counter is consumed by the
requests it hits, so ``faults.rate_limit = 2`` answers exactly the next two requests with 429."""

from __future__ import annotations

from dataclasses import dataclass
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
    - ``reject_next``: the next order POST is refused with that Binance rejection whatever the
      account holds; reset to None once used.
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
        """Consume the first pending fault of an executed order POST: "hold" or "drop"."""
        if self.timeout_after_accept > 0:
            self.timeout_after_accept -= 1
            return "hold"
        if self.drop_after_accept > 0:
            self.drop_after_accept -= 1
            return "drop"
        return None

    def take_rejection(self) -> Rejectable | None:
        reason, self.reject_next = self.reject_next, None
        return reason
