"""Counting the trials already run for a model, over the registry port: the in-memory fake and
the MLflow tracking server of the local stack give the same count from what runs logged."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from drl_trading.common.adapter.memory_registry import InMemoryRegistry
from drl_trading.common.model_registry import ModelRegistry
from drl_trading.training.core.trials import MODEL_NAME_TAG, past_trials
from tests.conftest import require_server

MLFLOW_SERVER = os.environ.get("DRL_TEST_MLFLOW", "http://127.0.0.1:5000")


@pytest.fixture(params=["memory", pytest.param("mlflow-server", marks=pytest.mark.integration)])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> ModelRegistry:
    if request.param == "memory":
        return InMemoryRegistry(tmp_path / "registry")
    from drl_trading.common.adapter.mlflow_registry import MlflowRegistry
    from drl_trading.policy.mlflow_pyfunc import MODEL_CODE

    host, port = MLFLOW_SERVER.rsplit("/", 1)[-1].rsplit(":", 1)
    require_server("MLflow server", host, int(port))
    return MlflowRegistry(
        MLFLOW_SERVER, experiment=f"test-trials-{uuid.uuid4().hex[:10]}", model_code=MODEL_CODE
    )


def _log(registry: ModelRegistry, model: str, metrics: dict[str, float], fail: bool = False) -> str:
    run_id = ""
    try:
        with registry.start_run("r", {MODEL_NAME_TAG: model}) as run:
            run_id = run.run_id
            run.log_metrics(metrics)
            if fail:
                raise RuntimeError("the run failed")
    except RuntimeError:
        pass
    return run_id


def test_trials_are_the_seeds_of_the_models_finished_runs(registry: ModelRegistry) -> None:
    _log(
        registry, "m", {"evidence.seeds": 3.0, **{f"evidence.seed{i}.sharpe": i for i in range(3)}}
    )
    _log(registry, "m", {"validation.sharpe": 1.5})  # a run from before the evidence: 1 trial
    _log(registry, "m", {"evidence.seeds": 2.0}, fail=True)  # failed: no figure to select
    _log(registry, "other", {"evidence.seeds": 4.0})
    current = _log(registry, "m", {"evidence.seeds": 5.0})
    trials = past_trials(registry, "m", exclude_run=current)
    assert trials.count == 4
    assert sorted(trials.sharpes) == [0.0, 1.0, 1.5, 2.0]
    assert past_trials(registry, "m", exclude_run="none").count == 9
    assert past_trials(registry, "unknown", exclude_run="none").count == 0
