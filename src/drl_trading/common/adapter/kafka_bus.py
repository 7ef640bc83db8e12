"""The message-bus port on Apache Kafka (confluent-kafka / librdkafka).

Semantics are the in-memory bus's, so handlers cannot tell them apart:

* Producers key every message (the symbol), so one key's events stay in one partition, in order.
* One consumer per group (the service) in each process; several processes of one service share
  the group and split its partitions (the symbols) between them. Offsets are committed only after
  the handler succeeded or the message was dead-lettered: at-least-once, with idempotent handlers
  a crash neither loses nor doubles an effect.
* Rebalances are incremental (``cooperative-sticky``): when an instance joins or leaves, only the
  partitions that move change hands. Before a partition is revoked its handled offsets are
  committed, so the next owner resumes right after them; a message fetched for a partition that
  was revoked meanwhile is left to the next owner, unhandled. Listeners (`on_rebalance`) learn
  which partitions this process gained or lost, the keys (symbols) it had handled on the lost
  ones, whose per-symbol state another instance now updates, and those it handled on the
  partitions it keeps, the only ones whose state here is current.
* A poison message is retried with backoff, then moved to ``dlq.<topic>`` with the error and its
  original headers, an `ErrorOccurred` goes to ``error.<group>``, and its offset is committed:
  it never blocks its partition.
* Topics are created at start (`ensure_topics`, and on first use) with the configured partitions
  and replication factor; ``namespace`` prefixes every topic and group name, so several
  deployments (or test runs) can share a cluster.
* What a handler publishes is sent at once (``linger.ms`` 0) and waited for (the broker's
  acknowledgement, acks=all) once, after the handler, before its input's offset is committed: a
  message is never committed before its effects are durable, and a handler that publishes two
  events does not wait a round trip between them. The handled message's offset is then stored,
  and librdkafka commits the stored offsets every ``commit_interval_ms`` (100 ms) in the
  background: one commit request per interval instead of one per message, and a crash redelivers
  at most that interval's messages, which idempotent handlers absorb; `close` commits
  synchronously. Outside a handler (ingest's live bars) `publish` returns once the
  broker acknowledged. A message the broker never acknowledged (``message.timeout.ms``) fails
  the publish, or the poll that handled its cause, with `KafkaDeliveryError`: the input stays
  uncommitted and is redelivered to the restarted service.
* A broker restart is ridden out by librdkafka: producers queue and resend (idempotently),
  consumers reconnect and resume from the committed offsets.
* Retries follow `drl_trading.common.retry`: a handler failing because a dependency is
  unavailable (a database restarting) is retried without dead-lettering, for up to
  ``unavailable_timeout_s`` (below the consumer's ``max.poll.interval.ms``, so the consumer keeps
  its partitions); past that `poll` raises and the service stops, uncommitted.
* `close` stops consuming, lets the handler in flight finish (handling is synchronous inside
  `poll`), commits and flushes the producer.

Low-latency defaults: ``linger.ms`` 0 (send at once), ``fetch.wait.max.ms`` 5, a short poll
timeout and Nagle's algorithm off (with it, small messages waited for delayed ACKs: a 40 ms tail
on the cross-process latency); throughput-minded deployments raise ``linger_ms`` and
``fetch_wait_max_ms``.
Credentials come from `KafkaSettings` (environment or files) and are never logged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Producer,
)
from confluent_kafka import TopicPartition as _TopicPartition
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    NewTopic,
    OffsetSpec,
)

from drl_trading.common.errors import BusConnectionError
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


class KafkaDeliveryError(KafkaException):
    """The broker did not acknowledge a published message within ``message.timeout.ms``."""


_AUTH_ERRORS = frozenset({KafkaError._AUTHENTICATION, KafkaError._SSL})
"""Client-side errors that no wait cures: the credentials or the TLS set-up must change."""
_CLIENT_LOG = logging.getLogger("drl_trading.kafka.librdkafka")


class ClientLog:
    """librdkafka's own log and error callbacks (``logger`` and ``error_cb``), served by the
    clients' polls: its lines go to the log file at DEBUG instead of the console (a failing
    connection repeats one line per client and retry, hundreds of them), and the last error is
    kept so that a failure can be summarised on one line."""

    def __init__(self) -> None:
        self.last_error: KafkaError | None = None

    def log(self, level: int, fmt: str, *args: object) -> None:
        _CLIENT_LOG.debug(fmt, *args)

    def on_error(self, error: KafkaError) -> None:
        _CLIENT_LOG.debug("client error: %s", error)
        if error.code() == KafkaError._ALL_BROKERS_DOWN and self.last_error is not None:
            return  # the cause (refused, unresolved, authentication) says more
        self.last_error = error

    @property
    def authentication_failed(self) -> bool:
        return self.last_error is not None and self.last_error.code() in _AUTH_ERRORS

    def reason(self, fallback: KafkaException | None) -> str:
        """The most telling error seen: the client's own (authentication, transport) over the
        request's (which only says that metadata could not be fetched)."""
        error = self.last_error
        if error is None and fallback is not None and fallback.args:
            first = fallback.args[0]
            error = first if isinstance(first, KafkaError) else None
        if error is None:
            return "no answer" if fallback is None else str(fallback)
        return str(error.str())


