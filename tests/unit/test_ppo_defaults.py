"""PPO's defaults for CPU throughput (`training.core.hyperparameters`), the rollout shrunk for
short runs, ``training.device: auto`` and what a run records of the fit: the device, the copies,
the hyperparameters as applied and the steps trained."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from drl_trading.common.adapter.always_open_calendar import AlwaysOpenCalendar
from drl_trading.common.adapter.memory_registry import InMemoryRegistry
from drl_trading.common.domain import Timeframe, TimeRange
from drl_trading.common.errors import UsageError
from drl_trading.strategy import BaseStrategy
from drl_trading.training.adapter.fixed_revision import FixedRevision
from drl_trading.training.adapter.fixed_versions import FixedVersions
from drl_trading.training.adapter.registry_packages import RegistryPackages
from drl_trading.training.adapter.report_files import ReportFiles
from drl_trading.training.adapter.sb3_trainer import SB3Trainer, resolve_device
from drl_trading.training.core.config import AlgorithmSettings, TrainingSettings
from drl_trading.training.core.hyperparameters import (
    DEFAULT_N_ENVS,
    MIN_BATCH,
    MIN_N_STEPS,
    PPO_DEFAULTS,
    PPO_MINIBATCHES,
    PPO_N_ENVS,
    fit_hyperparameters,
)
from drl_trading.training.core.ports import FitJob
from drl_trading.training.core.provenance import PROVENANCE_ARTIFACT
from drl_trading.training.core.service import TrainingRequest, TrainingService
from tests.contracts.test_trainer import Envs
from tests.unit.test_dataset_calendar import EURUSD, stored_features

LONG_RUN = 200_000


def test_ppo_gets_the_throughput_defaults_for_what_the_settings_leave_out() -> None:
    fit = fit_hyperparameters("PPO", {}, PPO_N_ENVS, LONG_RUN)
    # a rollout of 256 x 32 = 8,192 steps in minibatches of 1,024
    assert fit.values == {**PPO_DEFAULTS, "batch_size": 1024} and fit.shrunk is None
    given = fit_hyperparameters("PPO", {"n_epochs": 10, "gamma": 0.9}, PPO_N_ENVS, LONG_RUN)
    assert given.values == {**PPO_DEFAULTS, "batch_size": 1024, "n_epochs": 10, "gamma": 0.9}


def test_given_values_win_and_the_default_batch_is_a_share_of_the_rollout() -> None:
    fit = fit_hyperparameters("PPO", {"n_steps": 8}, 4, LONG_RUN)
    assert fit.values["n_steps"] == 8 and fit.values["batch_size"] == 32  # 8 x 4: all of it
    few = fit_hyperparameters("PPO", {}, 2, LONG_RUN).values  # 2 copies: 512-step rollouts
    assert few["n_steps"] == 256 and few["batch_size"] == MIN_BATCH
    many = fit_hyperparameters("PPO", {"n_steps": 128}, 256, LONG_RUN).values
    assert many["batch_size"] == 128 * 256 // PPO_MINIBATCHES
    mine = {"n_steps": 4096, "batch_size": 8, "n_epochs": 1}
    assert fit_hyperparameters("PPO", mine, 64, 100).values == mine  # even for a short run


def test_a_run_shorter_than_one_default_rollout_trains_about_the_steps_it_asked_for() -> None:
    fit = fit_hyperparameters("PPO", {}, 32, 1000)
    n_steps = fit.values["n_steps"]
    assert n_steps == 32  # ceil(1000 / 32): one rollout of 1,024 steps
    assert 1000 <= n_steps * 32 < 1000 + 32
    assert fit.values["batch_size"] == n_steps * 32 // PPO_MINIBATCHES
    assert fit.shrunk is not None and "1,000 requested timesteps" in fit.shrunk
    assert fit_hyperparameters("PPO", {}, 32, 10).values["n_steps"] == MIN_N_STEPS
    # applying the result again changes nothing (the trainer and the service both apply it)
    assert fit_hyperparameters("PPO", fit.values, 32, 1000).values == fit.values


@pytest.mark.parametrize("name", ["MaskablePPO", "RecurrentPPO"])
def test_the_other_ppos_get_ppos_defaults_and_copies(name: str) -> None:
    fit = fit_hyperparameters(name, {}, PPO_N_ENVS, LONG_RUN)
    assert fit.values == fit_hyperparameters("PPO", {}, PPO_N_ENVS, LONG_RUN).values
    settings = TrainingSettings.model_validate({"algorithm": {"name": name}})
    assert settings.n_envs == PPO_N_ENVS
    short = fit_hyperparameters(name, {}, PPO_N_ENVS, 1000).values
    assert short["n_steps"] == 32 and short["batch_size"] == 32 * 32 // PPO_MINIBATCHES


def test_other_algorithms_keep_their_defaults_and_copies() -> None:
    assert fit_hyperparameters("SAC", {}, 4, LONG_RUN).values == {}
    assert fit_hyperparameters("A2C", {}, 4, LONG_RUN).values == {"n_steps": 5}
    assert TrainingSettings().n_envs == PPO_N_ENVS
    for name in ("A2C", "DQN", "SAC", "TD3"):
        settings = TrainingSettings.model_validate({"algorithm": {"name": name}})
        assert settings.n_envs == DEFAULT_N_ENVS
    assert TrainingSettings.model_validate({"env": {"n_envs": 3}}).n_envs == 3


def fake_torch(cuda: bool) -> SimpleNamespace:
    return SimpleNamespace(
        cuda=SimpleNamespace(is_available=lambda: cuda), device=torch.device, __version__="x"
    )


def test_auto_is_cuda_where_torch_sees_a_gpu_and_cpu_elsewhere() -> None:
    assert TrainingSettings().device == "auto"
    assert resolve_device(fake_torch(cuda=True), "auto") == "cuda"
    assert resolve_device(fake_torch(cuda=False), "auto") == "cpu"
    assert resolve_device(fake_torch(cuda=True), "cuda:1") == "cuda:1"
    assert resolve_device(fake_torch(cuda=False), "cpu") == "cpu"


@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_cuda_without_a_gpu_fails_with_one_line_naming_the_setting(device: str) -> None:
    with pytest.raises(UsageError, match=r"training\.device is 'cuda.*' but torch sees no CUDA"):
        resolve_device(fake_torch(cuda=False), device)


def test_a_device_torch_does_not_know_is_refused_naming_the_setting() -> None:
    with pytest.raises(UsageError, match=r"training\.device 'gpu' is not a torch device"):
        resolve_device(fake_torch(cuda=True), "gpu")


def test_a_fit_reports_the_device_the_hyperparameters_and_the_steps_it_trained() -> None:
    envs = Envs()
    total = 200
    fitted = SB3Trainer(device="auto", torch_threads=1).fit(
        FitJob(
            make_env=envs,
            n_envs=8,
            algorithm=AlgorithmSettings(net_arch=[8]),
            total_timesteps=total,
            seed=3,
            normalize_observations=True,
            normalize_reward=True,
            make_batched_env=None,
        ),
        lambda p: None,
    )
    assert fitted.device == ("cuda" if torch.cuda.is_available() else "cpu")
    assert fitted.hyperparameters == {"n_steps": 25, "batch_size": MIN_BATCH, "n_epochs": 5}
    assert total <= fitted.timesteps < total + 8  # one rollout, not 256 x 8 steps


def test_a_run_records_the_fit_in_the_manifest_and_the_provenance(tmp_path: Path) -> None:
    rng = TimeRange(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 15, tzinfo=UTC))
    market, store, spec = stored_features(AlwaysOpenCalendar(), Timeframe.H1, rng)
    registry = InMemoryRegistry(tmp_path / "registry")
    settings = TrainingSettings.model_validate(
        {
            "total_timesteps": 64,
            "random_agent_seeds": 1,
            "env": {"episode_bars": 32},
            "algorithm": {"net_arch": [8]},
        }
    )
    service = TrainingService(
        market,
        store,
        registry,
        BaseStrategy(),
        spec,
        settings,
        model_name="tiny",
        trainer=SB3Trainer(torch_threads=1),
        revision=FixedRevision(None),
        reports=ReportFiles(tmp_path / "reports"),
        packages=RegistryPackages(registry),
        libraries=FixedVersions({"drl-trading": "0"}),
    )
    result = service.train(TrainingRequest((EURUSD,), rng, "c1"))
    used = "cuda" if torch.cuda.is_available() else "cpu"
    manifest = service.packages.load(result.model).manifest
    fit = manifest.training["fit"]
    assert fit["device"] == used and fit["n_envs"] == PPO_N_ENVS
    hyper = {"n_steps": MIN_N_STEPS, "batch_size": MIN_BATCH, "n_epochs": 5}
    assert fit["hyperparameters"] == hyper
    assert fit["timesteps"] == 64  # 2 steps x 32 copies
    run = registry.runs[result.run_id]
    provenance = run.dicts[PROVENANCE_ARTIFACT]
    assert provenance["torch"]["device"] == used
    assert run.params["fit.device"] == used
