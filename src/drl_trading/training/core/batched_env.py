"""N copies of the trading environment stepped together with numpy array operations.

`TradingEnv` steps one copy on Python floats; SB3's DummyVecEnv then loops over the copies in
Python, so training spends its time in that loop rather than in the network. This environment
keeps every copy's state in arrays (one entry per copy) and steps all of them with one pass of
array operations, with the semantics of N `TradingEnv` copies in a DummyVecEnv, each wrapped in
SB3's Monitor, bit for bit:

* the same arithmetic in the same order (numpy float64 gives the same IEEE results as Python
  floats for the same operations), so observations, rewards and equity are equal, not close;
* the same random draws: copy ``i`` owns a generator seeded as gymnasium seeds ``TradingEnv``
  (``seed(s)`` gives copy i the seed ``s + i`` at the next reset, like ``VecEnv.seed``) and
  draws its series and start bar from it in the same order at each of its resets;
* a finished copy (bankrupt: terminated, or at its last bar: truncated) is reset at once and its
  info carries ``terminal_observation``, ``TimeLimit.truncated`` and Monitor's ``episode``.

The copies share the series: every series' arrays are concatenated once and each copy keeps an
offset into them, so copies on different symbols (of different lengths) step in the same pass.
Only a copy's reset (once per episode) and a strategy without ``reward_batch`` (whose scalar
``reward`` is called once per copy) run Python per copy. This module has no SB3 import (SB3
imports torch); `drl_trading.training.adapter.sb3_batched_vec_env` is the SB3 ``VecEnv`` over it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, Self

import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding

from drl_trading.common.agent_state import (
    DISCRETE_POSITIONS,
    HOLDING_HALF_LIFE_BARS,
    STATE_SIZE,
)
from drl_trading.common.costs import RESIDUE_TOLERANCE, TARGET_TOLERANCE
from drl_trading.common.market_series import MarketSeries
from drl_trading.strategy.api import BatchRewardContext, RewardContext
from drl_trading.training.core.env import EnvConfig, RewardFn

BatchRewardFn = Callable[[BatchRewardContext], np.ndarray]
"""A strategy's ``reward_batch``: one reward per copy."""

VecStep = tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]
"""Observations (N, obs_size) float32, rewards (N,) float32, dones (N,) bool, one info per copy."""


class _EmptyInfo(dict[str, Any]):
    """The info of a copy whose episode goes on, when infos are not full: one empty dict shared
    by all such copies (building N dicts a step costs more than the stepping at large N), which
    refuses writes so that a wrapper writing into one copy's info cannot reach the others."""

    def _refuse(self) -> NoReturn:
        raise TypeError(
            "a BatchedTradingEnv copy's info is read-only while its episode goes on (one shared "
            "empty dict); build the environment with full_infos=True for a dict per copy"
        )

    def __setitem__(self, key: str, value: Any) -> None:
        self._refuse()

    def __delitem__(self, key: str) -> None:
        self._refuse()

    def __ior__(self, other: Any) -> Self:  # type: ignore[misc,override]
        self._refuse()

    def update(self, *args: Any, **kwargs: Any) -> None:
        self._refuse()

    def setdefault(self, key: str, default: Any = None) -> Any:
        self._refuse()

    def pop(self, key: str, *default: Any) -> Any:
        self._refuse()

    def popitem(self) -> tuple[str, Any]:
        self._refuse()

    def clear(self) -> None:
        self._refuse()


NO_INFO: dict[str, Any] = _EmptyInfo()
"""What `BatchedTradingEnv.step` gives a copy whose episode goes on (``full_infos`` False)."""


