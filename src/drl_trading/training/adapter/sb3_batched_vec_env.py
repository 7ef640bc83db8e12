"""SB3's `VecEnv` over `BatchedTradingEnv`: what the trainer hands SB3 instead of DummyVecEnv.

The stepping, resets, infos (``terminal_observation``, ``TimeLimit.truncated``, Monitor's
``episode``) and seeding live in the core environment, which has no SB3 import; this class only
gives them SB3's base class, so that VecNormalize wraps it and the algorithms accept it. The
copies share one configuration, so an attribute asked of some copies is the batched
environment's, and a method called on some copies is called once per copy asked.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env.base_vec_env import (
    VecEnv,
    VecEnvIndices,
    VecEnvObs,
    VecEnvStepReturn,
)

from drl_trading.training.core.batched_env import BatchedTradingEnv


class SB3BatchedVecEnv(VecEnv):  # type: ignore[misc]
    def __init__(self, env: BatchedTradingEnv) -> None:
        self.env = env
        super().__init__(env.num_envs, env.observation_space, env.action_space)
        self.reset_infos = env.reset_infos  # the core updates this list in place at each reset

    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        return self.env.seed(seed)

    def set_options(self, options: list[dict[str, Any]] | dict[str, Any] | None = None) -> None:
        self.env.set_options(options)

    def reset(self) -> VecEnvObs:
        return self.env.reset()

    def step_async(self, actions: np.ndarray) -> None:
        self.env.step_async(actions)

    def step_wait(self) -> VecEnvStepReturn:
        return self.env.step_wait()

    def close(self) -> None:
        self.env.close()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        value = getattr(self.env, attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        chosen = list(self._get_indices(indices))
        if sorted(chosen) != list(range(self.num_envs)):
            raise ValueError(
                f"the batched environment's copies share {attr_name!r}: set it for all "
                f"{self.num_envs} copies (indices=None), or train with "
                "training.env.vectorized: dummy"
            )
        setattr(self.env, attr_name, value)

    def env_method(
        self,
        method_name: str,
        *method_args: Any,
        indices: VecEnvIndices = None,
        **method_kwargs: Any,
    ) -> list[Any]:
        method = getattr(self.env, method_name)
        return [method(*method_args, **method_kwargs) for _ in self._get_indices(indices)]

    def env_is_wrapped(
        self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None
    ) -> list[bool]:
        """Every copy reports what Monitor would, so it counts as wrapped in Monitor."""
        wrapped = issubclass(Monitor, wrapper_class)
        return [wrapped for _ in self._get_indices(indices)]


def seeded_vec_env(env: BatchedTradingEnv, seed: int) -> SB3BatchedVecEnv:
    """``env`` as SB3's VecEnv, seeded as `SB3Trainer` seeds DummyVecEnv copies: each copy is
    reset once with ``seed + i`` when it is made (which advances a copy's round-robin series
    when ``episode_bars`` is None), then ``VecEnv.seed(seed)`` seeds the reset the algorithm
    makes, so both give the same episodes."""
    env.seed(seed)
    env.reset()
    venv = SB3BatchedVecEnv(env)
    venv.seed(seed)
    return venv
