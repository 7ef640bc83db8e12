"""Contract of the trainer port over Stable-Baselines3: a fit on a tiny series gives a model a
package is written from and loaded back, the observation statistics it was trained with, progress
during and at the end, and the same model again for the same seed.

There is no fake trainer: what a fit returns must be a model the policy package can save and
predict with, which only a real learning library provides.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from drl_trading.common.agent_state import STATE_SIZE
from drl_trading.common.market_series import MarketSeries
from drl_trading.policy.package import ModelManifest, write_package
from drl_trading.policy.predictor import Predictor
from drl_trading.strategy.api import BaseStrategy
from drl_trading.training.adapter.sb3_trainer import SB3Trainer
from drl_trading.training.core.config import AlgorithmSettings
from drl_trading.training.core.env import EnvConfig, TradingEnv
from drl_trading.training.core.ports import FitJob, FitProgress, FittedModel, Trainer

N_BARS = 300
FEATURES = ("f0", "f1", "f2")
WINDOW = 2
TIMESTEPS = 256
ENV = EnvConfig(window=WINDOW, episode_bars=16, feature_names=FEATURES)
PPO = AlgorithmSettings(
    name="PPO", hyperparameters={"n_steps": 64, "batch_size": 32, "n_epochs": 2}, net_arch=[16]
)


@pytest.fixture(params=["sb3"])
def trainer(request: pytest.FixtureRequest) -> Trainer:
    return SB3Trainer(device="cpu", torch_threads=1)


def tiny_series(seed: int = 3) -> MarketSeries:
    """A 5-minute random walk with three standard-normal features."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, N_BARS)))
    times = np.datetime64("2024-01-01T00:05") + np.arange(N_BARS) * np.timedelta64(5, "m")
    return MarketSeries(
        "BTCUSDT",
        times.astype("datetime64[us]"),
        rng.standard_normal((N_BARS, len(FEATURES))).astype(np.float32),
        close * (1 + rng.normal(0.0, 0.001, N_BARS)),
        close,
    )


class Envs:
    """The environment factory of a job, counting the environments it made."""

    def __init__(self) -> None:
        self.series = [tiny_series()]
        self.made = 0

    def __call__(self) -> TradingEnv:
        self.made += 1
        return TradingEnv(self.series, BaseStrategy().reward, ENV)


def job(envs: Envs, *, seed: int = 11, normalize_observations: bool = True) -> FitJob:
    return FitJob(
        make_env=envs,
        n_envs=2,
        algorithm=PPO,
        total_timesteps=TIMESTEPS,
        seed=seed,
        normalize_observations=normalize_observations,
        normalize_reward=True,
    )


def manifest() -> ModelManifest:
    return ModelManifest(
        algorithm=PPO.name,
        policy="default",
        action_mode=ENV.action_mode,
        window=WINDOW,
        feature_columns=list(FEATURES),
        feature_set={},
        feature_set_version="test",
        feature_view="test_view",
        base_timeframe="5m",
        strategy={"name": "base", "version": "0", "ref": "test"},
        max_position=ENV.max_position,
        allow_short=ENV.allow_short,
        fee_bps=ENV.fee_bps,
        slippage_bps=ENV.slippage_bps,
    )


def inputs(n: int = 32) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    features = rng.standard_normal((n, WINDOW, len(FEATURES))).astype(np.float32)
    state = np.zeros((n, STATE_SIZE), dtype=np.float32)
    state[:, 0] = rng.choice([-1.0, 0.0, 1.0], size=n)
    return features, state


def confidences(fitted: FittedModel) -> np.ndarray:
    return Predictor(manifest(), fitted.normalization, fitted.model).predict(*inputs()).confidence


def test_a_fit_gives_a_model_a_package_is_written_from_and_loaded_back(
    trainer: Trainer, tmp_path: Path
) -> None:
    envs = Envs()
    fitted = trainer.fit(job(envs), lambda p: None)
    assert envs.made == 2  # one environment per parallel environment
    norm = fitted.normalization
    size = WINDOW * len(FEATURES) + STATE_SIZE
    assert norm.mean.shape == norm.var.shape == (size,)
    assert (norm.var > 0).all() and not np.allclose(norm.mean, 0.0)  # learned from the data
    assert math.isfinite(fitted.seconds) and fitted.seconds >= 0.0
    package = write_package(tmp_path / "package", fitted.model, norm, manifest())
    loaded = Predictor.load(package)
    np.testing.assert_array_equal(loaded.normalization.mean, norm.mean)
    in_memory = Predictor(manifest(), norm, fitted.model).predict(*inputs())
    again = loaded.predict(*inputs())
    np.testing.assert_array_equal(again.action, in_memory.action)
    np.testing.assert_allclose(again.confidence, in_memory.confidence, atol=1e-6)


def test_progress_is_reported_during_the_fit_and_at_its_end(trainer: Trainer) -> None:
    seen: list[FitProgress] = []
    trainer.fit(job(Envs()), seen.append)
    assert len(seen) >= 2
    assert all(p.total == TIMESTEPS for p in seen)
    steps = [p.timesteps for p in seen]
    episodes = [p.episodes for p in seen]
    assert steps == sorted(steps) and steps[-1] >= TIMESTEPS
    assert episodes == sorted(episodes)
    last = seen[-1]
    # 16-bar episodes over 256 steps: episodes have finished by the end
    assert last.episodes >= 1
    assert last.mean_episode_reward is not None and math.isfinite(last.mean_episode_reward)
    assert last.mean_episode_equity is not None and last.mean_episode_equity > 0.0
    assert all(p.steps_per_second >= 0.0 for p in seen)
    first_with_episodes = next(p for p in seen if p.episodes > 0)
    assert all(p.mean_episode_reward is None for p in seen if p.episodes == 0)
    assert first_with_episodes.mean_episode_reward is not None


def test_the_same_seed_fits_the_same_model(trainer: Trainer) -> None:
    first = trainer.fit(job(Envs()), lambda p: None)
    second = trainer.fit(job(Envs()), lambda p: None)
    other = trainer.fit(job(Envs(), seed=12), lambda p: None)
    np.testing.assert_array_equal(first.normalization.mean, second.normalization.mean)
    np.testing.assert_array_equal(first.normalization.var, second.normalization.var)
    np.testing.assert_array_equal(confidences(first), confidences(second))
    assert not np.array_equal(confidences(first), confidences(other))


def test_without_observation_normalisation_the_statistics_are_the_identity(
    trainer: Trainer,
) -> None:
    fitted = trainer.fit(job(Envs(), normalize_observations=False), lambda p: None)
    features, state = inputs()
    obs = np.concatenate([features.reshape(len(features), -1), state], axis=1)
    assert fitted.normalization.mean.shape == (obs.shape[1],)
    np.testing.assert_array_equal(fitted.normalization.apply(obs), obs)


def test_a_fit_leaves_no_folder_in_the_temporary_directory(
    trainer: Trainer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SB3's default logger makes an empty ``SB3-<time>`` folder in the temporary directory at
    every fit: a tuning study of 100 trials left 100 of them in /tmp."""
    import tempfile

    monkeypatch.delenv("SB3_LOGDIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    trainer.fit(job(Envs()), lambda p: None)
    assert list(tmp_path.iterdir()) == []
