"""The observations a `TradingEnv` gives over one series for a fixed sequence of actions.

The look-ahead check compares them between the stored bars and bars changed after a cut: an
observation at a bar's close (its window of features plus the agent's state, which depends on
the fills at earlier opens and the mark at that close) must not change when only later bars do.
The actions come from the caller, not from a policy, so that both runs take the same ones
whatever they observe.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl

from drl_trading.common.agent_state import STATE_NAMES
from drl_trading.common.bars import TIME_DTYPE
from drl_trading.common.market_series import MarketSeries
from drl_trading.strategy.api import RewardContext
from drl_trading.training.core.env import EnvConfig, TradingEnv

EVENT_TIME = "event_time"


def observation_names(feature_names: tuple[str, ...], window: int) -> tuple[str, ...]:
    """The name of each entry of an observation: ``obs:<feature>`` for the current bar,
    ``obs:<feature>[t-k]`` for the bar ``k`` before it (window > 1), then ``state:<name>``."""
    lagged = [
        f"obs:{name}" if lag == 0 else f"obs:{name}[t-{lag}]"
        for lag in range(window - 1, -1, -1)
        for name in feature_names
    ]
    return (*lagged, *(f"state:{name}" for name in STATE_NAMES))


def sticky_actions(
    n: int, config: EnvConfig, rng: np.random.Generator, switch: float = 0.05
) -> np.ndarray:
    """``n`` actions that keep the last one with probability ``1 - switch`` per bar and draw a
    new one otherwise (discrete 0..2, or continuous in [-1, 1]): positions held for a while, so
    that the unrealised return and time in position take many values, at a trading rate that
    does not ruin the account in a few hundred bars."""
    if config.action_mode == "discrete":
        fresh = rng.integers(0, 3, n).astype(np.float64)
    else:
        fresh = rng.uniform(-1.0, 1.0, n)
    keep = rng.random(n) >= switch
    keep[0] = False
    index = np.maximum.accumulate(np.where(keep, 0, np.arange(n)))
    return fresh[index]


def replay_observations(
    series: MarketSeries,
    config: EnvConfig,
    actions: np.ndarray,
    until: np.datetime64 | None = None,
) -> pl.DataFrame:
    """``event_time`` (each bar's close, UTC) and one column per `observation_names` entry:
    the observation at every bar from ``window - 1`` on, stepping the environment with
    ``actions[i]`` at bar ``i``; stops after the last bar at or before ``until`` (None: the
    series' end). An account that goes bankrupt starts again flat at the next step, so that every
    bar is observed."""
    env = TradingEnv([series], _no_reward, dataclasses.replace(config, episode_bars=None))
    first, last = config.window - 1, len(series) - 1
    stop = (
        last if until is None else min(last, int(np.searchsorted(series.times, until, "right")) - 1)
    )
    rows: list[np.ndarray] = []
    if stop < first:
        return _frame(series, config, first, rows)
    obs, _ = env.reset(options={"start": first})
    rows.append(obs)
    t = first
    while t < stop:
        obs, _, terminated, _, _ = env.step(_action(actions[t], config))
        t += 1
        rows.append(obs)
        if terminated and t < last:
            env.reset(options={"start": t})
    return _frame(series, config, first, rows)


def _frame(
    series: MarketSeries, config: EnvConfig, first: int, rows: list[np.ndarray]
) -> pl.DataFrame:
    names = observation_names(config.feature_names, config.window)
    if len(names) != series.features.shape[1] * config.window + len(STATE_NAMES):
        names = (
            tuple(f"obs[{i}]" for i in range(series.features.shape[1] * config.window))
            + (names[-len(STATE_NAMES) :])
        )
    values = (
        np.stack(rows).astype(np.float64) if rows else np.empty((0, len(names)), dtype=np.float64)
    )
    times = series.times[first : first + len(rows)].astype("datetime64[us]")
    frame = pl.DataFrame({EVENT_TIME: pl.Series(times).dt.replace_time_zone("UTC")})
    return frame.with_columns(
        pl.Series(name, values[:, i]) for i, name in enumerate(names)
    ).with_columns(pl.col(EVENT_TIME).cast(TIME_DTYPE))


def _action(value: float, config: EnvConfig) -> int | np.ndarray:
    if config.action_mode == "discrete":
        return int(value)
    return np.array([value], dtype=np.float32)


def _no_reward(ctx: RewardContext) -> float:
    """Observations do not depend on the reward; any finite one will do."""
    return 0.0
