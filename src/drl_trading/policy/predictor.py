"""A trained policy as inference and backtests use it: package on disk → actions + confidence.

A *model package* (see `drl_trading.policy.package`) is a folder with everything needed to act,
independent of the registry that stores it.

Two ways to act: `Predictor.predict` runs the SB3 policy in torch (any algorithm, including
recurrent ones) and is what the registry's pyfunc model calls; `NumpyPolicy` re-implements the
forward pass of MLP policies in numpy so that a backtest can push the feature part of the first
layer through one batched matmul and only do the agent-state part per bar, and a live decision
(`Predictor.decide`) is a few small matrix-vector products.

A package with the numpy layers (``policy.npz``) loads without torch, Stable-Baselines3 or
gymnasium: the SB3 model is only loaded, from the ``policy.zip`` bytes read at load time, when
something asks for the torch path (`predict`, `predict_observation`, `model`, `policy`). Those
bytes are checked at load to be an SB3 save (`read_policy_zip`), so a damaged or foreign file
fails there, not on the first use of the torch path.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from drl_trading.common.agent_state import DISCRETE_POSITIONS, STATE_SIZE
from drl_trading.policy.algorithms import algorithm_class, algorithm_info
from drl_trading.policy.numpy_policy import NumpyPolicy, normal_cdf, softmax
from drl_trading.policy.package import (
    ModelManifest,
    ModelPackageError,
    ObsNormalization,
    read_manifest,
    read_normalization,
    read_numpy_policy,
    read_policy_zip,
)


def _given(value: object) -> str:
    return "none" if value is None else "given"


@dataclass(frozen=True)
class PolicyOutput:
    target_position: np.ndarray  # (B,) float64 in [-max_position, max_position]
    action: np.ndarray  # (B,) int64: discrete action index (0 short, 1 flat, 2 long); -1 continuous
    confidence: np.ndarray  # (B,) float64 in [0, 1]


class Predictor:
    """Loads a package once; `predict` maps (features window, agent state) → action, confidence.

    Confidence: for discrete policies the probability of the chosen action (softmax of Q-values
    for DQN, which are not probabilities but rank the same way); for Gaussian policies the
    probability that a sampled action has the sign of the chosen one.

    Built either from the SB3 ``model`` itself (training, and packages without numpy layers) or
    from the numpy layers (``fast``) plus ``load_model``, which returns the SB3 model the first
    time the torch path is needed.
    """

    def __init__(
        self,
        manifest: ModelManifest,
        normalization: ObsNormalization,
        model: Any = None,
        *,
        fast: NumpyPolicy | None = None,
        load_model: Callable[[], Any] | None = None,
    ) -> None:
        if model is None and (fast is None or load_model is None):
            raise ModelPackageError(
                "Predictor needs the SB3 model, or numpy layers and load_model: got "
                f"model={_given(model)}, fast={_given(fast)}, load_model={_given(load_model)} "
                f"for a {manifest.algorithm} package"
            )
        self.manifest = manifest
        self.normalization = normalization
        self.recurrent = manifest.algorithm == "RecurrentPPO"
        self._lstm_state: Any = None
        self._model: Any = None
        self._load_model = load_model
        self._lock = threading.Lock()
        self._stored = fast
        self._fast: NumpyPolicy | None = fast
        self._fast_checked = fast is not None
        if model is not None:
            self._set_model(model)

    @classmethod
    def load(cls, package_dir: Path) -> Predictor:
        """Everything is read into memory here, so the folder may be deleted once this returns
        (the model source downloads each package into a temporary folder)."""
        package_dir = Path(package_dir)
        manifest = read_manifest(package_dir)
        algorithm_info(manifest.algorithm)  # an unknown algorithm fails now, not on first use
        norm = read_normalization(package_dir)
        fast = read_numpy_policy(package_dir, manifest)
        policy_zip = read_policy_zip(package_dir)
        algorithm = manifest.algorithm
        if fast is None:
            model = algorithm_class(algorithm).load(io.BytesIO(policy_zip), device="cpu")
            return cls(manifest, norm, model)

        def load_model() -> Any:
            return algorithm_class(algorithm).load(io.BytesIO(policy_zip), device="cpu")

        return cls(manifest, norm, fast=fast, load_model=load_model)

    # -- the SB3 model --------------------------------------------------------------------------

    @property
    def model(self) -> Any:
        """The SB3 model, loaded on first use where the package was loaded from numpy layers."""
        if self._model is None:
            with self._lock:
                if self._model is None:
                    assert self._load_model is not None
                    self._set_model(self._load_model())
                    self._load_model = None  # drops the policy.zip bytes
        return self._model

    @property
    def policy(self) -> Any:
        return self.model.policy

    @property
    def model_loaded(self) -> bool:
        """Whether the SB3 model (and so torch) is in memory."""
        return self._model is not None

    def _set_model(self, model: Any) -> None:
        model.policy.set_training_mode(False)
        self._model = model

    # -- inputs ---------------------------------------------------------------------------------

    def observation(self, features: np.ndarray, state: np.ndarray) -> np.ndarray:
        m = self.manifest
        features = np.asarray(features, dtype=np.float32)
        if features.ndim == 2:
            features = features[None]
        state = np.asarray(state, dtype=np.float32).reshape(-1, STATE_SIZE)
        if features.shape[1:] != (m.window, m.n_features):
            raise ModelPackageError(
                f"features must be (batch, {m.window}, {m.n_features}) for this model, "
                f"got {features.shape}"
            )
        if features.shape[0] != state.shape[0]:
            raise ModelPackageError(
                f"features and agent_state batch sizes differ: {features.shape[0]} windows, "
                f"{state.shape[0]} agent states"
            )
        obs = np.concatenate([features.reshape(features.shape[0], -1), state], axis=1)
        return self.normalization.apply(obs)

    def reset_state(self) -> None:
        """Forget a recurrent policy's memory (start of a new episode or stream)."""
        self._lstm_state = None

    # -- torch path -----------------------------------------------------------------------------

    def predict(self, features: np.ndarray, agent_state: np.ndarray) -> PolicyOutput:
        """``features``: (batch, window, n_features) or (window, n_features); ``agent_state``:
        (batch, 3) as `drl_trading.common.agent_state.agent_state` computes it."""
        return self.predict_observation(self.observation(features, agent_state))

    def predict_observation(self, obs: np.ndarray) -> PolicyOutput:
        """The same from already normalised observations (batch, obs_size)."""
        import torch

        m = self.manifest
        policy = self.policy
        with torch.inference_mode():
            obs_t = torch.as_tensor(obs, dtype=torch.float32)
            name = m.algorithm
            if name == "DQN":
                q = policy.q_net(obs_t).numpy().astype(np.float64)
                return self._discrete(q, softmax(q))
            if name in ("SAC", "TD3"):
                if name == "TD3":
                    act = policy.actor(obs_t).numpy().astype(np.float64)[:, 0]
                    return self._continuous(act, np.abs(act))
                mean, log_std, _ = policy.actor.get_action_dist_params(obs_t)
                mu = mean.numpy().astype(np.float64)[:, 0]
                sd = np.exp(log_std.numpy().astype(np.float64)[:, 0])
                return self._continuous(np.tanh(mu), normal_cdf(np.abs(mu) / sd))
            if self.recurrent:
                batch = obs.shape[0]
                if self._lstm_state is None or self._lstm_state[0][0].shape[1] != batch:
                    starts = torch.ones(batch)
                    n_layers, _, hidden = policy.lstm_hidden_state_shape
                    zeros = torch.zeros(n_layers, batch, hidden)
                    from sb3_contrib.common.recurrent.type_aliases import RNNStates

                    self._lstm_state = RNNStates((zeros, zeros), (zeros, zeros))
                else:
                    starts = torch.zeros(batch)
                dist, pi_state = policy.get_distribution(obs_t, self._lstm_state.pi, starts)
                self._lstm_state = type(self._lstm_state)(pi_state, self._lstm_state.vf)
            elif name == "MaskablePPO":
                masks = np.tile(self._mask(), (obs.shape[0], 1))
                dist = policy.get_distribution(obs_t, action_masks=masks)
            else:
                dist = policy.get_distribution(obs_t)
            if m.action_mode == "discrete":
                probs = dist.distribution.probs.numpy().astype(np.float64)
                return self._discrete(np.log(np.maximum(probs, 1e-30)), probs)
            mu = dist.distribution.mean.numpy().astype(np.float64)[:, 0]
            sd = dist.distribution.stddev.numpy().astype(np.float64)[:, 0]
            return self._continuous(np.clip(mu, -1.0, 1.0), normal_cdf(np.abs(mu) / sd))

    def _mask(self) -> np.ndarray:
        return np.array([self.manifest.allow_short, True, True])

    def _discrete(self, scores: np.ndarray, probs: np.ndarray) -> PolicyOutput:
        scores = np.where(self._mask()[None, :], scores, -np.inf)
        action = scores.argmax(axis=1).astype(np.int64)
        positions = np.asarray(DISCRETE_POSITIONS)[action] * self.manifest.max_position
        conf = probs[np.arange(len(action)), action]
        return PolicyOutput(positions.astype(np.float64), action, conf.astype(np.float64))

    def _continuous(self, act: np.ndarray, conf: np.ndarray) -> PolicyOutput:
        target = np.clip(act, -1.0, 1.0) * self.manifest.max_position
        if not self.manifest.allow_short:
            target = np.maximum(target, 0.0)
        return PolicyOutput(target, np.full(len(target), -1, dtype=np.int64), conf)

    # -- numpy fast path ------------------------------------------------------------------------

    def numpy_policy(self) -> NumpyPolicy | None:
        """The policy's forward pass as numpy arrays, or None where unsupported (recurrent): the
        package's stored layers, else parsed from the SB3 policy (as it is now)."""
        if self._stored is not None:
            return self._stored
        return NumpyPolicy.from_sb3(self.policy, self.manifest)

    def decide(self, features: np.ndarray, agent_state: np.ndarray) -> tuple[float, int, float]:
        """One decision (target position, action index or -1, confidence) for a live bar.

        Where the numpy fast path exists this is the backtest's arithmetic in float64 (and some
        ten times faster than torch for one observation), so a live run and the backtest agree
        on every decision, confidence thresholds included; otherwise the torch path.
        """
        if not self._fast_checked:
            self._fast = self.numpy_policy()
            self._fast_checked = True
        fast = self._fast
        if fast is None:
            out = self.predict(features, agent_state)
            return (
                float(out.target_position[0]),
                int(out.action[0]),
                float(out.confidence[0]),
            )
        norm = self.normalization
        obs = np.concatenate(
            [
                np.asarray(features, dtype=np.float32).reshape(-1).astype(np.float64),
                np.asarray(agent_state, dtype=np.float64).reshape(-1),
            ]
        )
        if obs.shape != norm.mean.shape:
            raise ModelPackageError(
                f"observation has {obs.shape[0]} values, this model takes {norm.mean.shape[0]}"
            )
        x = np.clip((obs - norm.mean) * norm.scale, -norm.clip, norm.clip)
        out_v, hidden = fast.forward(x)
        return fast.decide(out_v, hidden, self.manifest, confidence=True)
