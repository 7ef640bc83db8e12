"""Which service consumes which topic, with which handler: the one table of the event flow.

The embedded runtime and each `drl-trading serve SERVICE` process subscribe through `subscribe`,
so both deployments wire exactly the same handlers to the same topics, and a reader finds the
whole flow of the design here instead of in every composition. Each service consumes as one
consumer group named after it (Kafka: one group per service; several instances share the load).

A handler is named by its attribute on the service's handlers object (``ExecutionHandlers``,
``InferenceHandlers``...); `subscribe` fails at start, naming the service and the attribute,
when a handlers object lacks one, rather than on the first message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from drl_trading.common.events import Event, Topic
from drl_trading.common.ports import MessageBus

SERVICES = ("ingest", "preprocess", "training", "inference", "execution")


@dataclass(frozen=True, slots=True)
class Subscription:
    topic: str
    handler: str
    """Attribute of the service's handlers object that takes the event."""
    worker_only: bool = False
    """Only the distributed training worker takes it (embedded training is requested by call)."""


TOPOLOGY: dict[str, tuple[Subscription, ...]] = {
    "ingest": (
        # the catch-up is done: stream live bars; resampled bars to store (off the hot path)
        Subscription(Topic.PREPROCESS_COMPLETED_CATCHUP, "on_preprocess_completed"),
        Subscription(Topic.STORE_RESAMPLED_REQUESTED, "on_store_resampled"),
    ),
    "preprocess": (
        # offline history, the online catch-up and every live 1m bar
        Subscription(Topic.PREPROCESS_REQUESTED, "on_preprocess_requested"),
    ),
    "training": (
        Subscription(Topic.PREPROCESS_COMPLETED_OFFLINE, "on_preprocess_completed"),
        Subscription(Topic.TRAINING_REQUESTED, "on_training_requested", worker_only=True),
    ),
    "inference": (Subscription(Topic.PREPROCESS_COMPLETED_ONLINE, "on_preprocess_completed"),),
    "execution": (
        # signals, and the live 1m bars that fill orders and mark the book
        Subscription(Topic.PREDICT_COMPLETED, "on_prediction"),
        Subscription(Topic.PREPROCESS_REQUESTED, "on_bar_request"),
    ),
}


OFF_PATH_TOPICS: tuple[str, ...] = (Topic.STORE_RESAMPLED_REQUESTED,)
"""Topics whose work is off the path from a bar's close to its order: storing the resampled
bars (a restart recomputes them from the 1m bars). A distributed deployment runs them in a process
of their own; the in-memory bus, which runs every handler in one thread, delivers them only when
nothing on the path is pending (`InMemoryBus` ``deferred``), so that they follow the bar's
order instead of sitting between its features and its decision."""


def consumed_topics() -> tuple[str, ...]:
    """Every topic some service consumes, in table order (a distributed process creates them,
    with their dead-letter topics, before its first message)."""
    seen: dict[str, None] = {}
    for subs in TOPOLOGY.values():
        for s in subs:
            seen.setdefault(s.topic, None)
    return tuple(seen)


def subscribe(bus: MessageBus, service: str, handlers: object, *, worker: bool = False) -> None:
    """Subscribe ``service``'s consumer group to its topics, each with its handler."""
    if service not in TOPOLOGY:
        raise ValueError(f"unknown service {service!r}; one of {', '.join(SERVICES)}")
    for sub in TOPOLOGY[service]:
        if sub.worker_only and not worker:
            continue
        handler: Callable[[Event], None] | None = getattr(handlers, sub.handler, None)
        if handler is None or not callable(handler):
            raise TypeError(
                f"{type(handlers).__name__} has no handler {sub.handler!r} for {service}'s "
                f"subscription to {sub.topic}"
            )
        bus.subscribe(sub.topic, group=service, handler=handler)
