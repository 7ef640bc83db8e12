"""`drl-trading tune` on a tiny home: a study in SQLite whose trials are MLflow runs nested under
the study's run and counted by the deflated Sharpe, judged on validation folds only (the test
range never reaches a trial), resumed from its storage, pruned after a fold, registered through
the gate; and two worker processes sharing one study on the local PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import mlflow
import optuna
import polars as pl
import pytest
import yaml

from drl_trading.app.settings import AppSettings, load_settings
from drl_trading.app.tuning import TuneRequest, study_storage, tune
from drl_trading.common.domain import Symbol, TimeRange
from drl_trading.testing.cli_process import CLI, run_cli, said
from drl_trading.testing.tiny_training import PERMISSIVE_GATE, tiny_quickstart_config
from drl_trading.training.core import service as core_service
from drl_trading.training.core.trials import past_trials
from tests.conftest import postgres_schema, require_server

pytestmark = pytest.mark.e2e

SYMBOLS = (Symbol("BTCUSDT"),)
RANGE = TimeRange.parse("2024-01-01", "2024-01-05")
DATA = ("-s", "BTCUSDT", "--start", "2024-01-01", "--end", "2024-01-05")


def _config(path: Path, **extra: Any) -> Path:
    data = tiny_quickstart_config(timesteps=32)
    data["training"]["gate"] = PERMISSIVE_GATE
    data["training"]["split"] = {"walk_forward_folds": 2}
    data["tuning"] = {
        "space": {
            "n_steps": {"choices": [32]},
            "batch_size": {"choices": [32]},
            "n_epochs": {"low": 1, "high": 2, "integer": True},
        },
        "pruner": {"kind": "none"},
    }
    for key, value in extra.items():
        data.setdefault(key, {}).update(value)
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("tune")
    config = _config(root / "tiny.yaml")
    home = root / "home"
    done = run_cli(home, "ingest", "--source", "synthetic", *DATA, "--preprocess", config=config)
    assert done.returncode == 0, said(done)
    return home, config


def _settings(home: Path, config: Path, **overrides: Any) -> AppSettings:
    return load_settings(config, home=home, **overrides)


def _trial_runs(settings: AppSettings, parent: str) -> list[Any]:
    client = mlflow.MlflowClient(settings.mlflow_tracking_uri)
    exp = client.get_experiment_by_name(settings.training.registry.experiment)
    assert exp is not None
    return list(client.search_runs([exp.experiment_id], f"tags.`mlflow.parentRunId` = '{parent}'"))


def test_a_study_nests_its_trials_counts_them_and_never_reads_the_test_range(
    home: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, config = home
    settings = _settings(path, config)
    from drl_trading.app.infrastructure import build_registry, model_name_for

    registry = build_registry(settings)
    before = past_trials(registry, model_name_for(settings), "").count

    built: list[tuple[TimeRange | None, Any]] = []
    real = core_service.series_from_frame  # a trial's folds are cut by TrainingService.fit_fold

    def spy(frame: pl.DataFrame, *args: Any, **kwargs: Any) -> Any:
        built.append(
            (args[2] if len(args) > 2 else kwargs.get("rng"), frame["bar_open_time"].max())
        )
        return real(frame, *args, **kwargs)

    monkeypatch.setattr(core_service, "series_from_frame", spy)
    lines = []
    summary = tune(settings, TuneRequest("nested", SYMBOLS, RANGE, trials=3, seed=1), lines.append)
    assert [t.number for t in summary.trials] == [0, 1, 2]
    assert all(t.state == "complete" and t.folds == 2 for t in summary.trials), lines
    assert summary.best is not None

    runs = _trial_runs(settings, summary.parent_run_id)
    assert sorted(r.data.tags["tuning.trial"] for r in runs) == ["0", "1", "2"]
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert all("evidence.sharpe" in r.data.metrics for r in runs)
    assert all("tuning.learning_rate" in r.data.params for r in runs)
    # the deflated Sharpe of the next training counts every trial's seeds
    assert past_trials(registry, model_name_for(settings), "").count == before + 3

    # the test range never reached a trial: every series lies in a fold, before the test range
    from drl_trading.app.infrastructure import build_feature_store, build_market_data
    from drl_trading.app.training import build_training_service
    from drl_trading.training.core.service import TrainingRequest

    market = build_market_data(settings, write_behind=False)
    try:
        service = build_training_service(settings, market, build_feature_store(settings))
        splits = service.prepare(TrainingRequest(SYMBOLS, RANGE, "x")).splits
    finally:
        market.close()
    folds = {(f.train, f.validation) for f in splits.folds}
    allowed = {r for pair in folds for r in pair}
    assert len(built) == 3 * 2 * 2
    assert all(rng in allowed for rng, _ in built)
    assert all(last < splits.test.start for _, last in built)


def test_a_resumed_study_continues_from_its_storage(home: tuple[Path, Path]) -> None:
    path, config = home
    settings = _settings(path, config)
    first = tune(settings, TuneRequest("resumed", SYMBOLS, RANGE, trials=2, seed=3))
    again = tune(settings, TuneRequest("resumed", trials=2, seed=3))  # data from the study
    assert not again.created and again.parent_run_id == first.parent_run_id
    assert [t.number for t in again.trials] == [2, 3]
    assert sum(again.study_counts.values()) == 4
    earlier = [t.params for t in first.trials]
    assert all(t.params not in earlier for t in again.trials)  # the sampler drew on


def test_a_pruned_trial_stops_after_its_first_fold(home: tuple[Path, Path]) -> None:
    path, config = home
    settings = _settings(path, config, tuning={"pruner": {"kind": "threshold", "lower": 1e9}})
    summary = tune(settings, TuneRequest("pruned", SYMBOLS, RANGE, trials=2))
    assert [t.state for t in summary.trials] == ["pruned", "pruned"]
    assert [t.folds for t in summary.trials] == [1, 1]
    runs = _trial_runs(settings, summary.parent_run_id)
    assert len(runs) == 2
    for r in runs:
        assert r.data.tags["tuning.state"] == "pruned"
        assert "fold0.validation.sharpe" in r.data.metrics
        assert "fold1.validation.sharpe" not in r.data.metrics
        assert r.data.metrics["evidence.seeds"] == 1.0  # still counted as a trial


def test_cli_tunes_then_registers_the_best_through_the_gate(home: tuple[Path, Path]) -> None:
    path, config = home
    done = run_cli(path, "tune", "--study", "cli", "--trials", "1", *DATA, config=config)
    assert done.returncode == 0, said(done)
    assert "trial   0  complete  Sharpe" in done.stdout
    assert "1 trial in" in done.stdout and "1 complete, 0 pruned, 0 failed" in done.stdout
    assert "register it:   drl-trading tune --study cli --best --register" in done.stdout

    done = run_cli(path, "tune", "--study", "cli", "--best", "--register", config=config)
    assert done.returncode == 0, said(done)
    assert "best trial:    0, Sharpe" in done.stdout
    assert "champion:      yes:" in done.stdout  # the gate's verdict, as train prints it
    assert "protocol:      2 walk-forward folds" in done.stdout

    done = run_cli(path, "tune", "--study", "cli", "--folds", "3", config=config)
    assert done.returncode == 2, said(done)
    assert "another protocol: training.split.walk_forward_folds 3 (the study: 2)" in said(done)
    done = run_cli(path, "tune", "--study", "absent", "--best", config=config)
    assert done.returncode == 2, said(done)
    assert "no study 'absent'" in said(done)


@pytest.mark.integration
def test_two_workers_on_postgres_share_one_study(tmp_path: Path) -> None:
    require_server("MLflow", "127.0.0.1", 5000)
    with postgres_schema("tune") as schema:
        run = f"tune_{uuid.uuid4().hex[:8]}"
        config = _config(
            tmp_path / "pg.yaml",
            market_data={"kind": "postgres"},
            postgres={"schema_name": schema},
            training={
                "registry": {
                    "tracking_uri": "http://127.0.0.1:5000",
                    "experiment": run,
                    "model_name": f"drl-{run}",
                }
            },
        )
        home = tmp_path / "home"
        done = run_cli(
            home, "ingest", "--source", "synthetic", *DATA, "--preprocess", config=config
        )
        assert done.returncode == 0, said(done)
        # one creates the study (it has the data), the other joins it by name alone
        args = ["--home", str(home), "--config", str(config), "tune", "--study", "shared"]
        workers = [
            subprocess.Popen(
                [CLI, *args, "--worker", "--trials", "4", *extra],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env={**os.environ, "COLUMNS": "400"},
            )
            for extra in ((), DATA)  # the joiner first: it waits for the study to exist
        ]
        outputs = [w.communicate(timeout=400) for w in workers]
        for w, (out, err) in zip(workers, outputs, strict=True):
            assert w.returncode == 0, out + err
        numbers = [
            int(line.split()[1])
            for out, _ in outputs
            for line in out.splitlines()
            if line.startswith("trial ")
        ]
        assert len(numbers) == len(set(numbers))  # no trial ran twice
        settings = load_settings(config, home=home)
        where = study_storage(settings, "shared")
        assert where.kind == "postgres" and where.schema == schema
        storage = optuna.storages.RDBStorage(
            where.url, engine_kwargs={"connect_args": {"options": f"-csearch_path={schema}"}}
        )
        study = optuna.load_study(study_name="shared", storage=storage)
        assert len(study.trials) == len(numbers) >= 4  # the study's count is the workers' sum
        assert sorted(numbers) == [t.number for t in study.trials]
        drawn = {tuple(sorted(t.params.items())) for t in study.trials}
        assert len(drawn) == len(study.trials)  # the workers drew different values
        storage.engine.dispose()  # before postgres_schema drops the schema and its tables
