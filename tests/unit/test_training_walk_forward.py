"""A tiny training over 2 walk-forward folds x 2 seeds: four fits, one stitched out-of-sample
series per seed, the evidence and every check of the gate logged on the run, and a second run
of the same model counting the first one's seeds as trials."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from drl_trading.common.adapter.always_open_calendar import AlwaysOpenCalendar
from drl_trading.common.adapter.memory_registry import InMemoryRegistry
from drl_trading.common.domain import Timeframe, TimeRange
from drl_trading.strategy import BaseStrategy
from drl_trading.training.adapter.fixed_revision import FixedRevision
from drl_trading.training.adapter.fixed_versions import FixedVersions
from drl_trading.training.adapter.registry_packages import RegistryPackages
from drl_trading.training.adapter.report_files import ReportFiles
from drl_trading.training.adapter.sb3_trainer import SB3Trainer
from drl_trading.training.core.config import TrainingSettings
from drl_trading.training.core.ports import FitJob, FitProgressHook, FittedModel
from drl_trading.training.core.service import TrainingRequest, TrainingService
from tests.unit.test_dataset_calendar import EURUSD, stored_features

RANGE = TimeRange(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 15, tzinfo=UTC))
SETTINGS = TrainingSettings.model_validate(
    {
        "total_timesteps": 32,
        "seeds": 2,
        "random_agent_seeds": 1,
        "env": {"n_envs": 1, "episode_bars": 32},
        "algorithm": {"hyperparameters": {"n_steps": 32, "batch_size": 32, "n_epochs": 1}},
        "split": {"walk_forward_folds": 2, "validation_fraction": 0.2},
    }
)


class SeedRecorder(SB3Trainer):
    def __init__(self) -> None:
        super().__init__()
        self.seeds: list[int] = []

    def fit(self, job: FitJob, on_progress: FitProgressHook) -> FittedModel:
        self.seeds.append(job.seed)
        return super().fit(job, on_progress)


def test_two_folds_by_two_seeds_give_evidence_and_a_verdict_naming_each_check(
    tmp_path: Path,
) -> None:
    market, store, spec = stored_features(AlwaysOpenCalendar(), Timeframe.H1, RANGE)
    registry = InMemoryRegistry(tmp_path / "registry")
    trainer = SeedRecorder()
    service = TrainingService(
        market,
        store,
        registry,
        BaseStrategy(),
        spec,
        SETTINGS,
        model_name="tiny",
        trainer=trainer,
        revision=FixedRevision(None),
        reports=ReportFiles(tmp_path / "reports"),
        packages=RegistryPackages(registry),
        libraries=FixedVersions({"drl-trading": "0"}),
    )
    result = service.train(TrainingRequest((EURUSD,), RANGE, "c1"))
    assert trainer.seeds == [42, 1042, 42, 1042]  # fold 0: seeds 0 and 1, then fold 1
    evidence = result.evidence
    assert evidence is not None and result.gate is not None
    assert evidence.seeds == 2 and len(evidence.folds) == 2 and evidence.trials == 2
    f0, f1 = evidence.folds
    assert f0.validation.end <= f1.validation.start < result.splits.test.start
    # each seed's series is both folds' validation steps, stitched
    val_steps = sum(len(s.trace.step_returns) for s in result.validation.symbols)
    assert f1.steps == val_steps and evidence.steps == f0.steps + f1.steps
    # the default gate names every check with its figure, failed ones first
    reason = result.gate_reason
    for text in ("deflated Sharpe", "(2 trials)", "CI lower bound", "best baseline",
                 "max drawdown", "seed Sharpe std", "(2 seeds, "):  # fmt: skip
        assert text in reason, (text, reason)
    assert result.champion == result.gate.promote == all(c.passed for c in result.gate.checks)
    run = registry.runs[result.run_id]
    metrics = run.latest_metrics()
    assert metrics["evidence.seeds"] == 2.0 and "evidence.seed1.sharpe" in metrics
    assert metrics["evidence.fold1.sharpe"] == f1.sharpe
    assert "gate.deflated_sharpe.value" in metrics and "gate.seed_sharpe_spread.passed" in metrics
    assert run.tags["model_name"] == "tiny" and run.tags["gate_reason"] == reason
    assert json.loads(json.dumps(run.dicts["evaluation/evidence.json"]))["trials"] == 2

    again = service.train(TrainingRequest((EURUSD,), RANGE, "c2"))
    assert again.evidence is not None and again.evidence.trials == 4
    assert "(4 trials)" in again.gate_reason
    assert again.evidence.trial_variance_source == "4 trial Sharpes"
