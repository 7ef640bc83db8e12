"""The hyperparameters a fit applies: the settings' own, then defaults for what they leave out.

PPO's defaults here are chosen for throughput on CPU at equal learning (docs/benchmarks.md,
"PPO defaults"): many environment copies stepped together (`BatchedTradingEnv`), short
rollouts per copy, large minibatches and few epochs, so that a fit spends its time in a few
large matrix products instead of thousands of small ones. Stable-Baselines3's own defaults (4
copies here before, ``n_steps`` 2048, ``batch_size`` 64, ``n_epochs`` 10) make 1,280 gradient
steps of 64 samples per 8,192 environment steps; these make far fewer, larger ones, which
measured several times faster with the same out-of-sample Sharpe.

An on-policy algorithm trains whole rollouts of ``n_steps x n_envs`` steps, so a run shorter
than one default rollout would train a whole one anyway (a 1,000-step quickstart 8,192 steps):
there ``n_steps`` shrinks so that one rollout just covers the requested steps, and the fit says
so (`FitHyperparameters.shrunk`). Values the settings give are applied as they are.

Pure: the trainer applies it and the service records the result, so the two cannot disagree.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from drl_trading.policy.algorithms import algorithm_info

__all__ = [
    "DEFAULT_N_ENVS",
    "MIN_BATCH",
    "MIN_N_STEPS",
    "PPO_DEFAULTS",
    "PPO_FAMILY",
    "PPO_MINIBATCHES",
    "PPO_N_ENVS",
    "FitHyperparameters",
    "default_n_envs",
    "fit_hyperparameters",
]

PPO_N_ENVS = 32
"""Environment copies the PPOs (`PPO_FAMILY`) step together by default (``training.env.n_envs``
null)."""
PPO_FAMILY = frozenset({"PPO", "MaskablePPO", "RecurrentPPO"})
"""Algorithms that get PPO's throughput defaults: MaskablePPO (PPO with the short action masked)
measured 10.8x (10.8..11.1) its old defaults in env steps/s with them, RecurrentPPO (an LSTM
policy) 3.1x (2.9..3.2), each with an out-of-sample Sharpe not worse over three seeds
(docs/benchmarks.md, "PPO defaults")."""
DEFAULT_N_ENVS = 4
"""Copies of every other algorithm: off-policy ones make one gradient step per vector step
(``train_freq``), so more copies would mean fewer updates per sample; A2C updates every 5 vector
steps, and its defaults were not measured here."""

PPO_DEFAULTS: Mapping[str, int] = {"n_steps": 256, "n_epochs": 5}
"""PPO's constructor defaults where the settings leave them out: a rollout of 256 steps per
copy (8,192 with 32 copies) and 5 epochs over it; ``batch_size`` is `PPO_MINIBATCHES`."""
PPO_MINIBATCHES = 8
"""PPO's default ``batch_size`` is one rollout (``n_steps x n_envs``) over this many, at least
`MIN_BATCH` (1,024 with the default 32 copies): 40 gradient steps a rollout, whatever the
number of copies, where a fixed size would leave a few copies one step an epoch."""
MIN_BATCH = 64
"""The smallest default ``batch_size`` (Stable-Baselines3's), or the whole rollout if shorter."""
_ON_POLICY_DEFAULTS: Mapping[str, Mapping[str, int]] = {
    **{name: PPO_DEFAULTS for name in PPO_FAMILY},
    "A2C": {"n_steps": 5},
}
MIN_N_STEPS = 2
"""The shortest rollout per copy a shrunk ``n_steps`` takes (a rollout of one step cannot
estimate an advantage)."""


def default_n_envs(algorithm: str) -> int:
    """Copies ``algorithm`` steps together when ``training.env.n_envs`` is not set."""
    return PPO_N_ENVS if algorithm in PPO_FAMILY else DEFAULT_N_ENVS


@dataclass(frozen=True, slots=True)
class FitHyperparameters:
    """The constructor arguments of one fit and what was shortened for it."""

    values: dict[str, Any]
    shrunk: str | None = None
    """Why ``n_steps`` is below its default (a run shorter than one default rollout), for the
    log; None where nothing was shortened."""


def fit_hyperparameters(
    algorithm: str, given: Mapping[str, Any], n_envs: int, total_timesteps: int
) -> FitHyperparameters:
    """``given`` (``training.algorithm.hyperparameters``) with the defaults of ``algorithm``
    for the keys it leaves out, for ``n_envs`` copies and ``total_timesteps`` steps (summed over
    the copies). Off-policy algorithms get ``given`` unchanged (their library defaults apply).

    A default ``n_steps`` longer than the run needs shrinks to ``ceil(total / n_envs)`` (at
    least `MIN_N_STEPS`), so one rollout covers the run with fewer than ``n_envs`` steps to
    spare; a default ``batch_size`` never exceeds one rollout (PPO's is a rollout over
    `PPO_MINIBATCHES`). Applying the result again gives the same values."""
    values = dict(given)
    if not algorithm_info(algorithm).on_policy:
        return FitHyperparameters(values)
    defaults = _ON_POLICY_DEFAULTS[algorithm]
    shrunk: str | None = None
    if "n_steps" not in values:
        default = defaults["n_steps"]
        fits = max(MIN_N_STEPS, math.ceil(total_timesteps / n_envs))
        values["n_steps"] = min(default, fits)
        if fits < default:
            shrunk = (
                f"n_steps {default} -> {values['n_steps']}: one rollout of "
                f"{values['n_steps']} steps x {n_envs} copies covers the {total_timesteps:,} "
                "requested timesteps (on-policy algorithms train whole rollouts)"
            )
    rollout = int(values["n_steps"]) * n_envs
    for key, default in defaults.items():
        if key not in values:
            values[key] = min(default, rollout) if key == "batch_size" else default
    if algorithm in PPO_FAMILY and "batch_size" not in values:
        values["batch_size"] = max(min(MIN_BATCH, rollout), rollout // PPO_MINIBATCHES)
    return FitHyperparameters(values, shrunk)
