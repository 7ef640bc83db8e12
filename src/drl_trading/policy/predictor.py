"""A trained policy as inference and backtests use it: package on disk → actions + confidence.

A *model package* is a folder with everything needed to act, independent of the registry that
stores it: the SB3 policy (``policy.zip``), the observation normalisation statistics
(``normalization.npz``, applied here rather than by SB3's VecNormalize wrapper so that no
environment is needed to predict), and ``manifest.json`` (algorithm, feature set definition and
version, window, spaces, strategy, training data and costs).

Two ways to act: `Predictor.predict` runs the SB3 policy in torch (any algorithm, including
recurrent ones) and is what the registry's pyfunc model calls; `NumpyPolicy` re-implements the
forward pass of MLP policies in numpy so that a backtest can push the feature part of the first
layer through one batched matmul and only do the agent-state part per bar.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from drl_trading.common.agent_state import DISCRETE_POSITIONS, STATE_NAMES, STATE_SIZE, agent_state
from drl_trading.common.market_series import MarketSeries
from drl_trading.policy.algorithms import algorithm_class
from drl_trading.strategy.signals import SignalRules

MANIFEST_FILE = "manifest.json"
POLICY_FILE = "policy.zip"
NORMALIZATION_FILE = "normalization.npz"
PACKAGE_FORMAT = 1


class ModelPackageError(ValueError):
    pass


@dataclass(frozen=True)
class ModelManifest:
    algorithm: str
    policy: str
    action_mode: str
    window: int
    feature_columns: list[str]
    feature_set: dict[str, Any]
    feature_set_version: str
    feature_view: str
    base_timeframe: str
    strategy: dict[str, str]
    max_position: float
    allow_short: bool
    fee_bps: float
    slippage_bps: float
    training: dict[str, Any] = field(default_factory=dict)
    state_names: list[str] = field(default_factory=lambda: list(STATE_NAMES))
    format_version: int = PACKAGE_FORMAT

    @property
    def n_features(self) -> int:
        return len(self.feature_columns)

    @property
    def obs_size(self) -> int:
        return self.window * self.n_features + STATE_SIZE

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True, default=str)

    @classmethod
    def from_json(cls, text: str) -> ModelManifest:
        data = json.loads(text)
        if data.get("format_version", 0) > PACKAGE_FORMAT:
            raise ModelPackageError(
                f"model package format {data['format_version']} is newer than this build "
                f"({PACKAGE_FORMAT}); upgrade drl-trading"
            )
        return cls(**data)


@dataclass(frozen=True)
class ObsNormalization:
    """SB3 VecNormalize's observation transform: clip((obs - mean) / sqrt(var + eps), ±clip)."""

    mean: np.ndarray
    var: np.ndarray
    clip: float = 10.0
    epsilon: float = 1e-8

    @property
    def scale(self) -> np.ndarray:
        return np.asarray(1.0 / np.sqrt(self.var + self.epsilon))

    def apply(self, obs: np.ndarray) -> np.ndarray:
        out = (obs.astype(np.float64) - self.mean) * self.scale
        return np.asarray(np.clip(out, -self.clip, self.clip), dtype=np.float32)

    @classmethod
    def identity(cls, size: int) -> ObsNormalization:
        return cls(np.zeros(size), np.ones(size) - 1e-8, clip=np.inf, epsilon=1e-8)


@dataclass(frozen=True)
class PolicyOutput:
    target_position: np.ndarray  # (B,) float64 in [-max_position, max_position]
    action: np.ndarray  # (B,) int64: discrete action index (0 short, 1 flat, 2 long); -1 continuous
    confidence: np.ndarray  # (B,) float64 in [0, 1]


def write_package(
    dst: Path, model: Any, normalization: ObsNormalization, manifest: ModelManifest
) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    model.save(dst / POLICY_FILE)
    np.savez(
        dst / NORMALIZATION_FILE,
        mean=normalization.mean,
        var=normalization.var,
        clip=np.array(normalization.clip),
        epsilon=np.array(normalization.epsilon),
    )
    (dst / MANIFEST_FILE).write_text(manifest.to_json())
    return dst


def _normal_cdf(x: np.ndarray) -> np.ndarray:
    return np.asarray(0.5 * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0))))


def _normal_cdf_scalar(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=-1, keepdims=True))


