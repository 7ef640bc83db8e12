"""The trading environment: one symbol's precomputed arrays, stepped bar by bar.

Timing, the part that decides whether a backtest can be trusted: the observation at step t holds
features available at the close of bar t (and earlier) plus the agent's state; the action taken
then fills at the open of bar t+1 and is marked at the close of bar t+1.

Accounting is the shared cost model (`drl_trading.common.costs`) that the vectorised backtest
(`drl_trading.evaluation.trace.simulate`) and the paper broker follow: a new target becomes
units at the close-t equity, fills at the next open with slippage and fee, and is then held in
units (no rebalancing while the target stays the same). Equity starts at 1. ``step`` works on
Python floats (numpy scalar arithmetic is several times slower) and reuses one
`RewardContext`, which keeps it around 200k steps per second or more.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from drl_trading.common.agent_state import DISCRETE_POSITIONS, STATE_SIZE, agent_state
from drl_trading.common.costs import TARGET_TOLERANCE, CostModel, settle_units
from drl_trading.common.market_series import MarketSeries
from drl_trading.strategy.api import RewardContext, RiskParameters
from drl_trading.training.core.config import TrainingSettings

ActionMode = Literal["discrete", "continuous"]


@dataclass(frozen=True, slots=True)
class EnvConfig:
    window: int = 1
    """Bars of features in one observation (1 = the current bar's features only)."""
    action_mode: ActionMode = "discrete"
    fee_bps: float = 5.0
    slippage_bps: float = 2.0
    max_position: float = 1.0
    allow_short: bool = True
    episode_bars: int | None = 2048
    """Steps per training episode from a random start; None runs each series from its start."""
    bankrupt_equity: float = 0.05
    """An episode terminates once equity falls below this (the agent lost 95%)."""
    feature_names: tuple[str, ...] = field(default=())

    @property
    def cost_rate(self) -> float:
        return (self.fee_bps + self.slippage_bps) / 1e4

    @property
    def costs(self) -> CostModel:
        return CostModel(self.fee_bps, self.slippage_bps)


def env_config_for(
    settings: TrainingSettings, risk: RiskParameters, feature_names: tuple[str, ...]
) -> EnvConfig:
    """The environment training builds from its settings and the strategy's risk limits: what
    training steps and what a check of its observations (`check lookahead`) must replay."""
    mode: ActionMode = "continuous" if settings.action_mode == "continuous" else "discrete"
    return EnvConfig(
        window=settings.env.window,
        action_mode=mode,
        fee_bps=settings.env.fee_bps,
        slippage_bps=settings.env.slippage_bps,
        max_position=risk.max_position,
        allow_short=risk.allow_short,
        episode_bars=settings.env.episode_bars,
        feature_names=feature_names,
    )


RewardFn = Callable[[RewardContext], float]


class TradingEnv(gym.Env[np.ndarray, Any]):
    """Episodes over one or more `MarketSeries`: at reset a series is drawn with probability
    proportional to its usable length, then a start bar (or its first bar when
    ``episode_bars`` is None)."""

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012

    def __init__(self, series: Sequence[MarketSeries], reward: RewardFn, config: EnvConfig) -> None:
        super().__init__()
        if not series:
            raise ValueError("TradingEnv needs at least one series")
        self.config = config
        self.reward_fn = reward
        w = config.window
        usable = [s for s in series if len(s) >= w + 1]
        if not usable:
            raise ValueError(f"every series is shorter than window + 1 = {w + 1} bars")
        self.series = list(usable)
        n_features = usable[0].features.shape[1]
        if any(s.features.shape[1] != n_features for s in usable):
            raise ValueError("all series must have the same feature columns")
        self.n_features = n_features
        self.obs_size = w * n_features + STATE_SIZE
        self.observation_space = spaces.Box(-np.inf, np.inf, (self.obs_size,), np.float32)
        self.action_space: spaces.Space[Any]
        if config.action_mode == "discrete":
            self.action_space = spaces.Discrete(3)
        elif config.action_mode == "continuous":
            self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        else:
            raise ValueError(f"unknown action mode {config.action_mode!r}")
        self._weights = np.array([len(s) - w for s in usable], dtype=np.float64)
        self._weights /= self._weights.sum()
        self._fee_bps = config.fee_bps
        self._slip = config.slippage_bps / 1e4
        self._ctx = RewardContext()
        self._buf = np.zeros(self.obs_size, dtype=np.float32)
        self._next_series = 0
        self._prepared = [self._prepare(s) for s in usable]
        self._load(0)
        self._t = w - 1
        self._end = len(self._open) - 1
        self._reset_state()

    # -- episode set-up -------------------------------------------------------------------------

    def _prepare(self, s: MarketSeries) -> tuple[list[float], list[float], np.ndarray]:
        w = self.config.window
        feats = np.ascontiguousarray(s.features, dtype=np.float32)
        if w == 1:
            windows = feats
        else:
            win = np.lib.stride_tricks.sliding_window_view(feats, (w, feats.shape[1]))[:, 0]
            windows = np.ascontiguousarray(win.reshape(win.shape[0], -1))
        return s.open.tolist(), s.close.tolist(), windows

    def _load(self, index: int) -> None:
        self._series_index = index
        self._open, self._close, self._windows = self._prepared[index]
        self._window_offset = self.config.window - 1

    def _reset_state(self) -> None:
        self._position = 0.0
        self._units = 0.0
        self._cash = 1.0
        self._entry_price = 0.0
        self._bars_in_position = 0
        self._equity = 1.0
        self._peak = 1.0
        self._steps = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        options = options or {}
        w = self.config.window
        if "series" in options:
            index = int(options["series"])
        elif self.config.episode_bars is None:
            index = self._next_series
            self._next_series = (self._next_series + 1) % len(self.series)
        else:
            index = int(self.np_random.choice(len(self.series), p=self._weights))
        self._load(index)
        last = len(self._open) - 1  # the last decision is at bar last-1
        first = w - 1
        if self.config.episode_bars is None or "start" in options:
            start = int(options.get("start", first))
            self._end = last
        else:
            span = self.config.episode_bars
            latest_start = max(first, last - span)
            start = int(self.np_random.integers(first, latest_start + 1))
            self._end = min(last, start + span)
        if not first <= start < last:
            raise ValueError(f"start {start} outside [{first}, {last})")
        self._t = start
        self._reset_state()
        return self._observation(), self._info()

    # -- stepping -------------------------------------------------------------------------------

    def _target(self, action: Any) -> float:
        cfg = self.config
        if cfg.action_mode == "discrete":
            target = DISCRETE_POSITIONS[int(action)] * cfg.max_position
        else:
            a = float(np.asarray(action, dtype=np.float64).reshape(-1)[0])
            target = min(1.0, max(-1.0, a)) * cfg.max_position
        if target < 0.0 and not cfg.allow_short:
            target = 0.0
        return target

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        t = self._t
        before = self._position
        after = self._target(action)
        close = self._close[t]
        open_next = self._open[t + 1]
        close_next = self._close[t + 1]
        units = self._units
        cash = self._cash
        start_equity = self._equity
        cost = 0.0
        if abs(after - before) > TARGET_TOLERANCE:
            # the shared cost model, inlined (see drl_trading.common.costs)
            dq = after * (cash + units * close) / close - units
            if dq != 0.0:
                fill = open_next * (1 + self._slip) if dq > 0 else open_next * (1 - self._slip)
                paid = abs(abs(dq) * fill) * self._fee_bps / 1e4
                cash -= dq * fill + paid
                cost = paid + abs(dq) * abs(fill - open_next)
                units = settle_units(units, dq)
        equity = cash + units * close_next
        step_return = equity / start_equity - 1.0
        gross = step_return + cost / start_equity
        cost = cost / start_equity
        if equity > self._peak:
            self._peak = equity
        if after == 0.0:
            self._entry_price = 0.0
            self._bars_in_position = 0
        elif before == 0.0 or (before > 0.0) != (after > 0.0):
            self._entry_price = open_next
            self._bars_in_position = 1
        else:
            self._bars_in_position += 1
        self._position = after
        self._units = units
        self._cash = cash
        self._equity = equity
        self._t = t + 1
        self._steps += 1

        ctx = self._ctx
        ctx.step = t
        ctx.close = close
        ctx.open_next = open_next
        ctx.close_next = close_next
        ctx.position_before = before
        ctx.position_after = after
        ctx.gross_return = gross
        ctx.cost = cost
        ctx.step_return = step_return
        ctx.equity = equity
        ctx.peak_equity = self._peak
        ctx.drawdown = 1.0 - equity / self._peak
        ctx.bars_in_position = self._bars_in_position
        reward = float(self.reward_fn(ctx))
        if not math.isfinite(reward):
            raise ValueError(f"reward function returned {reward} at step {t}")

        terminated = equity < self.config.bankrupt_equity
        truncated = self._t >= self._end
        return self._observation(), reward, terminated, truncated, self._info()

    def _observation(self) -> np.ndarray:
        buf = self._buf
        nf = self.n_features * self.config.window
        buf[:nf] = self._windows[self._t - self._window_offset]
        pos, unreal, held = agent_state(
            self._position, self._entry_price, self._close[self._t], self._bars_in_position
        )
        buf[nf] = pos
        buf[nf + 1] = unreal
        buf[nf + 2] = held
        return buf.copy()

    def _info(self) -> dict[str, Any]:
        return {
            "equity": self._equity,
            "position": self._position,
            "t": self._t,
            "series": self._series_index,
        }

    def action_masks(self) -> np.ndarray:
        """For MaskablePPO: short is masked when the strategy forbids it."""
        return np.array([self.config.allow_short, True, True], dtype=bool)

    @property
    def equity(self) -> float:
        return self._equity
