"""The service loop's work between turns (`ServiceProcess.between`): after a turn's handlers,
never inside one, and a failure there does not stop the stream."""

from __future__ import annotations

from drl_trading.app.process import InstrumentedBus, Metrics, ServiceProcess
from drl_trading.common.adapter.memory_bus import InMemoryBus
from drl_trading.common.events import ErrorOccurred, Event


def _event(message: str) -> ErrorOccurred:
    return ErrorOccurred(
        service="test",
        topic="t",
        failed_event_id=None,
        error_type="X",
        message=message,
        attempts=1,
    )


def test_work_between_turns_runs_after_the_handlers_and_survives_a_failure() -> None:
    metrics = Metrics("test")
    inner = InMemoryBus()
    bus = InstrumentedBus(inner, metrics, None)
    trace: list[str] = []
    process = ServiceProcess("test", bus, metrics)

    def handler(event: Event) -> None:
        assert isinstance(event, ErrorOccurred)
        trace.append(f"handled {event.message}")

    def failing() -> None:
        trace.append("failing")
        raise ConnectionError("registry unreachable")

    def counting() -> None:
        trace.append("between")
        if trace.count("between") == 1:
            inner.publish("t", _event("second"), key="k")  # arrives during the housekeeping
        if trace.count("between") == 3:
            process.stop()

    process.between.extend([failing, counting])
    bus.subscribe("t", group="g", handler=handler)
    inner.publish("t", _event("first"), key="k")
    process.run()
    assert trace[:6] == [
        "handled first",
        "failing",
        "between",  # the failure before it did not skip it
        "handled second",  # the next turn handled what arrived meanwhile
        "failing",
        "between",
    ]
    assert trace.count("handled first") == trace.count("handled second") == 1