class Predictor:
    """Loads a package once; `predict` maps (features window, agent state) → action, confidence.

    Confidence: for discrete policies the probability of the chosen action (softmax of Q-values
    for DQN, which are not probabilities but rank the same way); for Gaussian policies the
    probability that a sampled action has the sign of the chosen one.
    """

    def __init__(self, manifest: ModelManifest, normalization: ObsNormalization, model: Any):
        self.manifest = manifest
        self.normalization = normalization
        self.model = model
        self.policy = model.policy
        self.policy.set_training_mode(False)
        self.recurrent = manifest.algorithm == "RecurrentPPO"
        self._lstm_state: Any = None
        self._fast: NumpyPolicy | None = None
        self._fast_checked = False

    @classmethod
    def load(cls, package_dir: Path) -> Predictor:
        package_dir = Path(package_dir)
        if not (package_dir / MANIFEST_FILE).exists():
            raise ModelPackageError(f"{package_dir} is not a model package (no {MANIFEST_FILE})")
        manifest = ModelManifest.from_json((package_dir / MANIFEST_FILE).read_text())
        with np.load(package_dir / NORMALIZATION_FILE) as z:
            norm = ObsNormalization(z["mean"], z["var"], float(z["clip"]), float(z["epsilon"]))
        model = algorithm_class(manifest.algorithm).load(package_dir / POLICY_FILE, device="cpu")
        return cls(manifest, norm, model)

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
            raise ModelPackageError("features and agent_state batch sizes differ")
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
                return self._discrete(q, _softmax(q))
            if name in ("SAC", "TD3"):
                if name == "TD3":
                    act = policy.actor(obs_t).numpy().astype(np.float64)[:, 0]
                    return self._continuous(act, np.abs(act))
                mean, log_std, _ = policy.actor.get_action_dist_params(obs_t)
                mu = mean.numpy().astype(np.float64)[:, 0]
                sd = np.exp(log_std.numpy().astype(np.float64)[:, 0])
                return self._continuous(np.tanh(mu), _normal_cdf(np.abs(mu) / sd))
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
            return self._continuous(np.clip(mu, -1.0, 1.0), _normal_cdf(np.abs(mu) / sd))

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
        """The policy's forward pass as numpy arrays, or None where unsupported (recurrent)."""
        return NumpyPolicy.from_predictor(self)

    def decide(self, features: np.ndarray, agent_state: np.ndarray) -> tuple[float, int, float]:
        """One decision (target position, action index or -1, confidence) for a live bar.

        Where the numpy fast path exists this is the backtest's arithmetic in float64 (and some
        ten times faster than torch for one observation), so a live run and the backtest agree
        on every decision, confidence thresholds included; otherwise the torch path.
        """
        if self._fast is None and not self._fast_checked:
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


@dataclass
class NumpyPolicy:
    kind: str  # "logits", "q", "gaussian", "squashed", "deterministic"
    layers: list[tuple[np.ndarray, np.ndarray, str | None]]  # (W, b, activation) hidden layers
    head: tuple[np.ndarray, np.ndarray, str | None]
    log_std: np.ndarray | None = None  # gaussian: state-independent log std
    log_std_head: tuple[np.ndarray, np.ndarray] | None = None  # squashed: log std layer

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The head's output and the last hidden activation for one normalised observation."""
        h = x
        for w, b, act in self.layers:
            h = w @ h
            h += b
            _act(h, act)
        w, b, act = self.head
        out = w @ h
        out += b
        _act(out, act)
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
                conf = _normal_cdf_scalar(abs(v) / math.exp(log_std))
            v = math.tanh(v)
        elif self.kind == "gaussian":
            if confidence and self.log_std is not None:
                conf = _normal_cdf_scalar(abs(v) / math.exp(float(self.log_std[0])))
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
    def from_predictor(cls, p: Predictor) -> NumpyPolicy | None:
        name = p.manifest.algorithm
        pol = p.policy
        if p.recurrent:
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
        if p.manifest.action_mode == "discrete":
            return cls("logits", hidden, head[0])
        log_std = pol.log_std.detach().cpu().numpy().astype(np.float64)
        return cls("gaussian", hidden, head[0], log_std=log_std)


@dataclass(frozen=True)
class PolicyRun:
    """Decisions of a policy over one series: position decided at the close of each bar but the
    last (it has no next open), and the confidence of each decision."""

    positions: np.ndarray  # (n - 1,)
    confidence: np.ndarray  # (n - 1,)
    rejected: int = 0
    """Decisions the strategy's signal check rejected (the target stayed where it was)."""


def _act(x: np.ndarray, kind: str | None) -> None:
    if kind == "tanh":
        np.tanh(x, out=x)
    elif kind == "relu":
        np.maximum(x, 0.0, out=x)


