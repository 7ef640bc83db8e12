"""How a bus retries a failing handler: the same rules on every bus, so handlers cannot tell them
apart.

* A failure is retried with exponential backoff up to ``max_attempts``; then the message is
  dead-lettered. An error whose ``retryable`` attribute is false (a request for data that does
  not exist) is dead-lettered at once: repeating it cannot succeed.
* An error whose ``unavailable`` attribute is true says a dependency is down (a database
  restarting), not that the message is bad: it is retried without counting attempts, with
  backoff capped at ``unavailable_backoff_max_s``, and never dead-lettered. After
  ``unavailable_timeout_s`` of waiting the error propagates out of the bus's poll: the message
  stays uncommitted and the service stops rather than drop or park good messages.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import structlog

from drl_trading.common.events import Event
from drl_trading.common.ports import Handler

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 3
    backoff_s: float = 0.2
    unavailable_timeout_s: float = 240.0
    unavailable_backoff_max_s: float = 5.0


@dataclass(frozen=True, slots=True)
class Failure:
    """The handler gave up on the message: dead-letter it with this error."""

    error: Exception
    attempts: int


def handle_with_retries(
    handler: Handler,
    event: Event,
    policy: RetryPolicy,
    sleep: Callable[[float], None],
    on_error: Callable[[Exception], None] = lambda exc: None,
) -> Failure | None:
    """Run ``handler`` under ``policy``; None when it succeeded, the `Failure` to dead-letter
    otherwise; raises the dependency's error when it stayed unavailable too long."""
    attempt = 0
    waited = 0.0  # time slept for an unavailable dependency (the sleep's own clock)
    while True:
        attempt += 1
        try:
            handler(event)
        except Exception as exc:
            on_error(exc)
            if getattr(exc, "unavailable", False):
                if waited >= policy.unavailable_timeout_s:
                    log.error("dependency still unavailable; giving up", error=repr(exc))
                    raise
                delay = min(
                    policy.unavailable_backoff_max_s,
                    max(policy.backoff_s, 0.05) * 2 ** min(attempt - 1, 10),
                )
                log.warning("dependency unavailable; retrying", error=repr(exc), delay_s=delay)
                sleep(delay)
                waited += delay
                continue
            log.warning(
                "handler failed", attempt=attempt, max_attempts=policy.max_attempts, error=repr(exc)
            )
            if attempt >= policy.max_attempts or not getattr(exc, "retryable", True):
                return Failure(exc, attempt)
            if policy.backoff_s > 0:
                sleep(policy.backoff_s * 2 ** (attempt - 1))
        else:
            if waited:
                log.info("dependency back", waited_s=round(waited, 2))
            return None
