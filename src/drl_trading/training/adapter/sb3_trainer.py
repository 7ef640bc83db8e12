"""`Trainer` on Stable-Baselines3 (and sb3-contrib): the job's batched environment (or
DummyVecEnv + Monitor copies) + VecNormalize.

Torch and SB3 are imported inside the functions: importing torch costs about a second, and
processes that build the training service without training (or never train) should not pay it.
Everything that touches a random generator happens in one fixed order (torch threads, global
seeds, environments, their seeds, the model), so a seed reproduces a model bit for bit on one
machine.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import structlog

from drl_trading.common.errors import UsageError
from drl_trading.policy.algorithms import AlgorithmError, algorithm_class, algorithm_info
from drl_trading.policy.package import ObsNormalization
from drl_trading.training.core.hyperparameters import fit_hyperparameters
from drl_trading.training.core.ports import FitJob, FitProgress, FitProgressHook, FittedModel
from drl_trading.training.core.provenance import TORCH_DETERMINISM

log = structlog.get_logger(__name__)

CLIP_OBS = 10.0
"""Standardised observations are clipped to +-10 standard deviations."""
RECENT_EPISODES = 20
"""Episodes the reported mean episode reward and equity average over."""


def build_model(
    name: str,
    env: Any,
    *,
    policy: str | None,
    hyperparameters: dict[str, Any],
    net_arch: list[int] | None,
    seed: int,
    device: str,
) -> Any:
    """An untrained SB3 model of algorithm ``name`` on ``env``.

    ``policy`` None takes the algorithm's default; ``hyperparameters`` go to the constructor
    (``policy_kwargs`` among them is merged with ``net_arch``, the hidden layer sizes).
    """
    info = algorithm_info(name)
    cls = algorithm_class(name)
    params = dict(hyperparameters)
    policy_kwargs = dict(params.pop("policy_kwargs", {}) or {})
    if net_arch is not None:
        policy_kwargs["net_arch"] = list(net_arch)
    try:
        return cls(
            policy or info.default_policy,
            env,
            seed=seed,
            device=device,
            verbose=0,
            policy_kwargs=policy_kwargs or None,
            **params,
        )
    except TypeError as exc:
        raise AlgorithmError(f"invalid hyperparameters for {name}: {exc}") from exc


def apply_torch_determinism(torch: Any) -> None:
    """`TORCH_DETERMINISM` on the ``torch`` module: deterministic kernels (a warning, not an
    error, for an operation torch has none for), cuDNN without autotuning, and the cuBLAS
    workspace deterministic GPU matrix products need (an environment variable cuBLAS reads when
    it starts: one already set is kept)."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", TORCH_DETERMINISM["cublas_workspace_config"])
    torch.use_deterministic_algorithms(
        TORCH_DETERMINISM["use_deterministic_algorithms"], warn_only=True
    )
    torch.backends.cudnn.deterministic = TORCH_DETERMINISM["cudnn_deterministic"]
    torch.backends.cudnn.benchmark = TORCH_DETERMINISM["cudnn_benchmark"]


def resolve_device(torch: Any, requested: str) -> str:
    """The torch device ``requested`` (``training.device``) means on this machine: ``auto`` is
    ``cuda`` where torch sees a CUDA GPU, else ``cpu``; any other value must name a device torch
    knows, and a CUDA one needs a GPU torch can see. A `UsageError` names the setting."""
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        kind = torch.device(requested).type
    except (RuntimeError, TypeError):
        raise UsageError(
            f"training.device {requested!r} is not a torch device: set it to auto, cpu, cuda "
            "or cuda:N"
        ) from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise UsageError(
            f"training.device is {requested!r} but torch sees no CUDA GPU on this machine "
            f"(torch {torch.__version__}, torch.cuda.is_available() is False): set "
            "training.device to auto or cpu, or install a CUDA build of torch"
        )
    return requested