def run_policy(
    predictor: Predictor,
    series: MarketSeries,
    start: int | None = None,
    rules: SignalRules | None = None,
) -> PolicyRun:
    """Act bar by bar over ``series`` with the agent state tracked exactly as the environment
    does. Decisions start at bar ``window - 1`` (earlier bars have no full window): positions
    before are flat.

    With ``rules`` (the strategy's signal check) a decision execution would reject keeps the
    previous target, as it does live; the confidence is then computed inline for every decision.
    """
    m = predictor.manifest
    w = m.window
    n = len(series)
    first = w - 1 if start is None else start
    positions = np.zeros(n - 1)
    confidence = np.zeros(n - 1)
    rejected = 0
    if n - 1 <= first:
        return PolicyRun(positions, confidence)
    feats = np.ascontiguousarray(series.features, dtype=np.float32)
    if w > 1:
        win = np.lib.stride_tricks.sliding_window_view(feats, (w, feats.shape[1]))[:, 0]
        flat = win.reshape(win.shape[0], -1)
    else:
        flat = feats
    nf = flat.shape[1]
    norm = predictor.normalization
    mean = norm.mean.astype(np.float64)
    scale = norm.scale.astype(np.float64)
    clip = norm.clip
    feat_norm = np.clip((flat.astype(np.float64) - mean[:nf]) * scale[:nf], -clip, clip)
    state_mean = mean[nf:].tolist()
    state_scale = scale[nf:].tolist()
    opens = series.open.tolist()
    closes = series.close.tolist()
    fast = predictor.numpy_policy()
    position = 0.0
    entry = 0.0
    held = 0

    def norm_state(st: tuple[float, float, float]) -> tuple[float, float, float]:
        a, b, c = ((st[i] - state_mean[i]) * state_scale[i] for i in range(STATE_SIZE))
        return (
            min(clip, max(-clip, a)),
            min(clip, max(-clip, b)),
            min(clip, max(-clip, c)),
        )

    def checked(target: float, conf: float) -> float:
        nonlocal rejected
        if rules is None:
            return target
        approved = rules.apply(target, conf)
        if approved is None:
            rejected += 1
            return position
        return approved

    if fast is None:
        predictor.reset_state()
        for t in range(first, n - 1):
            s = norm_state(agent_state(position, entry, closes[t], held))
            obs = np.concatenate([feat_norm[t - w + 1], np.asarray(s)])[None].astype(np.float32)
            out = predictor.predict_observation(obs)
            confidence[t] = float(out.confidence[0])
            target = checked(float(out.target_position[0]), confidence[t])
            positions[t] = target
            position, entry, held = _advance(position, entry, held, target, opens[t + 1])
        return PolicyRun(positions, confidence, rejected)

    w1, b1, act1 = fast.layers[0] if fast.layers else fast.head
    z = feat_norm @ w1[:, :nf].T + b1  # the batched part: features through the first layer
    ws = np.ascontiguousarray(w1[:, nf:])
    rest = fast.layers[1:] if fast.layers else []
    head_is_first = not fast.layers
    svec = np.zeros(STATE_SIZE)
    states = np.zeros((n - 1, STATE_SIZE))
    h = np.empty(z.shape[1])
    outputs = np.empty((n - 1, fast.head[0].shape[0]))
    inline = rules is not None and rules.needs_confidence
    for t in range(first, n - 1):
        s = norm_state(agent_state(position, entry, closes[t], held))
        svec[0], svec[1], svec[2] = s
        states[t] = svec
        np.dot(ws, svec, out=h)
        h += z[t - w + 1]
        _act(h, act1)  # with no hidden layers this is the head's own activation (TD3's tanh)
        x = h
        if head_is_first:
            out_v = h
        else:
            for wk, bk, ak in rest:
                x = wk @ x
                x += bk
                _act(x, ak)
            out_v = fast.head[0] @ x
            out_v += fast.head[1]
            _act(out_v, fast.head[2])
        outputs[t] = out_v
        target, _, conf = fast.decide(out_v, x, m, confidence=inline)
        confidence[t] = conf
        target = checked(target, conf)
        positions[t] = target
        position, entry, held = _advance(position, entry, held, target, opens[t + 1])
    if inline:
        return PolicyRun(positions, confidence, rejected)
    done = outputs[first:]
    if m.action_mode == "discrete":
        scores = done.copy()
        if not m.allow_short:
            scores[:, 0] = -np.inf
        chosen = scores.argmax(axis=1)
        # MaskablePPO's distribution renormalises over the allowed actions (as the torch path
        # reports it); the other algorithms' probabilities ignore the mask
        probs = _softmax(scores if m.algorithm == "MaskablePPO" else done)
        confidence[first:] = probs[np.arange(len(chosen)), chosen]
    else:
        # Gaussian confidence needs the policy's std: one batched pass over the recorded inputs
        rows = np.arange(first, n - 1)
        for a in range(0, len(rows), 65536):
            idx = rows[a : a + 65536]
            obs = np.concatenate([feat_norm[idx - w + 1], states[idx]], axis=1)
            confidence[idx] = predictor.predict_observation(obs.astype(np.float32)).confidence
    return PolicyRun(positions, confidence, rejected)


def _advance(
    position: float, entry: float, held: int, target: float, fill_price: float
) -> tuple[float, float, int]:
    """The environment's position bookkeeping after a fill at ``fill_price``."""
    if target == 0.0:
        return 0.0, 0.0, 0
    if position == 0.0 or (position > 0.0) != (target > 0.0):
        return target, fill_price, 1
    return target, entry, held + 1
