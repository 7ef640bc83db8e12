"""Settings of the training service: data splits, environment, algorithm, registry, gate."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from drl_trading.evaluation.baselines import RuleLookbacks
from drl_trading.policy.algorithms import AlgorithmName, resolve_action_mode
from drl_trading.training.core.hyperparameters import (
    DEFAULT_N_ENVS,
    MIN_BATCH,
    PPO_DEFAULTS,
    PPO_MINIBATCHES,
    PPO_N_ENVS,
    default_n_envs,
)

_FROZEN = ConfigDict(frozen=True, extra="forbid")

WindowKind = Literal["expanding", "rolling"]
"""How a walk-forward fold's training window grows: from the range's start to an embargo before
its validation (``expanding``), or the same length in every fold, sliding forward (``rolling``)."""


class SplitSettings(BaseModel):
    model_config = _FROZEN
    validation_fraction: float = Field(
        0.15, gt=0, lt=1, description="Share of the range for validation (the gate), by time."
    )
    test_fraction: float = Field(
        0.15, gt=0, lt=1, description="Share of the range for the test backtest (the last part)."
    )
    embargo: timedelta = Field(timedelta(hours=12), description="Unused gap between parts.")
    walk_forward_folds: int = Field(
        1,
        ge=1,
        description="Train one model per walk-forward fold (--folds overrides it); the last "
        "fold's is registered.",
    )
    window: WindowKind = Field(
        "expanding",
        description="A fold's training window: expanding (from the range's start) or rolling "
        "(train_length, the same in every fold); --window overrides it.",
    )
    train_length: timedelta | None = Field(
        None,
        gt=timedelta(0),
        description="Rolling windows: each fold's training length, in whole base bars (of the "
        "market, where it closes, as the embargo); null: as long as fold 0's expanding window "
        "(--train-length overrides it).",
    )

    @model_validator(mode="after")
    def _length_is_rolling(self) -> SplitSettings:
        if self.window == "expanding" and self.train_length is not None:
            raise ValueError(
                "train_length applies to rolling windows only: set training.split.window to "
                "rolling, or remove training.split.train_length"
            )
        return self


class EnvSettings(BaseModel):
    model_config = _FROZEN
    window: int = Field(1, ge=1, description="Bars of features per observation.")
    action_mode: Literal["discrete", "continuous"] | None = Field(
        None, description="None: discrete where the algorithm allows it, else continuous."
    )
    fee_bps: float = Field(5.0, ge=0, description="Exchange fee per unit of position changed.")
    slippage_bps: float = Field(2.0, ge=0, description="Slippage per unit of position changed.")
    episode_bars: int = Field(2048, ge=16, description="Steps per training episode.")
    n_envs: int | None = Field(
        None,
        ge=1,
        description=f"Environment copies stepped together; null: {PPO_N_ENVS} for PPO, "
        f"MaskablePPO and RecurrentPPO (their defaults are chosen for them), {DEFAULT_N_ENVS} "
        "for the other algorithms.",
    )
    vectorized: Literal["batched", "dummy"] = Field(
        "batched",
        description="How the n_envs copies step: batched (all at once on numpy arrays, "
        "BatchedTradingEnv) or dummy (one by one in SB3's DummyVecEnv); both give the same "
        "episodes for the same seed.",
    )


class AlgorithmSettings(BaseModel):
    model_config = _FROZEN
    name: AlgorithmName = Field("PPO", description="Algorithm (--algorithm overrides it).")
    policy: str | None = Field(None, description="SB3 policy; default MlpPolicy / MlpLstmPolicy.")
    hyperparameters: dict[str, Any] = Field(
        default_factory=dict,
        description="Passed to the SB3 constructor (n_steps, gamma, ...); the PPOs' defaults, "
        f"chosen for CPU throughput: n_steps {PPO_DEFAULTS['n_steps']} (shorter where one "
        f"rollout covers the run), n_epochs {PPO_DEFAULTS['n_epochs']}, batch_size a rollout "
        f"(n_steps x n_envs) / {PPO_MINIBATCHES}, at least {MIN_BATCH}.",
    )
    net_arch: list[int] | None = Field(None, description="Hidden layers, e.g. [64, 64].")


class GateSettings(BaseModel):
    """A new version becomes champion only if its walk-forward evidence passes every check.

    The evidence is the out-of-sample (validation) returns of every fold and seed, net of
    costs (`drl_trading.training.core.evidence`); every check can be switched off (None or
    false) and the verdict names each one with its figures (docs/training.md)."""

    model_config = _FROZEN
    min_sharpe: float | None = Field(
        0.0, description="Out-of-sample Sharpe (after costs) must exceed it; null: no check."
    )
    beat_buy_and_hold: bool = Field(True, description="...and exceed buy-and-hold's Sharpe.")
    max_drawdown: float = Field(
        0.5, gt=0, le=1, description="...and every seed's stitched drawdown stays within it."
    )
    beat_champion: bool = Field(
        False, description="...and beat the current champion's out-of-sample Sharpe, if any."
    )
    min_deflated_sharpe: float | None = Field(
        0.95,
        ge=0,
        le=1,
        description="...and the deflated Sharpe ratio (probability the Sharpe is not the luck "
        "of the trials run for this model, counted from MLflow) reaches it; null: no check.",
    )
    ci_above_best_baseline: bool = Field(
        True,
        description="...and the lower bound of the Sharpe's block-bootstrap confidence interval "
        "exceeds the best baseline's Sharpe (buy-and-hold, flat, random, momentum, SMA cross).",
    )
    confidence: float = Field(
        0.90, gt=0, lt=1, description="Two-sided coverage of that confidence interval."
    )
    max_seed_sharpe_spread: float | None = Field(
        2.0,
        gt=0,
        description="...and the std of the per-seed out-of-sample Sharpes stays within this "
        "many standard errors of the out-of-sample Sharpe (measured from 2 seeds, "
        "training.seeds); null: no check.",
    )
    """k in ``std(seed Sharpes, ddof=1) <= k x SE``, SE the standard error of the annualised
    out-of-sample Sharpe over the evidence's steps (`gate.seed_sharpe_standard_error`). The limit
    is relative because an annualised Sharpe over a few weeks has a standard error of several
    units: an absolute limit refuses real edges for the sampling noise alone. The default 2 is
    two standard errors, chosen before any calibration: two seeds that were independent samples
    of one true Sharpe would have a std of SE x |Z| (Z standard normal), above 2 SE in 4.6% of
    runs; seeds trade the same bars, so their Sharpes are correlated and scatter less, and a
    spread beyond 2 SE says the result depends on the seed more than on the data."""

    @model_validator(mode="before")
    @classmethod
    def _renamed_seed_check(cls, data: Any) -> Any:
        if isinstance(data, dict) and "max_seed_sharpe_std" in data:
            raise ValueError(
                f"max_seed_sharpe_std (got {data['max_seed_sharpe_std']!r}) was renamed to "
                "max_seed_sharpe_spread, which is in units of the out-of-sample Sharpe's "
                "standard error (default 2.0), no longer annualised Sharpe units: replace the "
                "key (or set it to null to switch the check off)"
            )
        return data


class BaselineSettings(BaseModel):
    """The simple rules every backtest runs beside the model, in bars of the base timeframe."""

    model_config = _FROZEN
    momentum_bars: int = Field(
        20,
        ge=1,
        description="Momentum rule: long when the close is above the close this many "
        "bars earlier (short or flat below, as the model may).",
    )
    sma_fast_bars: int = Field(10, ge=1, description="Moving-average cross: the fast mean's bars.")
    sma_slow_bars: int = Field(
        50, ge=2, description="Moving-average cross: the slow mean's bars (more than the fast)."
    )

    @model_validator(mode="after")
    def _fast_below_slow(self) -> BaselineSettings:
        if self.sma_fast_bars >= self.sma_slow_bars:
            raise ValueError(
                f"sma_fast_bars ({self.sma_fast_bars}) must be less than sma_slow_bars "
                f"({self.sma_slow_bars})"
            )
        return self

    @property
    def lookbacks(self) -> RuleLookbacks:
        return RuleLookbacks(self.momentum_bars, self.sma_fast_bars, self.sma_slow_bars)


class RegistrySettings(BaseModel):
    model_config = _FROZEN
    tracking_uri: str | None = Field(
        None, description="MLflow tracking URI; default sqlite under <home>/mlflow."
    )
    artifact_location: str | None = Field(None, description="Default <home>/mlflow/artifacts.")
    experiment: str = Field("drl-trading", description="MLflow experiment of the runs.")
    model_name: str | None = Field(None, description="Registered model; default drl-<strategy>.")


class TrainingSettings(BaseModel):
    model_config = _FROZEN
    total_timesteps: int = Field(
        200_000,
        ge=1,
        description="Environment steps to train for, summed over the n_envs environments "
        "(--timesteps of train and quickstart overrides it).",
    )
    seed: int = Field(42, description="Seeds numpy, torch, the model and the environments.")
    seeds: int = Field(
        1,
        ge=1,
        description="Trainings per walk-forward fold, seeded seed, seed + 1000, ...; the gate "
        "judges their mean out-of-sample returns and their spread (the model of training.seed "
        "is registered).",
    )
    device: str = Field(
        "auto",
        description="torch device: auto (cuda where torch sees a GPU, else cpu), cpu, cuda, "
        "cuda:1, ...; the one used is recorded in the model's manifest and provenance.",
    )
    torch_threads: int | None = Field(
        1,
        ge=1,
        description="torch intra-op threads; 1 is fastest for small MLPs (2 threads made PPO "
        "updates 13x slower on a busy 2-core machine); None keeps torch's default.",
    )
    normalize_observations: bool = Field(
        True, description="Running mean/std normalisation of observations (VecNormalize)."
    )
    normalize_reward: bool = Field(
        True, description="Scale rewards by a running estimate of the return's std (VecNormalize)."
    )
    random_agent_seeds: int = Field(5, ge=1, description="Seeds of the random baseline.")
    baselines: BaselineSettings = BaselineSettings()
    split: SplitSettings = SplitSettings()
    env: EnvSettings = EnvSettings()
    algorithm: AlgorithmSettings = AlgorithmSettings()
    gate: GateSettings = GateSettings()
    registry: RegistrySettings = RegistrySettings()
    reports_dir: Path | None = Field(None, description="Default <home>/reports.")

    @model_validator(mode="after")
    def _compatible(self) -> TrainingSettings:
        resolve_action_mode(self.algorithm.name, self.env.action_mode)
        return self

    @property
    def action_mode(self) -> str:
        return resolve_action_mode(self.algorithm.name, self.env.action_mode)

    @property
    def n_envs(self) -> int:
        """The environment copies a fit steps: ``env.n_envs``, or the algorithm's default."""
        return self.env.n_envs or default_n_envs(self.algorithm.name)