@dataclass(frozen=True, slots=True)
class Rebalance:
    """What one rebalance of a consumer group changed for this process's consumer."""

    group: str
    gained: frozenset[tuple[str, int]]
    """(logical topic, partition) now assigned to this process."""
    lost: frozenset[tuple[str, int]]
    """(logical topic, partition) revoked from (or lost by) this process."""
    lost_keys: frozenset[str]
    """Message keys (symbols) this process handled on the lost partitions: another instance
    handles them from now on, so state kept for them here is stale the moment it moves back."""
    held_keys: frozenset[str]
    """Keys this process handled on the partitions it still holds: the only ones whose state
    here is known to be current. State kept for any other key (built by a request that named
    several symbols, or for a gained partition) may miss what another instance handled."""


RebalanceListener = Callable[[Rebalance], None]


@dataclass(frozen=True, slots=True)
class KafkaOptions:
    """Client settings the adapter needs; `drl_trading.app.settings.KafkaSettings` builds it."""

    bootstrap_servers: str = "127.0.0.1:9092"
    namespace: str = ""
    partitions: int = 4
    replication_factor: int = 1
    max_attempts: int = 3
    retry_backoff_s: float = 0.2
    linger_ms: int = 0
    fetch_wait_max_ms: int = 5
    poll_timeout_s: float = 0.05
    client_id: str = "drl-trading"
    max_poll_interval_ms: int = 300_000
    commit_interval_ms: int = 100
    message_timeout_ms: int = 120_000
    """How long the producer keeps resending a message (broker restarts) before it fails."""
    unavailable_timeout_s: float = 240.0
    unavailable_backoff_max_s: float = 5.0
    security: Mapping[str, str] | None = None
    """librdkafka security settings (security.protocol, sasl.*, ssl.*), secrets included."""
    connect_timeout_s: float = 10.0
    """How long the first metadata request waits for the brokers (seconds) before
    `BusConnectionError`; refused credentials fail at once."""


