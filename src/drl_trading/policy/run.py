"""`run_policy`: a policy over a whole `MarketSeries`, bar by bar as live trading would run it
(the strategy's signal rules applied, the agent state advanced from the targets reached)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from drl_trading.common.agent_state import STATE_SIZE, agent_state
from drl_trading.common.market_series import MarketSeries
from drl_trading.policy.numpy_policy import activate, softmax
from drl_trading.policy.predictor import Predictor
from drl_trading.strategy.signals import SignalRules


@dataclass(frozen=True)
class PolicyRun:
    """Decisions of a policy over one series: position decided at the close of each bar but the
    last (it has no next open), and the confidence of each decision."""

    positions: np.ndarray  # (n - 1,)
    confidence: np.ndarray  # (n - 1,)
    rejected: int = 0
    """Decisions the strategy's signal check rejected (the target stayed where it was)."""


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
        activate(h, act1)  # with no hidden layers this is the head's own activation (TD3's tanh)
        x = h
        if head_is_first:
            out_v = h
        else:
            for wk, bk, ak in rest:
                x = wk @ x
                x += bk
                activate(x, ak)
            out_v = fast.head[0] @ x
            out_v += fast.head[1]
            activate(out_v, fast.head[2])
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
        probs = softmax(scores if m.algorithm == "MaskablePPO" else done)
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
