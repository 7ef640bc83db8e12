"""In-memory message bus that behaves like the Kafka adapter: partitioned topic logs, consumer-group
offsets committed only after the handler succeeded, bounded retries, then ``dlq.<topic>`` plus an
``error.<group>`` event.

Retries follow `drl_trading.common.retry` (the Kafka bus's rules): a ``retryable`` false error
skips them, an ``unavailable`` dependency is waited for and never dead-lettered.

Messages are stored encoded (the same bytes Kafka would carry), so an event that cannot be
serialised fails here exactly as it would in distributed mode. Delivery is deterministic: each
`poll` sweep hands at most one message per (group, topic, partition) to its handler, repeating
until nothing is pending, which interleaves consumers the way concurrent ones would while keeping
per-key order.

Topics named ``deferred`` (the topology's work off the bar-close → order path: storing resampled
bars) are delivered only when no other topic has a message pending, one sweep at a time: in one
process the sweep would otherwise run them between a bar's features and its order, where a
distributed deployment runs them in a process of their own. Per-key order within each topic is
kept either way.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import structlog

from drl_trading.common.events import (
    Event,
    EventDecodeError,
    Topic,
    dead_letter_events,
    decode,
    encode,
    headers_for,
)
from drl_trading.common.ports import Handler
from drl_trading.common.retry import RetryPolicy, handle_with_retries

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class _Record:
    key: str
    payload: bytes
    headers: dict[str, str]


def partition_for(key: str, partitions: int) -> int:
    """Stable key -> partition mapping (the same on every run and process)."""
    return zlib.crc32(key.encode("utf-8")) % partitions


class InMemoryBus:
    def __init__(
        self,
        partitions: int = 4,
        max_attempts: int = 3,
        retry_backoff_s: float = 0.0,
        sleep: Callable[[float], None] = time.sleep,
        unavailable_timeout_s: float = 240.0,
        deferred: Iterable[str] = (),
    ) -> None:
        if partitions < 1 or max_attempts < 1:
            raise ValueError("partitions and max_attempts must be >= 1")
        self._partitions = partitions
        self._deferred = frozenset(deferred)
        self._policy = RetryPolicy(max_attempts, retry_backoff_s, unavailable_timeout_s)
        self._sleep = sleep
        self._logs: dict[str, list[list[_Record]]] = {}
        self._handlers: dict[tuple[str, str], Handler] = {}
        self._offsets: dict[tuple[str, str, int], int] = {}
        self._lock = threading.RLock()
        self._closed = False
        self.stats: Counter[str] = Counter()

    # -- producer -------------------------------------------------------------------------------
    def publish(self, topic: str, event: Event, *, key: str) -> None:
        self.publish_raw(topic, encode(event), key=key, headers=headers_for(event))

    def publish_raw(
        self, topic: str, payload: bytes, *, key: str, headers: dict[str, str] | None = None
    ) -> None:
        """Append bytes as they are; tests use this to inject malformed messages."""
        with self._lock:
            if self._closed:
                raise RuntimeError("bus is closed")
            log_ = self._topic(topic)
            log_[partition_for(key, self._partitions)].append(
                _Record(key=key, payload=payload, headers=dict(headers or {}))
            )
            self.stats[f"published:{topic}"] += 1

    # -- consumer -------------------------------------------------------------------------------
    def subscribe(self, topic: str, *, group: str, handler: Handler) -> None:
        with self._lock:
            if (group, topic) in self._handlers:
                raise ValueError(f"group {group!r} already subscribes to {topic!r}")
            self._topic(topic)
            self._handlers[(group, topic)] = handler
            for p in range(self._partitions):
                self._offsets.setdefault((group, topic, p), 0)

    def poll(self, max_messages: int | None = None, timeout: float | None = None) -> int:
        """Nothing ever arrives later here, so ``timeout`` has nothing to wait for. Sweeps the
        topics on the path until none has a message, then one sweep of the deferred topics,
        and again, until nothing is pending or ``max_messages`` were handled."""
        done = 0
        with self._lock:
            while max_messages is None or done < max_messages:
                subs = list(self._handlers.items())
                done, progressed = self._sweep(
                    [s for s in subs if s[0][1] not in self._deferred], done, max_messages
                )
                if not progressed and self._deferred:
                    done, progressed = self._sweep(
                        [s for s in subs if s[0][1] in self._deferred], done, max_messages
                    )
                if not progressed:
                    break
        return done

    def _sweep(
        self,
        subs: list[tuple[tuple[str, str], Handler]],
        done: int,
        max_messages: int | None,
    ) -> tuple[int, bool]:
        """At most one message per (group, topic, partition) of ``subs``; returns the count
        handled so far and whether this sweep handled any."""
        progressed = False
        for (group, topic), handler in subs:
            for p, records in enumerate(self._logs[topic]):
                if max_messages is not None and done >= max_messages:
                    return done, progressed
                offset = self._offsets[(group, topic, p)]
                if offset >= len(records):
                    continue
                self._deliver(group, topic, records[offset], handler)
                self._offsets[(group, topic, p)] = offset + 1
                done += 1
                progressed = True
        return done, progressed

    def pending(self, group: str | None = None) -> int:
        """Messages not yet committed, for one group or all of them."""
        with self._lock:
            total = 0
            for (g, topic, p), offset in self._offsets.items():
                if group is None or g == group:
                    total += len(self._logs[topic][p]) - offset
            return total

    def rewind(self, group: str, topic: str) -> None:
        """Move a group back to the start of a topic, as a consumer restarted before its commit
        would see it; lets tests check that handlers are idempotent under redelivery."""
        with self._lock:
            for p in range(self._partitions):
                self._offsets[(group, topic, p)] = 0

    def messages(self, topic: str) -> list[Event]:
        """Every decodable event ever published on ``topic``, partition by partition."""
        with self._lock:
            out: list[Event] = []
            for records in self._logs.get(topic, []):
                for record in records:
                    try:
                        out.append(decode(record.payload))
                    except EventDecodeError:
                        continue
            return out

    def topics(self) -> list[str]:
        with self._lock:
            return sorted(self._logs)

    def close(self) -> None:
        with self._lock:
            self._closed = True

    # -- internals ------------------------------------------------------------------------------
    def _topic(self, topic: str) -> list[list[_Record]]:
        if topic not in self._logs:
            self._logs[topic] = [[] for _ in range(self._partitions)]
        return self._logs[topic]

    def _deliver(self, group: str, topic: str, record: _Record, handler: Handler) -> None:
        try:
            event = decode(record.payload)
        except EventDecodeError as exc:
            self._dead_letter(group, topic, record, None, exc, attempts=1)
            return
        bound = structlog.contextvars.bound_contextvars(
            correlation_id=event.correlation_id, topic=topic, consumer=group
        )
        with bound:
            failure = handle_with_retries(
                handler,
                event,
                self._policy,
                self._sleep,
                lambda exc: self.stats.update([f"failed:{group}:{topic}"]),
            )
            if failure is None:
                self.stats[f"handled:{group}:{topic}"] += 1
            else:
                self._dead_letter(
                    group, topic, record, event, failure.error, attempts=failure.attempts
                )

    def _dead_letter(
        self,
        group: str,
        topic: str,
        record: _Record,
        event: Event | None,
        exc: Exception,
        attempts: int,
    ) -> None:
        letter, error = dead_letter_events(
            service=group,
            topic=topic,
            key=record.key,
            payload=record.payload,
            headers=record.headers,
            event=event,
            error=exc,
            attempts=attempts,
        )
        self.publish(Topic.dlq(topic), letter, key=record.key)
        self.publish(Topic.error(group), error, key=record.key)
        self.stats[f"dead_lettered:{topic}"] += 1
        log.error("message dead-lettered", dlq=Topic.dlq(topic), error=str(exc), attempts=attempts)
