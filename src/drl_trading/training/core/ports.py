"""The ports the training service owns: the trainer that fits a policy, where a fitted policy
becomes a registered package and comes back as a predictor, the probes of the code's revision and
the installed libraries, and the sink that keeps backtest reports.

The service decides what to train, on which data, with which seed and how to judge the result;
these ports do what needs a deep-learning library, a version-control tool or a file system, so
the service can be read (and its decisions tested) without any of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from drl_trading.common.domain import Symbol, Timeframe
from drl_trading.common.model_registry import ExperimentRun, ModelVersion
from drl_trading.policy.package import ModelManifest, ObsNormalization
from drl_trading.policy.predictor import Predictor
from drl_trading.training.core.batched_env import BatchedTradingEnv
from drl_trading.training.core.config import AlgorithmSettings
from drl_trading.training.core.env import TradingEnv

# -- the trainer ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FitJob:
    """One model to fit: the environment it learns in and how it learns.

    ``make_env`` builds one fresh environment; a trainer that steps several in parallel calls it
    ``n_envs`` times and seeds environment ``i`` with ``seed + i``.
    """

    make_env: Callable[[], TradingEnv]
    n_envs: int
    algorithm: AlgorithmSettings
    total_timesteps: int
    """Environment steps to learn for, summed over the ``n_envs`` environments."""
    seed: int
    """Seeds the library's global generators, the model and the environments."""
    normalize_observations: bool
    """Learn running observation statistics and train on standardised observations."""
    normalize_reward: bool
    """Scale rewards by the running standard deviation of the discounted return."""
    make_batched_env: Callable[[int], BatchedTradingEnv] | None = None
    """Builds the ``n_envs`` copies as one `BatchedTradingEnv` (the same episodes as ``make_env``
    copies, stepped together on arrays); None: the trainer steps ``make_env`` copies."""


@dataclass(frozen=True, slots=True)
class FitProgress:
    """Where a fit stands, reported every few thousand steps and once at its end."""

    timesteps: int
    total: int
    mean_episode_reward: float | None
    """Mean return of the last 20 finished episodes; None before the first one finishes."""
    mean_episode_equity: float | None
    """Mean final equity (a multiple of the starting equity 1) of those episodes."""
    steps_per_second: float
    episodes: int
    """Episodes finished so far, over all environments."""


FitProgressHook = Callable[[FitProgress], None]


@dataclass(frozen=True)
class FittedModel:
    """What a package is written from: the model, the observation statistics it was trained
    with (identity when observations were not normalised), and how long learning took."""

    model: Any
    """The library's model object; `drl_trading.policy` saves it and predicts with it."""
    normalization: ObsNormalization
    seconds: float
    """Wall-clock seconds of learning alone (model construction and imports excluded), so that
    ``total_timesteps / seconds`` measures training speed."""
    device: str
    """The torch device it was trained on (``training.device`` resolved: auto is cuda where
    torch sees a GPU, else cpu)."""
    hyperparameters: dict[str, Any]
    """The algorithm's constructor arguments as applied: the settings' with the defaults for
    what they leave out (`drl_trading.training.core.hyperparameters`)."""
    timesteps: int
    """Environment steps actually trained (an on-policy fit trains whole rollouts, so up to one
    rollout more than asked)."""


class Trainer(Protocol):
    def fit(self, job: FitJob, on_progress: FitProgressHook) -> FittedModel:
        """Fit one model for ``job``; ``on_progress`` is called during and at the end of it."""
        ...


# -- the code's revision -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Revision:
    """The version-control state of the framework's code a run was trained with."""

    commit: str
    dirty: bool
    """Tracked files differ from ``commit``: the run cannot be reproduced from the commit."""

    def __str__(self) -> str:
        return self.commit + ("-dirty" if self.dirty else "")


class CodeRevision(Protocol):
    def revision(self) -> Revision | None:
        """The current revision, or None when it cannot be known (not a checkout, no tool)."""
        ...


class LibraryVersions(Protocol):
    def versions(self, names: tuple[str, ...]) -> dict[str, str]:
        """``python`` and each distribution of ``names`` with its installed version ("not
        installed" for a missing one): what a registered model records to be rebuilt."""
        ...


# -- the data ------------------------------------------------------------------------------------

DataTimeframeLookup = Callable[[tuple[Symbol, ...], datetime, datetime], Timeframe]
"""The timeframe the bars of ``symbols`` over ``[start, end)`` were ingested under (the finest
stored there: preprocess stores only coarser ones); raises when they differ between symbols. A
model records it, so that what serves it reads bars of that timeframe."""


# -- model packages ------------------------------------------------------------------------------


class ModelPackages(Protocol):
    """A fitted policy becomes a model version here, and a version comes back as a predictor.

    The package folder (policy, normalisation, manifest: `policy.package`) is written and read by
    the adapter, so that the service does no file I/O; loading back what was registered is how
    the test backtest runs the model exactly as inference will.
    """

    def register(
        self, run: ExperimentRun, name: str, fitted: FittedModel, manifest: ModelManifest
    ) -> ModelVersion:
        """Writes the package of ``fitted`` and registers it as a new version of ``name``."""
        ...

    def load(self, version: ModelVersion) -> Predictor:
        """The predictor of a registered version, as the registry hands it out."""
        ...


# -- backtest reports ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReportDocuments:
    """One backtest's report, rendered: a self-contained HTML page and its figures as JSON."""

    stem: str
    """Name of the report without extension, unique per model version and backtest."""
    html: str
    metrics_json: str


class ReportPaths(NamedTuple):
    html: Path
    metrics: Path


class ReportSink(Protocol):
    def write(self, documents: ReportDocuments) -> ReportPaths:
        """Keep ``documents`` (replacing any report of the same stem); returns where they are,
        so that they can be logged as artifacts of the run."""
        ...
