"""The algorithms training offers, what action space each needs, and where each class lives.

Loading a package needs the class of its algorithm; building and fitting a model is training's
SB3 adapter (`drl_trading.training.adapter.sb3_trainer`). Imports of Stable-Baselines3 and
sb3-contrib stay inside functions: importing torch costs about a second, and commands that never
train (ingest, features) should not pay it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

AlgorithmName = Literal["PPO", "A2C", "DQN", "SAC", "TD3", "RecurrentPPO", "MaskablePPO"]


@dataclass(frozen=True, slots=True)
class AlgorithmInfo:
    name: str
    module: str
    action_modes: tuple[str, ...]
    default_policy: str
    on_policy: bool


ALGORITHMS: dict[str, AlgorithmInfo] = {
    "PPO": AlgorithmInfo("PPO", "stable_baselines3", ("discrete", "continuous"), "MlpPolicy", True),
    "A2C": AlgorithmInfo("A2C", "stable_baselines3", ("discrete", "continuous"), "MlpPolicy", True),
    "DQN": AlgorithmInfo("DQN", "stable_baselines3", ("discrete",), "MlpPolicy", False),
    "SAC": AlgorithmInfo("SAC", "stable_baselines3", ("continuous",), "MlpPolicy", False),
    "TD3": AlgorithmInfo("TD3", "stable_baselines3", ("continuous",), "MlpPolicy", False),
    "RecurrentPPO": AlgorithmInfo(
        "RecurrentPPO", "sb3_contrib", ("discrete", "continuous"), "MlpLstmPolicy", True
    ),
    "MaskablePPO": AlgorithmInfo("MaskablePPO", "sb3_contrib", ("discrete",), "MlpPolicy", True),
}


class AlgorithmError(ValueError):
    pass


def algorithm_info(name: str) -> AlgorithmInfo:
    try:
        return ALGORITHMS[name]
    except KeyError:
        raise AlgorithmError(
            f"unknown algorithm {name!r}; choose one of {', '.join(ALGORITHMS)}"
        ) from None


def resolve_action_mode(name: str, requested: str | None) -> str:
    """The action mode to use: the requested one if the algorithm supports it, else its first."""
    info = algorithm_info(name)
    if requested is None:
        return info.action_modes[0]
    if requested not in info.action_modes:
        raise AlgorithmError(
            f"{name} does not support {requested} actions (it supports "
            f"{', '.join(info.action_modes)}); change training.env.action_mode or the algorithm"
        )
    return requested


def algorithm_class(name: str) -> Any:
    info = algorithm_info(name)
    if info.module == "stable_baselines3":
        import stable_baselines3

        return getattr(stable_baselines3, name)
    import sb3_contrib

    return getattr(sb3_contrib, name)
