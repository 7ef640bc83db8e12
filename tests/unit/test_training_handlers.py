"""The training worker's handlers: requests and features meet by correlation id, in any order."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from drl_trading.common.adapter.memory_bus import InMemoryBus
from drl_trading.common.domain import Symbol, TimeRange
from drl_trading.common.events import (
    PreprocessDataCompleted,
    ProcessingMode,
    Topic,
    TrainingRequested,
)
from drl_trading.common.model_registry import ModelVersion
from drl_trading.training.adapter.bus_handlers import TrainingHandlers
from drl_trading.training.core.service import TrainingRequest

RANGE = TimeRange.parse("2024-01-01", "2024-01-10")
SYMBOLS = [Symbol("BTCUSDT")]


class Figures:
    def mean(self, name: str, attr: str) -> float:
        return {"sharpe": 1.5, "total_return": 0.1, "max_drawdown": 0.05}[attr]


@dataclass
class FakeTraining:
    """Stands in for `TrainingService`: records what it was asked to train."""

    requests: list[TrainingRequest] = field(default_factory=list)

    def train(self, request: TrainingRequest) -> Any:
        self.requests.append(request)
        n = str(len(self.requests))
        return SimpleNamespace(
            model=ModelVersion("drl-x", n, f"run{n}"),
            run_id=f"run{n}",
            champion=True,
            gate_reason="passed",
            validation=Figures(),
            test=Figures(),
            timesteps=256,
        )


def _requested(cid: str) -> TrainingRequested:
    return TrainingRequested(
        correlation_id=cid, symbols=SYMBOLS, start=RANGE.start, end=RANGE.end, total_timesteps=64
    )


def _features(cid: str) -> PreprocessDataCompleted:
    return PreprocessDataCompleted(
        correlation_id=cid,
        mode=ProcessingMode.OFFLINE,
        request_event_id="r",
        symbols=SYMBOLS,
        start=RANGE.start,
        end=RANGE.end,
        feature_set_name="core",
        feature_set_version="1",
        feature_view="core__1",
        outputs=[],
    )


def _worker() -> tuple[InMemoryBus, TrainingHandlers, FakeTraining, list[Any]]:
    bus = InMemoryBus()
    done: list[Any] = []
    bus.subscribe(Topic.TRAINING_COMPLETED, group="t", handler=done.append)
    service = FakeTraining()
    handlers = TrainingHandlers(service, bus)  # type: ignore[arg-type]
    bus.subscribe(Topic.TRAINING_REQUESTED, group="w", handler=handlers.on_training_requested)
    bus.subscribe(
        Topic.PREPROCESS_COMPLETED_OFFLINE, group="w", handler=handlers.on_preprocess_completed
    )
    return bus, handlers, service, done


def test_a_request_then_its_features_trains_once_and_announces_the_result() -> None:
    bus, _, service, done = _worker()
    bus.publish(Topic.TRAINING_REQUESTED, _requested("c1"), key="BTCUSDT")
    bus.publish(Topic.PREPROCESS_COMPLETED_OFFLINE, _features("other"), key="BTCUSDT")
    bus.publish(Topic.PREPROCESS_COMPLETED_OFFLINE, _features("c1"), key="BTCUSDT")
    while bus.poll():
        pass
    assert [(r.correlation_id, r.total_timesteps, r.range) for r in service.requests] == [
        ("c1", 64, RANGE)
    ]
    assert [(d.correlation_id, d.model_version, d.champion) for d in done] == [("c1", "1", True)]
    assert done[0].metrics["test_sharpe"] == 1.5
    # a redelivered request after the run does not train again
    bus.publish(Topic.TRAINING_REQUESTED, _requested("c1"), key="BTCUSDT")
    while bus.poll():
        pass
    assert len(service.requests) == 1


def test_features_that_arrive_before_their_request_are_kept_for_it() -> None:
    _, handlers, service, _ = _worker()
    handlers.on_preprocess_completed(_features("c2"))
    assert service.requests == []
    handlers.on_training_requested(_requested("c2"))
    assert [r.correlation_id for r in service.requests] == ["c2"]


def test_a_restarted_worker_takes_up_the_requests_nobody_answered() -> None:
    bus, _, _, _ = _worker()
    for cid in ("answered", "failed", "open"):
        bus.publish(Topic.TRAINING_REQUESTED, _requested(cid), key="BTCUSDT")
    finished = [
        SimpleNamespace(correlation_id="answered"),
        SimpleNamespace(correlation_id="failed"),
    ]
    _, fresh, service, _ = _worker()  # the worker's next life
    assert fresh.resume(bus.messages(Topic.TRAINING_REQUESTED), finished) == 1  # type: ignore[arg-type]
    assert set(fresh.pending) == {"open"}
    fresh.on_preprocess_completed(_features("open"))
    assert [r.correlation_id for r in service.requests] == ["open"]
    assert fresh.resume(bus.messages(Topic.TRAINING_REQUESTED), finished) == 0  # type: ignore[arg-type]
