"""A training submission on the in-memory bus: the worker is told first, then the history is
ingested and its features requested under the same correlation id; `wait` returns the worker's
answer for that id (a completion or an error) or None when none came in time."""

from __future__ import annotations

from pathlib import Path

import pytest

from drl_trading.app.infrastructure import feature_set_for
from drl_trading.app.offline_workflow import SourceError
from drl_trading.app.settings import AppSettings, load_settings
from drl_trading.app.training_submission import TrainingSubmission
from drl_trading.common.adapter.memory_bus import InMemoryBus
from drl_trading.common.domain import Symbol, Timeframe, TimeRange
from drl_trading.common.events import (
    ErrorOccurred,
    PreprocessDataRequested,
    Topic,
    TrainingCompleted,
    TrainingRequested,
)
from drl_trading.ingest.core.service import TrainingDataRequest

SYMS = (Symbol("BTCUSDT"), Symbol("ETHUSDT"))
RANGE = TimeRange.parse("2024-01-01", "2024-01-02")
MINUTES = 24 * 60


@pytest.fixture
def settings(tmp_path: Path) -> AppSettings:
    return load_settings(home=tmp_path / "home", market_data={"kind": "memory"})


def _completed(correlation_id: str, version: str) -> TrainingCompleted:
    return TrainingCompleted(
        correlation_id=correlation_id,
        model_name="drl-example",
        model_version=version,
        run_id="r" * 32,
        champion=True,
        gate_reason="first model",
        metrics={"test.sharpe": 1.5},
    )


def _error(correlation_id: str) -> ErrorOccurred:
    return ErrorOccurred(
        correlation_id=correlation_id,
        service="training",
        topic=Topic.PREPROCESS_COMPLETED_OFFLINE,
        failed_event_id=None,
        error_type="LookupError",
        message="no features",
        attempts=1,
    )


def _bus(run: TrainingSubmission) -> InMemoryBus:
    assert isinstance(run.bus, InMemoryBus)
    return run.bus


def test_the_worker_is_told_before_the_features_are_requested(settings: AppSettings) -> None:
    request = TrainingDataRequest(SYMS, RANGE)
    seen: list[tuple[Symbol, int, int]] = []
    with TrainingSubmission(settings, request, total_timesteps=128) as run:
        report = run.submit(
            "synthetic", None, on_progress=lambda s, done, total: seen.append((s, done, total))
        )
        bus = _bus(run)
        (asked,) = bus.messages(Topic.TRAINING_REQUESTED)
        (features,) = bus.messages(Topic.PREPROCESS_REQUESTED)
        stored = run.market_data.read_bars(SYMS[0], Timeframe.M1, RANGE.start, RANGE.end)
    assert stored.height == MINUTES
    assert isinstance(asked, TrainingRequested)
    assert asked.correlation_id == request.request_id == run.correlation_id
    assert (asked.symbols, asked.start, asked.end) == (list(SYMS), RANGE.start, RANGE.end)
    assert asked.total_timesteps == 128
    assert isinstance(features, PreprocessDataRequested)
    assert features.correlation_id == request.request_id
    assert asked.created_at <= features.created_at
    assert [s.symbol for s in report.symbols] == list(SYMS)
    # progress counts the features' warm-up fetched before the range too
    warmup_minutes = int(feature_set_for(settings).lookback().total_seconds() // 60)
    assert seen[-1] == (SYMS[1], MINUTES + warmup_minutes, MINUTES + warmup_minutes)


def test_wait_returns_the_answer_of_its_own_correlation_id(settings: AppSettings) -> None:
    with TrainingSubmission(settings, TrainingDataRequest(SYMS, RANGE)) as run:
        bus = _bus(run)
        assert run.wait(timeout=0.0) is None
        bus.publish(Topic.TRAINING_COMPLETED, _completed("someone-else", "1"), key="m")
        assert run.wait(timeout=0.0) is None
        bus.publish(Topic.TRAINING_COMPLETED, _completed(run.correlation_id, "2"), key="m")
        got = run.wait(timeout=5.0)
    assert isinstance(got, TrainingCompleted)
    assert got.model_version == "2"


def test_wait_returns_the_workers_error(settings: AppSettings) -> None:
    with TrainingSubmission(settings, TrainingDataRequest(SYMS, RANGE)) as run:
        _bus(run).publish(Topic.error("training"), _error(run.correlation_id), key="m")
        got = run.wait(timeout=5.0)
    assert isinstance(got, ErrorOccurred)
    assert got.message == "no features"


def test_without_listening_nothing_is_collected(settings: AppSettings) -> None:
    with TrainingSubmission(settings, TrainingDataRequest(SYMS, RANGE), listen=False) as run:
        _bus(run).publish(Topic.TRAINING_COMPLETED, _completed(run.correlation_id, "1"), key="m")
        assert run.wait(timeout=0.0) is None


def test_a_bad_source_fails_after_the_worker_was_told(settings: AppSettings) -> None:
    with TrainingSubmission(settings, TrainingDataRequest(SYMS, RANGE)) as run:
        with pytest.raises(SourceError, match=r"--source file needs --path"):
            run.submit("file", None)
        assert len(_bus(run).messages(Topic.TRAINING_REQUESTED)) == 1
        assert _bus(run).messages(Topic.PREPROCESS_REQUESTED) == []