class KafkaBus:
    def __init__(
        self, options: KafkaOptions, *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.options = options
        self._sleep = sleep
        self._policy = RetryPolicy(
            options.max_attempts,
            options.retry_backoff_s,
            options.unavailable_timeout_s,
            options.unavailable_backoff_max_s,
        )
        if options.unavailable_timeout_s * 1000 >= options.max_poll_interval_ms:
            raise ValueError("unavailable_timeout_s must stay below max_poll_interval_ms")
        self._client_log = ClientLog()
        self._common: dict[str, Any] = {
            "bootstrap.servers": options.bootstrap_servers,
            "client.id": options.client_id,
            # small messages must not wait for Nagle's algorithm (with delayed ACKs, up to 40 ms)
            "socket.nagle.disable": True,
            "logger": self._client_log,
            "error_cb": self._client_log.on_error,
            **dict(options.security or {}),
        }
        self._admin = AdminClient(self._common)
        self._producer = Producer(
            {
                **self._common,
                "linger.ms": options.linger_ms,
                "enable.idempotence": True,  # no duplicates from the producer's own retries
                "acks": "all",
                "message.timeout.ms": options.message_timeout_ms,
            }
        )
        self._undelivered: list[str] = []
        self._handling = 0  # handlers running: their publishes are flushed after them
        self._consumers: dict[str, Consumer] = {}
        self._handlers: dict[tuple[str, str], Handler] = {}
        self._topics: dict[str, list[str]] = {}  # group -> wire topics
        self._assigned: dict[str, set[tuple[str, int]]] = {}  # group -> (wire topic, partition)
        self._keys: dict[str, dict[tuple[str, int], set[str]]] = {}  # keys handled, by partition
        self._listeners: dict[str, list[RebalanceListener]] = {}
        self._partitions: dict[str, list[int]] = {}  # wire topic -> partitions (`group_lag`)
        self._known: set[str] = set()
        self._closed = False
        self.stats: dict[str, int] = {}

    # -- names ----------------------------------------------------------------------------------
    def wire(self, topic: str) -> str:
        return self.options.namespace + topic

    def _logical(self, wire_topic: str) -> str:
        ns = self.options.namespace
        return wire_topic[len(ns) :] if ns and wire_topic.startswith(ns) else wire_topic

    def _group_id(self, group: str) -> str:
        return self.options.namespace + group

    # -- port -----------------------------------------------------------------------------------
    def publish(self, topic: str, event: Event, *, key: str) -> None:
        self._produce(topic, encode(event), key, headers_for(event))

    def publish_raw(
        self, topic: str, payload: bytes, *, key: str, headers: dict[str, str] | None = None
    ) -> None:
        """Put arbitrary bytes on a topic (tests of malformed messages, replays of a DLQ)."""
        self._produce(topic, payload, key, headers or {})

    def subscribe(self, topic: str, *, group: str, handler: Handler) -> None:
        if (group, topic) in self._handlers:
            raise ValueError(f"group {group!r} already subscribes to {topic!r}")
        self.ensure_topics([topic, Topic.dlq(topic), Topic.error(group)])
        self._handlers[(group, topic)] = handler
        self._topics.setdefault(group, []).append(self.wire(topic))
        consumer = self._consumers.get(group)
        if consumer is None:
            consumer = Consumer(
                {
                    **self._common,
                    "group.id": self._group_id(group),
                    # at-least-once: an offset is stored only after its message was handled
                    # (or dead-lettered); librdkafka commits what is stored, periodically
                    "enable.auto.commit": True,
                    "enable.auto.offset.store": False,
                    "auto.commit.interval.ms": self.options.commit_interval_ms,
                    "auto.offset.reset": "earliest",
                    "fetch.wait.max.ms": self.options.fetch_wait_max_ms,
                    "session.timeout.ms": 10_000,
                    "heartbeat.interval.ms": 1_000,
                    "max.poll.interval.ms": self.options.max_poll_interval_ms,
                    # a topic another service creates later is picked up within a second
                    "topic.metadata.refresh.interval.ms": 1_000,
                    # instances of a service share the group: when one joins or leaves, only
                    # the partitions that move are revoked, the others keep being consumed
                    "partition.assignment.strategy": "cooperative-sticky",
                }
            )
            self._consumers[group] = consumer
            self._assigned[group] = set()
            self._keys[group] = {}
        consumer.subscribe(
            self._topics[group],
            on_assign=lambda c, parts: self._on_assign(group, parts),
            on_revoke=lambda c, parts: self._on_revoke(group, c, parts, committable=True),
            on_lost=lambda c, parts: self._on_revoke(group, c, parts, committable=False),
        )

    def on_rebalance(self, group: str, listener: RebalanceListener) -> None:
        """Call ``listener`` whenever ``group``'s consumer in this process gains or loses
        partitions (another instance of the service joined or left the group). It runs inside
        the poll, between two messages, before any message of a gained partition is handled."""
        self._listeners.setdefault(group, []).append(listener)

    def assigned(self, group: str) -> int:
        """How many partitions ``group``'s consumer holds now (from the rebalance callbacks: no
        broker call, safe from any thread)."""
        return len(self._assigned.get(group, ()))

    def group_members(self, group: str, timeout: float = 10.0) -> int:
        """How many consumers (service instances) are members of ``group`` now, per the
        broker's group coordinator."""
        gid = self._group_id(group)
        described = self._admin.describe_consumer_groups([gid], request_timeout=timeout)
        return len(described[gid].result(timeout=timeout).members)

    def poll(self, max_messages: int | None = None, timeout: float | None = None) -> int:
        """Handle what arrives within ``timeout`` (the configured poll timeout by default) on
        each group's consumer; returns how many messages were handled or dead-lettered."""
        if self._closed:
            return 0
        wait = self.options.poll_timeout_s if timeout is None else timeout
        done = 0
        for group, consumer in list(self._consumers.items()):
            budget = 500 if max_messages is None else max_messages - done
            if budget <= 0:
                break
            # what is already fetched, without waiting; only an empty consumer waits, and then
            # for the first message alone (consume(n, timeout) would wait for n messages or the
            # whole timeout: tens of milliseconds on every hop of a quiet stream)
            messages = consumer.consume(num_messages=budget, timeout=0)
            if not messages and wait > 0:
                first = consumer.poll(wait)
                if first is not None:
                    messages = [first, *consumer.consume(num_messages=budget - 1, timeout=0)]
            assigned = self._assigned[group]
            for message in messages:
                err = message.error()
                if err is not None:
                    if err.code() != KafkaError._PARTITION_EOF:
                        log.warning("kafka consumer error", group=group, error=str(err))
                    continue
                if (message.topic(), message.partition()) not in assigned:
                    continue  # revoked since it was fetched: its next owner handles it
                self._deliver(group, consumer, message)
                done += 1
        return done

    def drain(self, idle_s: float = 0.5, max_s: float = 60.0) -> int:
        """Poll until every consumer has joined its group and nothing arrived for ``idle_s``
        (tests, batch tools); returns the messages handled."""
        done = 0
        started = last = time.monotonic()
        while time.monotonic() - started < max_s:
            n = self.poll(timeout=0.1)
            now = time.monotonic()
            if n:
                done += n
                last = now
            if not self.joined():
                last = now  # still joining: fetching has not started, this is not idleness
            elif now - last >= idle_s:
                break
        return done

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._flush()
        for group, consumer in self._consumers.items():
            if consumer.assignment():  # the stored offsets not yet committed periodically
                self._commit_stored(group, consumer)
            consumer.close()  # leaves the group at once, so a restarted service takes over

    # -- administration -------------------------------------------------------------------------
    def ensure_topics(self, topics: Iterable[str]) -> None:
        """Create the topics that do not exist yet (idempotent; cached per process)."""
        wanted = [self.wire(t) for t in topics if self.wire(t) not in self._known]
        if not wanted:
            return
        existing = set(self._cluster_topics())
        missing = [t for t in dict.fromkeys(wanted) if t not in existing]
        if missing:
            futures = self._admin.create_topics(
                [
                    NewTopic(
                        t,
                        num_partitions=self.options.partitions,
                        replication_factor=self.options.replication_factor,
                    )
                    for t in missing
                ],
                operation_timeout=10,
            )
            for name, future in futures.items():
                try:
                    future.result()
                    log.info("kafka topic created", topic=name)
                except KafkaException as exc:
                    if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                        raise
            # creation propagates to the brokers' metadata asynchronously: wait until it shows,
            # so that a consumer subscribing next finds its partitions at once
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                listed = self._admin.list_topics(timeout=10).topics
                if all(t in listed and not listed[t].error for t in missing):
                    break
                time.sleep(0.05)
        self._known.update(wanted)

    def _cluster_topics(self) -> dict[str, Any]:
        """The cluster's topics (metadata), or `BusConnectionError` naming the brokers and the
        cause: at once when the brokers refuse the credentials or the TLS handshake, after
        ``connect_timeout_s`` when they do not answer. Asked in short slices so that the
        clients' error callbacks are served between them."""
        deadline = time.monotonic() + self.options.connect_timeout_s
        self._client_log.last_error = None  # a past error says nothing about the brokers now
        while True:
            remaining = deadline - time.monotonic()
            try:
                topics: dict[str, Any] = self._admin.list_topics(
                    timeout=max(min(remaining, 0.5), 0.05)
                ).topics
                return topics
            except KafkaException as exc:
                failure = exc
            self._admin.poll(0)  # serve the error and log callbacks of the failed attempt
            self._producer.poll(0)
            if self._client_log.authentication_failed or time.monotonic() >= deadline:
                raise BusConnectionError(
                    self.options.bootstrap_servers,
                    self._client_log.reason(failure),
                    authentication=self._client_log.authentication_failed,
                ) from failure

    def drop_namespace(self) -> int:
        """Delete every topic of this bus's namespace (tests, benchmarks, a retired deployment):
        a broker keeping thousands of idle partitions answers metadata requests slower and
        spends its background work on them. Refuses without a namespace (that would be the
        whole cluster); returns how many topics were deleted."""
        ns = self.options.namespace
        if not ns:
            raise ValueError("no namespace: refusing to delete every topic of the cluster")
        names = [t for t in self._admin.list_topics(timeout=10).topics if t.startswith(ns)]
        if names:
            for name, future in self._admin.delete_topics(names, operation_timeout=30).items():
                try:
                    future.result()
                except KafkaException as exc:
                    if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                        raise
                log.info("kafka topic deleted", topic=name)
        self._known.clear()
        return len(names)

    def messages(self, topic: str, timeout: float = 10.0) -> list[Event]:
        """Every decodable event on ``topic`` so far, partition by partition (tests, tools)."""
        wire = self.wire(topic)
        reader = Consumer(
            {**self._common, "group.id": f"{wire}.reader", "enable.auto.commit": False}
        )
        try:
            meta = reader.list_topics(wire, timeout=timeout).topics.get(wire)
            if meta is None or meta.error is not None:
                return []
            out: list[Event] = []
            for p in sorted(meta.partitions):
                low, high = reader.get_watermark_offsets(_TopicPartition(wire, p), timeout=timeout)
                if high <= low:
                    continue
                reader.assign([_TopicPartition(wire, p, low)])
                seen = low
                deadline = time.monotonic() + timeout
                while seen < high and time.monotonic() < deadline:
                    message = reader.poll(0.2)
                    if message is None or message.error() is not None:
                        continue
                    seen = (message.offset() or seen) + 1
                    try:
                        out.append(decode(message.value() or b""))
                    except EventDecodeError:
                        continue
            return out
        finally:
            reader.close()

    def pending(self, group: str | None = None) -> int:
        """Messages not yet committed (consumer lag), for one group or all of them."""
        total = 0
        for g, consumer in self._consumers.items():
            if group is not None and g != group:
                continue
            for wire in self._topics[g]:
                meta = consumer.list_topics(wire, timeout=10).topics[wire]
                parts = [_TopicPartition(wire, p) for p in meta.partitions]
                committed = consumer.committed(parts, timeout=10)
                for tp in committed:
                    _, high = consumer.get_watermark_offsets(tp, timeout=10)
                    total += high - max(tp.offset, 0)
        return total

    def group_lag(self, group: str, topics: Iterable[str], timeout: float = 10.0) -> int:
        """Messages on ``topics`` that ``group`` has not committed yet, whichever processes its
        instances run in (the group coordinator's committed offsets against the partitions'
        ends): 0 once the service handled everything published so far. For tests, benchmarks
        and tools: two or three broker requests per call (partitions are looked up once)."""
        parts = [tp for t in topics for tp in self._partitions_of(self.wire(t), timeout)]
        if not parts:
            return 0
        gid = self._group_id(group)
        request = ConsumerGroupTopicPartitions(gid, parts)
        answer = self._admin.list_consumer_group_offsets([request], request_timeout=timeout)
        stored = answer[gid].result(timeout=timeout).topic_partitions
        committed = {(tp.topic, tp.partition): tp.offset for tp in stored}
        ends = self._offsets(parts, OffsetSpec.latest(), timeout)  # type: ignore[no-untyped-call]
        never = [tp for tp in parts if committed.get((tp.topic, tp.partition), -1) < 0]
        earliest = OffsetSpec.earliest()  # type: ignore[no-untyped-call]
        starts = self._offsets(never, earliest, timeout) if never else {}
        total = 0
        for key, end in ends.items():
            offset = committed.get(key, -1)
            total += max(end - (offset if offset >= 0 else starts.get(key, 0)), 0)
        return total

    def _partitions_of(self, wire: str, timeout: float) -> list[_TopicPartition]:
        known = self._partitions.get(wire)
        if known is None:
            meta = self._admin.list_topics(wire, timeout=timeout).topics.get(wire)
            if meta is None or meta.error is not None:
                return []
            known = self._partitions[wire] = sorted(meta.partitions)
        return [_TopicPartition(wire, p) for p in known]

    def _offsets(
        self, parts: list[_TopicPartition], spec: Any, timeout: float
    ) -> dict[tuple[str, int], int]:
        """Each partition's offset at ``spec`` (earliest, latest), in one request."""
        futures = self._admin.list_offsets({tp: spec for tp in parts}, request_timeout=timeout)
        return {(tp.topic, tp.partition): f.result().offset for tp, f in futures.items()}

    def joined(self) -> bool:
        """Every consumer has partitions assigned: the service receives its messages."""
        return all(c.assignment() for c in self._consumers.values())

    def lag(self, group: str) -> int:
        """Messages behind the end of the assigned partitions, from the consumer's own state
        (position and the watermarks of its last fetch): no broker round trip, for metrics."""
        consumer = self._consumers.get(group)
        if consumer is None:
            return 0
        total = 0
        for tp in consumer.position(consumer.assignment()):
            _, high = consumer.get_watermark_offsets(tp, cached=True)
            if high >= 0 and tp.offset >= 0:
                total += max(high - tp.offset, 0)
        return total

    def rewind(self, group: str, topic: str) -> None:
        """Move a group back to the start of a topic (redelivery, as after a crash)."""
        consumer = self._consumers[group]
        wire = self.wire(topic)
        meta = consumer.list_topics(wire, timeout=10).topics[wire]
        parts = [_TopicPartition(wire, p, OFFSET_BEGINNING) for p in meta.partitions]
        assigned = {(tp.topic, tp.partition) for tp in consumer.assignment()}
        for tp in parts:
            if (tp.topic, tp.partition) in assigned:
                consumer.seek(tp)
        low = [
            _TopicPartition(wire, tp.partition, consumer.get_watermark_offsets(tp, timeout=10)[0])
            for tp in parts
        ]
        consumer.commit(offsets=low, asynchronous=False)

    # -- rebalances ------------------------------------------------------------------------------
    def _on_assign(self, group: str, partitions: list[_TopicPartition]) -> None:
        gained = {(tp.topic, tp.partition) for tp in partitions} - self._assigned[group]
        self._assigned[group] |= gained
        held = self._held_keys(group)
        if gained:
            self._count(f"rebalanced:{group}")
            log.info("kafka partitions assigned", group=group, partitions=sorted(gained))
            self._tell(Rebalance(group, self._named(gained), frozenset(), frozenset(), held))

    def _on_revoke(
        self,
        group: str,
        consumer: Consumer,
        partitions: list[_TopicPartition],
        *,
        committable: bool,
    ) -> None:
        """Partitions leave this process: commit what was handled on them (when the group
        still accepts it: not after they were lost to a session timeout), then tell the
        listeners which keys another instance now owns."""
        lost = {(tp.topic, tp.partition) for tp in partitions} & self._assigned[group]
        if committable and lost:
            self._commit_stored(group, consumer)
        self._assigned[group] -= lost
        handled = self._keys[group]
        keys = frozenset(k for tp in lost for k in handled.pop(tp, ()))
        held = self._held_keys(group)
        if lost:
            self._count(f"rebalanced:{group}")
            log.info(
                "kafka partitions revoked" if committable else "kafka partitions lost",
                group=group,
                partitions=sorted(lost),
                keys=sorted(keys),
            )
            self._tell(Rebalance(group, frozenset(), self._named(lost), keys, held))

    def _held_keys(self, group: str) -> frozenset[str]:
        assigned = self._assigned[group]
        handled = self._keys[group].items()
        return frozenset(k for tp, keys in handled if tp in assigned for k in keys)

    def _named(self, partitions: Iterable[tuple[str, int]]) -> frozenset[tuple[str, int]]:
        return frozenset((self._logical(t), p) for t, p in partitions)

    def _tell(self, change: Rebalance) -> None:
        for listener in self._listeners.get(change.group, ()):
            listener(change)

    def _commit_stored(self, group: str, consumer: Consumer) -> None:
        try:
            consumer.commit(asynchronous=False)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError._NO_OFFSET:
                log.warning("offset commit failed", group=group, error=str(exc))

    # -- internals ------------------------------------------------------------------------------
    def _produce(self, topic: str, payload: bytes, key: str, headers: Mapping[str, str]) -> None:
        self.ensure_topics([topic])
        self._producer.produce(
            self.wire(topic),
            value=payload,
            key=key.encode(),
            headers=list(headers.items()),
            on_delivery=self._delivered,
        )
        self._producer.poll(0)  # serve delivery callbacks
        if not self._handling:
            self._flush()

    def _delivered(self, err: KafkaError | None, message: Any) -> None:
        if err is not None:
            self._undelivered.append(f"{message.topic()}: {err}")

    def _flush(self) -> None:
        """Wait until the broker acknowledged (or finally refused) everything produced. A broker
        restart only makes this wait: librdkafka resends until ``message.timeout.ms``."""
        while self._producer.flush(1.0):
            log.warning("waiting for the Kafka broker to acknowledge", queued=len(self._producer))
        if self._undelivered:
            failed, self._undelivered = self._undelivered, []
            raise KafkaDeliveryError(
                f"{len(failed)} message(s) not acknowledged by the broker: {'; '.join(failed[:3])}"
            )

    def _deliver(self, group: str, consumer: Consumer, message: Any) -> None:
        topic = self._logical(message.topic())
        handler = self._handlers.get((group, topic))
        payload: bytes = message.value() or b""
        key = (message.key() or b"").decode("utf-8", errors="replace")
        headers = {k: (v or b"").decode("utf-8", "replace") for k, v in message.headers() or []}
        if handler is not None:
            self._handling += 1
            try:
                self._handle(group, topic, handler, payload, key, headers)
            finally:
                self._handling -= 1
        self._flush()  # the handler's output is durable before its input can be committed
        consumer.store_offsets(message=message)
        if key:
            self._keys[group].setdefault((message.topic(), message.partition()), set()).add(key)

    def _handle(
        self,
        group: str,
        topic: str,
        handler: Handler,
        payload: bytes,
        key: str,
        headers: dict[str, str],
    ) -> None:
        try:
            event = decode(payload)
        except EventDecodeError as exc:
            self._dead_letter(group, topic, payload, key, headers, None, exc, 1)
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
                lambda exc: self._count(f"failed:{group}:{topic}"),
            )
            if failure is None:
                self._count(f"handled:{group}:{topic}")
            else:
                self._dead_letter(
                    group, topic, payload, key, headers, event, failure.error, failure.attempts
                )

    def _dead_letter(
        self,
        group: str,
        topic: str,
        payload: bytes,
        key: str,
        headers: dict[str, str],
        event: Event | None,
        exc: Exception,
        attempts: int,
    ) -> None:
        letter, error = dead_letter_events(
            service=group,
            topic=topic,
            key=key,
            payload=payload,
            headers=headers,
            event=event,
            error=exc,
            attempts=attempts,
        )
        self.publish(Topic.dlq(topic), letter, key=key)
        self.publish(Topic.error(group), error, key=key)
        self._count(f"dead_lettered:{topic}")
        log.error("message dead-lettered", dlq=Topic.dlq(topic), error=str(exc), attempts=attempts)

    def _count(self, name: str) -> None:
        self.stats[name] = self.stats.get(name, 0) + 1