class BatchedTradingEnv:
    """``n_envs`` copies of ``TradingEnv(series, reward, config)`` stepped as arrays.

    ``batch_reward`` (a strategy's ``reward_batch``) computes every copy's reward in one call;
    without it ``reward`` is called once per copy, which is slower but needs nothing of the
    strategy. ``step`` follows SB3's VecEnv protocol (rewards as float32, as DummyVecEnv stores
    them; Monitor's episode returns are summed from the float64 rewards).

    ``full_infos`` False (training) fills a copy's info only at the end of its episode, where
    SB3 and the progress report read it (``equity``, ``position``, ``t``, ``series``,
    ``TimeLimit.truncated``, ``terminal_observation``, ``episode``); the other copies get
    `NO_INFO`, one shared empty dict that refuses writes, which SB3 reads as DummyVecEnv's
    (``TimeLimit.truncated`` defaults to False). Building N dicts every step costs more than
    the stepping itself at large N. True gives every copy's info at every step, as DummyVecEnv
    does; `equity` has the values at any time.
    """

    render_mode: str | None = None
    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012

    def __init__(
        self,
        series: Sequence[MarketSeries],
        reward: RewardFn,
        config: EnvConfig,
        n_envs: int,
        *,
        batch_reward: BatchRewardFn | None = None,
        info_keywords: tuple[str, ...] = ("equity",),
        full_infos: bool = False,
    ) -> None:
        if n_envs < 1:
            raise ValueError(f"n_envs must be at least 1, got {n_envs}")
        if not series:
            raise ValueError("BatchedTradingEnv needs at least one series")
        w = config.window
        usable = [s for s in series if len(s) >= w + 1]
        if not usable:
            raise ValueError(f"every series is shorter than window + 1 = {w + 1} bars")
        n_features = usable[0].features.shape[1]
        if any(s.features.shape[1] != n_features for s in usable):
            raise ValueError("all series must have the same feature columns")
        if config.action_mode not in ("discrete", "continuous"):
            raise ValueError(f"unknown action mode {config.action_mode!r}")
        self.config = config
        self.num_envs = n_envs
        self.series = list(usable)
        self.n_features = n_features
        self.obs_size = w * n_features + STATE_SIZE
        self.observation_space = spaces.Box(-np.inf, np.inf, (self.obs_size,), np.float32)
        self.action_space: spaces.Space[Any]
        if config.action_mode == "discrete":
            self.action_space = spaces.Discrete(3)
        else:
            self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.reward_fn = reward
        self.batch_reward = batch_reward
        self.info_keywords = info_keywords
        self.full_infos = full_infos
        lengths = np.array([len(s) for s in usable], dtype=np.int64)
        self._lengths = lengths
        self._weights = np.array([len(s) - w for s in usable], dtype=np.float64)
        self._weights /= self._weights.sum()
        # all series end to end: copy i reads bar t of its series at _base[i] + t
        self._bar_offset = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        self._open = np.concatenate([s.open for s in usable]).astype(np.float64)
        self._close = np.concatenate([s.close for s in usable]).astype(np.float64)
        # observation rows: row j of a series' block holds the features of bars j .. j + w - 1,
        # then STATE_SIZE columns that `_observe` fills with the agent state
        self._windows = np.concatenate([_windows(s, w, STATE_SIZE) for s in usable])
        self._window_offset = self._bar_offset - np.arange(len(usable), dtype=np.int64) * (w - 1)
        # discrete action i -> its target, short clipped as `_targets` clips continuous ones
        table = np.asarray(DISCRETE_POSITIONS, dtype=np.float64) * config.max_position
        if not config.allow_short:
            table = np.where(table < 0.0, 0.0, table)
        self._discrete_targets = table
        self._fee_bps = config.fee_bps
        self._slip = config.slippage_bps / 1e4
        self._ctx = RewardContext()
        self._seeds: list[int | None] = [None] * n_envs
        self._options: list[dict[str, Any]] = [{} for _ in range(n_envs)]
        self._rngs: list[np.random.Generator | None] = [None] * n_envs
        self._next_series = [0] * n_envs
        self.reset_infos: list[dict[str, Any]] = [{} for _ in range(n_envs)]
        self._t_start = time.time()
        self._actions: np.ndarray | None = None
        n = n_envs
        self._series_index = np.zeros(n, dtype=np.int64)
        # each copy's bar t in its series, bar t in the joined arrays and its window's row in the
        # joined windows: rows of one array, so one in-place add advances all three
        self._index = np.empty((3, n), dtype=np.int64)
        self._t, self._bar, self._row = self._index
        self._t[:] = w - 1
        self._bar[:] = self._bar_offset[self._series_index] + self._t
        self._row[:] = self._window_offset[self._series_index]
        self._end = np.full(n, len(usable[0]) - 1, dtype=np.int64)
        self._position = np.zeros(n)
        self._units = np.zeros(n)
        self._cash = np.ones(n)
        self._entry_price = np.zeros(n)
        self._bars_in_position = np.zeros(n, dtype=np.int64)
        self._equity = np.ones(n)
        self._peak = np.ones(n)
        self._episode_return = np.zeros(n)
        self._episode_length = np.zeros(n, dtype=np.int64)

    # -- seeding and resets (per copy: once per episode) --------------------------------------

    def seed(self, seed: int | None = None) -> list[int | None]:
        """Copy i gets ``seed + i`` at its next reset (SB3's ``VecEnv.seed``); None draws one."""
        if seed is None:
            seed = int(np.random.randint(0, np.iinfo(np.uint32).max, dtype=np.uint32))
        self._seeds = [seed + i for i in range(self.num_envs)]
        return list(self._seeds)

    def set_options(self, options: list[dict[str, Any]] | dict[str, Any] | None = None) -> None:
        """``reset`` options (``series``, ``start``) for the next reset, one dict per copy or one
        for all (SB3's ``VecEnv.set_options``)."""
        if options is None:
            options = {}
        if isinstance(options, dict):
            self._options = [dict(options) for _ in range(self.num_envs)]
        else:
            if len(options) != self.num_envs:
                raise ValueError(f"{len(options)} option dicts for {self.num_envs} copies")
            self._options = [dict(o) for o in options]

    def reset(self) -> np.ndarray:
        """Every copy at the start of a new episode; the observations (N, obs_size)."""
        for i in range(self.num_envs):
            self._reset_copy(i, self._seeds[i], self._options[i])
        self._seeds = [None] * self.num_envs
        self._options = [{} for _ in range(self.num_envs)]
        return self._observe()

    def _rng(self, i: int) -> np.random.Generator:
        rng = self._rngs[i]
        if rng is None:
            rng, _ = seeding.np_random()
            self._rngs[i] = rng
        return rng

    def _reset_copy(self, i: int, seed: int | None, options: dict[str, Any]) -> None:
        """`TradingEnv.reset` for copy ``i``: the same draws in the same order."""
        if seed is not None:
            self._rngs[i], _ = seeding.np_random(seed)
        w = self.config.window
        n_series = len(self.series)
        if "series" in options:
            index = int(options["series"])
        elif self.config.episode_bars is None:
            index = self._next_series[i]
            self._next_series[i] = (index + 1) % n_series
        else:
            index = int(self._rng(i).choice(n_series, p=self._weights))
        last = int(self._lengths[index]) - 1
        first = w - 1
        if self.config.episode_bars is None or "start" in options:
            start = int(options.get("start", first))
            end = last
        else:
            span = self.config.episode_bars
            latest_start = max(first, last - span)
            start = int(self._rng(i).integers(first, latest_start + 1))
            end = min(last, start + span)
        if not first <= start < last:
            raise ValueError(f"start {start} outside [{first}, {last})")
        self._series_index[i] = index
        self._t[i] = start
        self._bar[i] = self._bar_offset[index] + start
        self._row[i] = self._window_offset[index] + start - first
        self._end[i] = end
        self._position[i] = 0.0
        self._units[i] = 0.0
        self._cash[i] = 1.0
        self._entry_price[i] = 0.0
        self._bars_in_position[i] = 0
        self._equity[i] = 1.0
        self._peak[i] = 1.0
        self._episode_return[i] = 0.0
        self._episode_length[i] = 0
        self.reset_infos[i] = {
            "equity": 1.0,
            "position": 0.0,
            "t": start,
            "series": index,
        }

    # -- stepping (all copies at once) ---------------------------------------------------------

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecStep:
        if self._actions is None:
            raise RuntimeError("step_wait called before step_async")
        actions, self._actions = self._actions, None
        return self.step(actions)

    def _targets(self, actions: np.ndarray) -> np.ndarray:
        cfg = self.config
        if cfg.action_mode == "discrete":
            index = np.asarray(actions).reshape(self.num_envs)
            if index.dtype.kind not in "iu":  # SB3 hands int64; anything else as TradingEnv's int()
                index = index.astype(np.int64)
            targets: np.ndarray = self._discrete_targets.take(index)
            return targets
        else:
            a = np.asarray(actions, dtype=np.float64).reshape(self.num_envs, -1)[:, 0]
            # min(1.0, max(-1.0, a)) exactly as Python evaluates it
            a = np.where(a > -1.0, a, -1.0)
            target = np.where(a < 1.0, a, 1.0) * cfg.max_position
        if not cfg.allow_short:
            target = np.where(target < 0.0, 0.0, target)
        return target

    def step(self, actions: np.ndarray) -> VecStep:
        """One bar for every copy; finished copies are reset (their terminal observation and
        Monitor's episode summary are in their info)."""
        t = self._t
        g = self._bar
        before = self._position
        after = self._targets(actions)
        close = self._close[g]
        open_next = self._open[g + 1]
        close_next = self._close[g + 1]
        units = self._units
        cash = self._cash
        start_equity = self._equity
        # the shared cost model (drl_trading.common.costs) in TradingEnv.step's operation order
        trade = np.abs(after - before) > TARGET_TOLERANCE
        # a copy with dq == 0 (TradingEnv skips it) comes out unchanged: it pays 0.0, its cash
        # loses 0.0 and its units gain 0.0, which IEEE arithmetic leaves exactly as they were
        dq = np.where(trade, after * (cash + units * close) / close - units, 0.0)
        fill = open_next * np.where(dq > 0, 1 + self._slip, 1 - self._slip)
        abs_dq = np.abs(dq)
        paid = np.abs(abs_dq * fill) * self._fee_bps / 1e4
        cash = cash - (dq * fill + paid)
        cost = paid + abs_dq * np.abs(fill - open_next)
        settled = units + dq
        residue = np.abs(settled) <= RESIDUE_TOLERANCE * np.maximum(np.abs(units), abs_dq)
        units = np.where(residue, 0.0, settled)
        equity = cash + units * close_next
        step_return = equity / start_equity - 1.0
        gross = step_return + cost / start_equity
        cost = cost / start_equity
        peak = np.where(equity > self._peak, equity, self._peak)
        flat = after == 0.0
        entered = (before == 0.0) | ((before > 0.0) != (after > 0.0))
        entry = np.where(flat, 0.0, np.where(entered, open_next, self._entry_price))
        bars = np.where(flat, 0, np.where(entered, 1, self._bars_in_position + 1))
        self._position = after
        self._units = units
        self._cash = cash
        self._equity = equity
        self._peak = peak
        self._entry_price = entry
        self._bars_in_position = bars

        ctx = BatchRewardContext(
            step=t,
            close=close,
            open_next=open_next,
            close_next=close_next,
            position_before=before,
            position_after=after,
            gross_return=gross,
            cost=cost,
            step_return=step_return,
            equity=equity,
            peak_equity=peak,
            drawdown=1.0 - equity / peak,
            bars_in_position=bars,
        )
        rewards = self._rewards(ctx)
        self._episode_return = self._episode_return + rewards
        self._episode_length = self._episode_length + 1
        # t, bar and row to the next bar, after the reward read ctx.step (a view of t)
        self._index += 1

        terminated = equity < self.config.bankrupt_equity
        truncated = self._t >= self._end
        dones = terminated | truncated
        obs = self._observe()
        infos: list[dict[str, Any]]
        if self.full_infos:
            infos = self._infos(truncated & ~terminated)
        else:
            infos = [NO_INFO] * self.num_envs
        if dones.any():
            done = np.flatnonzero(dones)
            time_limit = (truncated & ~terminated)[done].tolist()
            for k, i in enumerate(done.tolist()):
                info = infos[i]
                if not self.full_infos:
                    info = infos[i] = self._info(i, time_limit[k])
                info["terminal_observation"] = obs[i].copy()
                episode: dict[str, Any] = {
                    "r": round(float(self._episode_return[i]), 6),
                    "l": int(self._episode_length[i]),
                    "t": round(time.time() - self._t_start, 6),
                }
                for key in self.info_keywords:
                    episode[key] = info[key]
                info["episode"] = episode
                self._reset_copy(i, None, {})
            obs[done] = self._observe(done)
        return obs, rewards.astype(np.float32), dones, infos

    def _rewards(self, ctx: BatchRewardContext) -> np.ndarray:
        if self.batch_reward is not None:
            rewards = np.asarray(self.batch_reward(ctx), dtype=np.float64)
            if rewards.shape != (self.num_envs,):
                raise ValueError(
                    f"reward_batch returned shape {rewards.shape}; it must return one reward "
                    f"per copy, shape ({self.num_envs},)"
                )
        else:
            rewards = np.fromiter(self._scalar_rewards(ctx), np.float64, self.num_envs)
        if not np.isfinite(rewards).all():
            i = int(np.flatnonzero(~np.isfinite(rewards))[0])
            raise ValueError(
                f"reward function returned {rewards[i]} at step {int(ctx.step[i])} (copy {i})"
            )
        return rewards

    def _scalar_rewards(self, ctx: BatchRewardContext) -> list[float]:
        """The strategy's scalar ``reward`` once per copy, on Python numbers as `TradingEnv`
        gives them."""
        c = self._ctx
        reward = self.reward_fn
        out: list[float] = []
        for row in zip(
            ctx.step.tolist(),
            ctx.close.tolist(),
            ctx.open_next.tolist(),
            ctx.close_next.tolist(),
            ctx.position_before.tolist(),
            ctx.position_after.tolist(),
            ctx.gross_return.tolist(),
            ctx.cost.tolist(),
            ctx.step_return.tolist(),
            ctx.equity.tolist(),
            ctx.peak_equity.tolist(),
            ctx.drawdown.tolist(),
            ctx.bars_in_position.tolist(),
            strict=True,
        ):
            (
                c.step,
                c.close,
                c.open_next,
                c.close_next,
                c.position_before,
                c.position_after,
                c.gross_return,
                c.cost,
                c.step_return,
                c.equity,
                c.peak_equity,
                c.drawdown,
                c.bars_in_position,
            ) = row
            value = float(reward(c))
            if not math.isfinite(value):
                raise ValueError(f"reward function returned {value} at step {c.step}")
            out.append(value)
        return out

    def _observe(self, copies: np.ndarray | None = None) -> np.ndarray:
        """The observations of ``copies`` (indices; every copy when None): the feature window
        at bar t, then the agent state (`drl_trading.common.agent_state.agent_state`,
        vectorised)."""
        nf = self.n_features * self.config.window
        row, bar = self._row, self._bar
        pos, entry, bars = self._position, self._entry_price, self._bars_in_position
        if copies is not None:
            row, bar = row[copies], bar[copies]
            pos, entry, bars = pos[copies], entry[copies], bars[copies]
        # the windows' rows carry room for the state: one contiguous gather (``take`` is several
        # times faster than fancy indexing into a slice), then the three state columns
        obs = self._windows.take(row, axis=0)
        price = self._close.take(bar)
        held = (pos != 0.0) & (entry > 0.0)
        sign = np.where(pos > 0, 1.0, -1.0)
        unreal = (price / np.where(held, entry, 1.0) - 1.0) * sign
        obs[:, nf] = np.where(held, pos, 0.0)
        obs[:, nf + 1] = np.where(held, unreal, 0.0)
        obs[:, nf + 2] = np.where(held, bars / (bars + HOLDING_HALF_LIFE_BARS), 0.0)
        return obs

    def _info(self, i: int, time_limit: bool) -> dict[str, Any]:
        return {
            "equity": float(self._equity[i]),
            "position": float(self._position[i]),
            "t": int(self._t[i]),
            "series": int(self._series_index[i]),
            "TimeLimit.truncated": time_limit,
        }

    def _infos(self, time_limit: np.ndarray) -> list[dict[str, Any]]:
        """`TradingEnv`'s info per copy plus DummyVecEnv's ``TimeLimit.truncated``."""
        return [
            {"equity": e, "position": p, "t": t, "series": s, "TimeLimit.truncated": tl}
            for e, p, t, s, tl in zip(
                self._equity.tolist(),
                self._position.tolist(),
                self._t.tolist(),
                self._series_index.tolist(),
                time_limit.tolist(),
                strict=True,
            )
        ]

    # -- what SB3 and MaskablePPO ask of every copy --------------------------------------------

    def action_masks(self) -> np.ndarray:
        """For MaskablePPO, one copy's mask (the same for all): short is masked when the
        strategy forbids it."""
        return np.array([self.config.allow_short, True, True], dtype=bool)

    @property
    def equity(self) -> np.ndarray:
        """Each copy's current equity (a multiple of its starting equity 1)."""
        return self._equity.copy()

    def close(self) -> None:
        """Nothing to release: the arrays are the environment's only resources."""


def _windows(s: MarketSeries, w: int, spare: int) -> np.ndarray:
    """Row j: the features of bars j .. j + w - 1 flattened (float32), as `TradingEnv` builds
    them, then ``spare`` zero columns."""
    feats = np.ascontiguousarray(s.features, dtype=np.float32)
    win = np.lib.stride_tricks.sliding_window_view(feats, (w, feats.shape[1]))[:, 0]
    flat = win.reshape(win.shape[0], -1)
    rows = np.zeros((flat.shape[0], flat.shape[1] + spare), dtype=np.float32)
    rows[:, : flat.shape[1]] = flat
    return rows