class SB3Trainer:
    """Fits with SB3 on ``device`` (``training.device``: auto, cpu, cuda, ...; resolved when a
    fit starts, so that building the trainer does not import torch) using ``torch_threads``
    intra-op threads (None keeps torch's default)."""

    def __init__(self, *, device: str = "auto", torch_threads: int | None = 1) -> None:
        self.device = device
        self.torch_threads = torch_threads

    def fit(self, job: FitJob, on_progress: FitProgressHook) -> FittedModel:
        import torch
        from stable_baselines3.common.monitor import Monitor
        from stable_baselines3.common.utils import set_random_seed
        from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

        device = resolve_device(torch, self.device)
        if self.torch_threads:
            torch.set_num_threads(self.torch_threads)
        apply_torch_determinism(torch)
        set_random_seed(job.seed)

        def make(i: int) -> Callable[[], Any]:
            def _init() -> Any:
                env = job.make_env()
                env.reset(seed=job.seed + i)
                return Monitor(env, info_keywords=("equity",))

            return _init

        venv: Any
        if job.make_batched_env is not None:
            from drl_trading.training.adapter.sb3_batched_vec_env import seeded_vec_env

            venv = seeded_vec_env(job.make_batched_env(job.n_envs), job.seed)
        else:
            venv = DummyVecEnv([make(i) for i in range(job.n_envs)])
            venv.seed(job.seed)
        algorithm = job.algorithm
        gamma = float(algorithm.hyperparameters.get("gamma", 0.99))
        if job.normalize_observations or job.normalize_reward:
            venv = VecNormalize(
                venv,
                norm_obs=job.normalize_observations,
                norm_reward=job.normalize_reward,
                clip_obs=CLIP_OBS,
                gamma=gamma,
            )
        total = job.total_timesteps
        hyper = fit_hyperparameters(algorithm.name, algorithm.hyperparameters, job.n_envs, total)
        if hyper.shrunk is not None:
            log.info("rollout shortened to fit the run", algorithm=algorithm.name, why=hyper.shrunk)
        model = build_model(
            algorithm.name,
            venv,
            policy=algorithm.policy,
            hyperparameters=hyper.values,
            net_arch=algorithm.net_arch,
            seed=job.seed,
            device=device,
        )
        # SB3's default logger (verbose 0, no TensorBoard) makes an empty /tmp/SB3-<time> folder
        # at every learn(), never removed: one per training, per fold and per tuning trial.
        # Progress reaches the user through the callback; SB3's own figures go nowhere.
        model.set_logger(_silent_logger())
        callback = _progress_callback_class()(on_progress, total)
        started = time.perf_counter()
        model.learn(total_timesteps=total, callback=callback, progress_bar=False)
        seconds = time.perf_counter() - started
        if isinstance(venv, VecNormalize) and job.normalize_observations:
            norm = ObsNormalization(
                np.asarray(venv.obs_rms.mean, dtype=np.float64),  # type: ignore[attr-defined]
                np.asarray(venv.obs_rms.var, dtype=np.float64),  # type: ignore[attr-defined]
                float(venv.clip_obs),
                float(venv.epsilon),
            )
        else:
            norm = ObsNormalization.identity(int(venv.observation_space.shape[0]))
        return FittedModel(
            model,
            norm,
            seconds,
            device=str(model.device),
            hyperparameters=hyper.values,
            timesteps=int(model.num_timesteps),
        )


def _silent_logger() -> Any:
    """An SB3 logger that records the training figures in memory and writes no file or folder
    (SB3 reads them back within an update; nothing here reads them)."""
    from stable_baselines3.common.logger import Logger

    return Logger(folder=None, output_formats=[])


def _progress_callback_class() -> type:
    """The SB3 callback class, built on first use so that importing this module does not import
    torch."""
    from stable_baselines3.common.callbacks import BaseCallback

    class SB3Progress(BaseCallback):  # type: ignore[misc]
        """Collects finished episodes (from `Monitor`'s ``episode`` info) and reports every
        ``total / 50`` steps (at most 2048) and at the end of training."""

        def __init__(self, on_progress: FitProgressHook, total: int) -> None:
            super().__init__(verbose=0)
            self.on_progress_cb = on_progress
            self.total = total
            self.rewards: list[float] = []
            self.equities: list[float] = []
            self.started = time.perf_counter()
            self.every = max(1, min(2048, total // 50))
            self.last = 0

        def _on_step(self) -> bool:
            for info in self.locals.get("infos", []):
                ep = info.get("episode")
                if ep is not None:
                    self.rewards.append(float(ep["r"]))
                    self.equities.append(float(info.get("equity", np.nan)))
            if self.num_timesteps - self.last >= self.every:
                self.last = self.num_timesteps
                self._report()
            return True

        def _on_training_end(self) -> None:
            self._report()

        def _report(self) -> None:
            recent_r = self.rewards[-RECENT_EPISODES:]
            recent_e = self.equities[-RECENT_EPISODES:]
            mean_r = float(np.mean(recent_r)) if recent_r else None
            mean_e = float(np.nanmean(recent_e)) if recent_e else None
            elapsed = time.perf_counter() - self.started
            rate = self.num_timesteps / elapsed if elapsed > 0 else 0.0
            self.on_progress_cb(
                FitProgress(
                    int(self.num_timesteps), self.total, mean_r, mean_e, rate, len(self.rewards)
                )
            )

    return SB3Progress
