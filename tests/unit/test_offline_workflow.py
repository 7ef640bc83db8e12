"""The offline workflow's steps on the embedded runtime (in-memory stores): ingest with its
progress reports, a preprocess request pumped to its completion or error, and the errors a user
gets for a source the arguments cannot build."""

from __future__ import annotations

from pathlib import Path

import pytest

from drl_trading.app.infrastructure import feature_set_for
from drl_trading.app.offline_workflow import (
    PREPROCESS_STEPS,
    OfflineWorkflow,
    SourceError,
    WorkflowError,
)
from drl_trading.app.settings import AppSettings, load_settings
from drl_trading.common.domain import Symbol, TimeRange
from drl_trading.ingest.core.service import TrainingDataRequest

SYMS = (Symbol("BTCUSDT"), Symbol("ETHUSDT"))
RANGE = TimeRange.parse("2024-01-01", "2024-01-04")
MINUTES = 3 * 24 * 60


@pytest.fixture
def settings(tmp_path: Path) -> AppSettings:
    return load_settings(
        home=tmp_path / "home", market_data={"kind": "memory"}, feature_store={"kind": "memory"}
    )


def test_ingest_reports_minutes_per_symbol_from_zero_to_the_whole_range(
    settings: AppSettings,
) -> None:
    seen: list[tuple[Symbol, int, int]] = []
    with OfflineWorkflow.open(settings) as workflow:
        report = workflow.ingest(
            "synthetic",
            None,
            TrainingDataRequest(SYMS, RANGE),
            request_preprocessing=False,
            on_progress=lambda s, done, total: seen.append((s, done, total)),
        )
    # the feature set's warm-up (its look-back) is fetched before the range, and counted
    warmup = int(feature_set_for(settings).lookback().total_seconds() // 60)
    total = MINUTES + warmup
    assert [s.symbol for s in report.symbols] == list(SYMS)
    assert all(s.stored_rows == total and s.warmup_rows == warmup for s in report.symbols)
    assert all(s.gaps == [] for s in report.symbols)
    assert seen[:2] == [(SYMS[0], 0, total), (SYMS[1], 0, total)]
    assert seen[-2:] == [(SYMS[0], total, total), (SYMS[1], total, total)]
    for sym in SYMS:
        done = [d for s, d, total in seen if s == sym]
        assert done == sorted(done)
        assert len(done) > 2  # reports while fetching, not only at both ends


def test_ingest_then_preprocess_completes_with_every_step_reported(settings: AppSettings) -> None:
    steps: list[tuple[Symbol, str]] = []
    request = TrainingDataRequest(SYMS[:1], RANGE)
    with OfflineWorkflow.open(settings) as workflow:
        workflow.ingest("synthetic", None, request, request_preprocessing=True)
        outcome = workflow.run(
            request.request_id, on_preprocess=lambda s, step: steps.append((s, step))
        )
        assert workflow.runtime.preprocess.on_progress is None  # the hook is the run's only
        assert workflow.training_result(request.request_id) is None
    assert outcome.succeeded
    (done,) = outcome.completed
    assert done.correlation_id == request.request_id
    assert [o.symbol for o in done.outputs] == [SYMS[0]]
    assert steps == [(SYMS[0], step) for step in PREPROCESS_STEPS]


def test_a_preprocess_request_without_bars_comes_back_as_the_services_error(
    settings: AppSettings,
) -> None:
    with OfflineWorkflow.open(settings) as workflow:
        correlation_id = workflow.request_preprocessing([Symbol("NOPE")], RANGE)
        outcome = workflow.run(correlation_id)
        other = workflow.run("another-correlation-id")
    assert not outcome.succeeded
    assert outcome.completed == []
    (err,) = outcome.errors
    assert err.service == "preprocess"
    assert "NOPE: no 1m bars stored" in err.message
    assert other.errors == [] and other.completed == []  # only its own correlation id


def test_a_source_the_arguments_cannot_build_is_a_source_error(settings: AppSettings) -> None:
    request = TrainingDataRequest(SYMS[:1], RANGE)
    with OfflineWorkflow.open(settings) as workflow:
        with pytest.raises(SourceError, match=r"--source file needs --path"):
            workflow.ingest("file", None, request, request_preprocessing=False)
        with pytest.raises(WorkflowError, match=r"FileNotFoundError: .*missing\.csv"):
            workflow.ingest(
                "file", Path("/nonexistent/missing.csv"), request, request_preprocessing=False
            )
