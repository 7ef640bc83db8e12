"""What `drl-trading tune` searches: the algorithm's hyperparameters and a strategy's tunables.

A search space maps a parameter name to its range (`drl_trading.strategy.tunable`). The
algorithm's are named as its constructor's keywords (``learning_rate``); a strategy's carry the
prefix ``strategy.`` (``strategy.drawdown_penalty``), so both live in one namespace the sampler
and the MLflow runs show. Drawing values goes through `Suggest`, a port the tuning library's
adapter implements: this module imports no tuning library, and a test draws with a fake.

The default PPO space follows the ranges the SB3 zoo tunes over, narrowed to what trains on CPU
in a tuning budget; ``tuning.space`` in the configuration replaces any range or removes it
(``null``: keep the configured value).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from drl_trading.strategy.tunable import Choice, FloatRange, IntRange, ParamValue, Range

__all__ = [
    "PPO_SPACE",
    "STRATEGY_PREFIX",
    "SearchSpace",
    "SearchSpaceError",
    "Suggest",
    "TrialParameters",
    "algorithm_space",
    "draw",
    "search_space",
    "split_parameters",
]

STRATEGY_PREFIX = "strategy."
"""The prefix of a strategy parameter's name in a search space (the rest is its keyword)."""

SearchSpace = Mapping[str, Range]

PPO_SPACE: SearchSpace = {
    "learning_rate": FloatRange(1e-5, 1e-3, log=True),
    "n_steps": Choice((128, 256, 512, 1024, 2048)),
    "batch_size": Choice((32, 64, 128, 256)),
    "gamma": FloatRange(0.9, 0.9999),
    "gae_lambda": FloatRange(0.8, 1.0),
    "ent_coef": FloatRange(1e-8, 0.1, log=True),
    "clip_range": Choice((0.1, 0.2, 0.3, 0.4)),
    "n_epochs": IntRange(1, 20),
}
"""PPO's hyperparameters and their ranges (rollout steps per environment, minibatch size in
transitions, discount and GAE factors per step, entropy bonus weight, clip ratio, passes over a
rollout)."""

_DEFAULT_SPACES: Mapping[str, SearchSpace] = {"PPO": PPO_SPACE}


class SearchSpaceError(ValueError):
    """A search space that cannot be built: names what is wrong and how to fix it."""


class Suggest(Protocol):
    """Draws one value of a named parameter from its range (the tuning library's trial)."""

    def suggest(self, name: str, space: Range) -> ParamValue: ...


@dataclass(frozen=True, slots=True)
class TrialParameters:
    """One trial's values, split by who takes them."""

    hyperparameters: dict[str, Any]
    """Laid over ``training.algorithm.hyperparameters``."""
    strategy_params: dict[str, Any]
    """Laid over ``strategy.params`` (keywords of the strategy's constructor)."""


def algorithm_space(algorithm: str) -> SearchSpace:
    """The default space of ``algorithm`` (PPO has one; the others start empty and take their
    ranges from ``tuning.space``)."""
    return dict(_DEFAULT_SPACES.get(algorithm, {}))


def search_space(
    algorithm: str,
    strategy_tunables: Mapping[str, Range],
    overrides: Mapping[str, Range | None] | None = None,
) -> dict[str, Range]:
    """The space one study searches: ``algorithm``'s default ranges and the strategy's
    tunables (prefixed `STRATEGY_PREFIX`), then ``overrides`` (``tuning.space``): a range
    replaces or adds one, None removes it. `SearchSpaceError` when nothing is left to search or
    an override names a strategy parameter the strategy does not declare."""
    space: dict[str, Range] = dict(algorithm_space(algorithm))
    space |= {f"{STRATEGY_PREFIX}{k}": v for k, v in strategy_tunables.items()}
    for name, value in (overrides or {}).items():
        if name.startswith(STRATEGY_PREFIX) and name not in space and value is not None:
            declared = ", ".join(sorted(strategy_tunables)) or "none"
            raise SearchSpaceError(
                f"tuning.space names {name}, which the strategy does not declare tunable "
                f"(its tunable parameters: {declared}); declare it in tunable_parameters() or "
                "remove it from tuning.space"
            )
        if value is None:
            space.pop(name, None)
        else:
            space[name] = value
    if not space:
        raise SearchSpaceError(
            f"nothing to search: {algorithm} has no default search space and neither the "
            "strategy nor tuning.space names a parameter; set ranges in tuning.space, e.g. "
            "tuning.space.learning_rate: {low: 1.0e-5, high: 1.0e-3, log: true}"
        )
    return space


def draw(space: SearchSpace, suggest: Suggest, n_envs: int) -> TrialParameters:
    """One value per parameter of ``space`` from ``suggest``, split by who takes it.

    A PPO minibatch cannot exceed a rollout (``n_steps x n_envs`` transitions): a larger
    ``batch_size`` drawn is lowered to the rollout, so every draw trains."""
    values = {name: suggest.suggest(name, rng) for name, rng in space.items()}
    return split_parameters(values, n_envs)


def split_parameters(values: Mapping[str, Any], n_envs: int) -> TrialParameters:
    """``values`` (names as in a search space) as `TrialParameters`, with the minibatch
    limited to the rollout (`draw`): also how a finished trial's values are replayed."""
    hyper = {k: v for k, v in values.items() if not k.startswith(STRATEGY_PREFIX)}
    params = {
        k.removeprefix(STRATEGY_PREFIX): v
        for k, v in values.items()
        if k.startswith(STRATEGY_PREFIX)
    }
    if "batch_size" in hyper and "n_steps" in hyper:
        hyper["batch_size"] = min(int(hyper["batch_size"]), int(hyper["n_steps"]) * n_envs)
    return TrialParameters(hyper, params)
