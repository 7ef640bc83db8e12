"""The forward pass of MLP policies in numpy (float64): what backtests and live decisions run.

A backtest pushes the feature part of the first layer through one batched matmul and only does
the agent-state part per bar; a live decision is one small matrix-vector product per layer.

The layers are parsed from the SB3 policy once, when the package is written
(`drl_trading.policy.package` stores them as ``policy.npz``), so that acting on a package needs
neither torch nor Stable-Baselines3."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from drl_trading.common.agent_state import DISCRETE_POSITIONS

if TYPE_CHECKING:
    # only a type here: the package module stores NumpyPolicy, so it imports this one
    from drl_trading.policy.package import ModelManifest

KINDS = ("logits", "q", "gaussian", "squashed", "deterministic")
ACTIVATIONS = ("tanh", "relu")


def normal_cdf(x: np.ndarray) -> np.ndarray:
    return np.asarray(0.5 * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0))))


def normal_cdf_scalar(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=-1, keepdims=True))


@dataclass
class NumpyPolicy:
    kind: str  # "logits", "q", "gaussian", "squashed", "deterministic"
    layers: list[tuple[np.ndarray, np.ndarray, str | None]]  # (W, b, activation) hidden layers
    head: tuple[np.ndarray, np.ndarray, str | None]
    log_std: np.ndarray | None = None  # gaussian: state-independent log std
    log_std_head: tuple[np.ndarray, np.ndarray] | None = None  # squashed: log std layer

    @property
    def obs_size(self) -> int:
        """The width of the normalised observation the first layer takes."""
        w = self.layers[0][0] if self.layers else self.head[0]
        return int(w.shape[1])

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The head's output and the last hidden activation for one normalised observation."""
        h = x
        for w, b, act in self.layers:
            h = w @ h
            h += b
            activate(h, act)
        w, b, act = self.head
        out = w @ h
        out += b
        activate(out, act)
        return out, h

    def decide(
        self, out: np.ndarray, hidden: np.ndarray, manifest: ModelManifest, *, confidence: bool
    ) -> tuple[float, int, float]:
        """(target position, action index or -1, confidence) from the head's output, as
        `Predictor.predict` reports them; the confidence is only computed when asked (0.0
        otherwise) because the backtest's batch pass does it faster."""
        max_pos = manifest.max_position
        if manifest.action_mode == "discrete":
            o0, o1, o2 = out.tolist()
            masked = -math.inf if not manifest.allow_short else o0
            a = 0 if masked >= o1 and masked >= o2 else (1 if o1 >= o2 else 2)
            conf = 0.0
            if confidence:
                # MaskablePPO's distribution renormalises over the allowed actions; the other
                # algorithms' probabilities ignore the mask (see Predictor.predict_observation)
                first = masked if manifest.algorithm == "MaskablePPO" else o0
                top = max(first, o1, o2)
                e = (math.exp(first - top), math.exp(o1 - top), math.exp(o2 - top))
                conf = e[a] / (e[0] + e[1] + e[2])
            return DISCRETE_POSITIONS[a] * max_pos, a, conf
        v = float(out[0])
        conf = 0.0
        if self.kind == "squashed":
            if confidence and self.log_std_head is not None:
                lw, lb = self.log_std_head
                log_std = min(2.0, max(-20.0, float(lw[0] @ hidden + lb[0])))
                conf = normal_cdf_scalar(abs(v) / math.exp(log_std))
            v = math.tanh(v)
        elif self.kind == "gaussian":
            if confidence and self.log_std is not None:
                conf = normal_cdf_scalar(abs(v) / math.exp(float(self.log_std[0])))
        elif confidence:  # deterministic (TD3): |action|, as the torch path reports it
            conf = abs(v)
        target = min(1.0, max(-1.0, v)) * max_pos
        if not manifest.allow_short and target < 0:
            target = 0.0
        return target, -1, conf

    @staticmethod
    def _parse(modules: Any) -> list[tuple[np.ndarray, np.ndarray, str | None]] | None:
        from torch import nn

        out: list[tuple[np.ndarray, np.ndarray, str | None]] = []
        for mod in modules:
            if isinstance(mod, nn.Linear):
                w = mod.weight.detach().cpu().numpy().astype(np.float64)
                b = mod.bias.detach().cpu().numpy().astype(np.float64)
                out.append((w, b, None))
            elif isinstance(mod, nn.Tanh | nn.ReLU) and out and out[-1][2] is None:
                w, b, _ = out[-1]
                out[-1] = (w, b, "tanh" if isinstance(mod, nn.Tanh) else "relu")
            else:
                return None
        return out

    @classmethod
    def from_sb3(cls, pol: Any, manifest: ModelManifest) -> NumpyPolicy | None:
        """The forward pass of the SB3 policy ``pol`` (``model.policy``) of the algorithm the
        manifest names, or None where numpy cannot represent it (recurrent policies, an
        actor-critic feature extractor other than flattening, layers other than Linear with an
        optional Tanh/ReLU)."""
        name = manifest.algorithm
        if name == "RecurrentPPO":
            return None
        if name == "DQN":
            seq = cls._parse(pol.q_net.q_net)
            if not seq:
                return None
            return cls("q", seq[:-1], seq[-1])
        if name == "SAC":
            hidden = cls._parse(pol.actor.latent_pi)
            head = cls._parse([pol.actor.mu])
            ls = cls._parse([pol.actor.log_std])
            if hidden is None or not head or not ls:
                return None
            return cls("squashed", hidden, head[0], log_std_head=(ls[0][0], ls[0][1]))
        if name == "TD3":
            seq = cls._parse(pol.actor.mu)
            if not seq:
                return None
            return cls("deterministic", seq[:-1], seq[-1])
        if type(pol.pi_features_extractor).__name__ != "FlattenExtractor":
            return None
        hidden = cls._parse(pol.mlp_extractor.policy_net)
        head = cls._parse([pol.action_net])
        if hidden is None or not head:
            return None
        if manifest.action_mode == "discrete":
            return cls("logits", hidden, head[0])
        log_std = pol.log_std.detach().cpu().numpy().astype(np.float64)
        return cls("gaussian", hidden, head[0], log_std=log_std)


def activate(x: np.ndarray, kind: str | None) -> None:
    if kind == "tanh":
        np.tanh(x, out=x)
    elif kind == "relu":
        np.maximum(x, 0.0, out=x)
