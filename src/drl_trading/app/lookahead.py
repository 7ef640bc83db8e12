"""`drl-trading check lookahead`: does any feature or observation at a bar's close depend on
later bars, on the user's own stored data and feature set?

For each symbol the stored bars of the data timeframe (`data_timeframe`) are read once, from the
feature set's look-back before the start (as preprocessing reads them) to the end, and the
features are computed in memory exactly as preprocessing computes them, on the symbol's market
calendar (`preprocess.core.lookahead.feature_rows`). Then, at each of a few cut times (base-bar
closes spread over the range), every bar after the cut is perturbed, the features are computed
again and compared with the first computation at every row at or before the cut; so are the
training environment's observations (features plus the agent's state, stepped with the same
fixed actions). Nothing is written to any store.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal

import numpy as np
import polars as pl

from drl_trading.app.data_timeframe import data_timeframe
from drl_trading.app.infrastructure import (
    build_calendars,
    build_market_data,
    build_strategy,
    feature_set_for,
)
from drl_trading.app.settings import AppSettings
from drl_trading.common.calendar import MarketCalendar
from drl_trading.common.domain import Symbol, Timeframe, TimeRange
from drl_trading.common.errors import OperatorError
from drl_trading.common.market_series import MarketSeries
from drl_trading.common.ports import MarketDataRepository
from drl_trading.preprocess.core.checks import require_base_at_least
from drl_trading.preprocess.core.features import EVENT_TIME
from drl_trading.preprocess.core.history import read_start
from drl_trading.preprocess.core.lookahead import (
    Change,
    changes_at_or_before,
    feature_rows,
    perturb_after,
    pick_cuts,
)
from drl_trading.preprocess.core.market_sessions import (
    require_daily_buildable,
    require_in_sessions,
)
from drl_trading.strategy.feature_set import FeatureSetSpec
from drl_trading.training.core.dataset import series_from_frame
from drl_trading.training.core.env import EnvConfig, env_config_for
from drl_trading.training.core.observation_replay import (
    observation_names,
    replay_observations,
    sticky_actions,
)

DEFAULT_CUTS = 8


class NoBarsError(OperatorError):
    """A symbol has no stored bars in the range to check."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One column of one symbol that changed at or before a cut."""

    symbol: Symbol
    kind: Literal["feature", "observation"]
    change: Change


@dataclass(frozen=True, slots=True)
class CutCheck:
    symbol: Symbol
    cut: datetime
    """The cut time: the close of a base bar (UTC)."""
    feature_rows: int
    """Feature rows at or before the cut that were compared."""
    observation_rows: int
    """Observations at or before the cut that were compared (0 when not checked)."""


@dataclass(frozen=True, slots=True)
class LookaheadReport:
    symbols: tuple[Symbol, ...]
    range: TimeRange
    data_timeframe: Timeframe
    feature_set: str
    """Name and version (``core a413c83efe96``)."""
    features: int
    """Feature columns compared."""
    observation_entries: int
    """Entries of one observation compared (0 when observations were not checked)."""
    cuts: list[CutCheck] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.findings


def check_lookahead(
    settings: AppSettings,
    symbols: Sequence[Symbol],
    rng: TimeRange,
    *,
    cuts: int = DEFAULT_CUTS,
    seed: int = 0,
    tolerance: float = 0.0,
    observations: bool = True,
    market_data: MarketDataRepository | None = None,
) -> LookaheadReport:
    """Check ``symbols`` over ``rng`` at ``cuts`` cut times per symbol (drawn with ``seed``);
    a difference above ``tolerance`` (absolute) is a finding. Raises `NoBarsError` when a
    symbol has no stored bars there, the preprocess checks' errors when the stored bars cannot
    make the feature set (base finer than the data, bars outside the calendar's sessions).
    ``market_data``: the store to read (default: the configured one, opened and closed here)."""
    if cuts < 1:
        raise ValueError(f"--cuts must be at least 1, got {cuts}")
    spec = feature_set_for(settings)
    calendars = build_calendars(settings)
    bars_by_symbol, data_tf = _read_bars(
        settings, spec, calendars.for_symbol, symbols, rng, market_data
    )
    env = _env_config(settings, spec) if observations else None
    report = LookaheadReport(
        symbols=tuple(symbols),
        range=rng,
        data_timeframe=data_tf,
        feature_set=f"{spec.name} {spec.version}",
        features=len(spec.columns),
        observation_entries=0 if env is None else len(observation_names(spec.columns, env.window)),
    )
    for index, symbol in enumerate(symbols):
        _check_symbol(
            report,
            symbol,
            bars_by_symbol[symbol],
            data_tf,
            spec,
            calendars.for_symbol(symbol),
            env,
            np.random.default_rng([seed, index]),
            cuts,
            tolerance,
        )
    return report


def _read_bars(
    settings: AppSettings,
    spec: FeatureSetSpec,
    calendar_of: Callable[[Symbol], MarketCalendar],
    symbols: Sequence[Symbol],
    rng: TimeRange,
    given: MarketDataRepository | None,
) -> tuple[dict[Symbol, pl.DataFrame], Timeframe]:
    """Every symbol's stored bars of the data timeframe, from the look-back before the start;
    a store opened here is closed before any computation."""
    market_data = build_market_data(settings, write_behind=False) if given is None else given
    try:
        data_tf = data_timeframe(market_data, symbols, rng.start, rng.end)
        require_base_at_least(spec, data_tf)
        out: dict[Symbol, pl.DataFrame] = {}
        for symbol in symbols:
            calendar = calendar_of(symbol)
            read_from = read_start(spec, calendar, rng.start)
            if Timeframe.D1 in spec.all_timeframes and data_tf is not Timeframe.D1:
                require_daily_buildable(symbol, calendar, data_tf, read_from, rng.end)
            bars = market_data.read_bars(symbol, data_tf, read_from, rng.end)
            if bars.is_empty() or bars["open_time"][-1] < rng.start:
                raise NoBarsError(
                    f"{symbol}: no {data_tf.value} bars stored in {rng}; run `drl-trading ingest` "
                    "for this range first"
                )
            require_in_sessions(symbol, calendar, data_tf, bars)
            out[symbol] = bars
        return out, data_tf
    finally:
        if given is None:
            market_data.close()


def _env_config(settings: AppSettings, spec: FeatureSetSpec) -> EnvConfig:
    """The environment training would build, run over each whole series (no episodes)."""
    risk = build_strategy(settings).risk_parameters()
    return replace(env_config_for(settings.training, risk, spec.columns), episode_bars=None)


def _check_symbol(
    report: LookaheadReport,
    symbol: Symbol,
    bars: pl.DataFrame,
    data_tf: Timeframe,
    spec: FeatureSetSpec,
    calendar: MarketCalendar,
    env: EnvConfig | None,
    draws: np.random.Generator,
    cuts: int,
    tolerance: float,
) -> None:
    rng = report.range
    reference = feature_rows(bars, data_tf, spec, calendar)
    in_range = reference.filter(
        (pl.col("bar_open_time") >= rng.start) & (pl.col(EVENT_TIME) <= rng.end)
    )
    seed = int(draws.integers(0, 2**32))
    ref_obs = None if env is None else _observations(reference, symbol, spec, calendar, env, seed)
    names = () if env is None else observation_names(spec.columns, env.window)
    for cut in pick_cuts(in_range[EVENT_TIME], cuts, draws):
        perturbed = feature_rows(perturb_after(bars, cut, draws), data_tf, spec, calendar)
        rows, changes = changes_at_or_before(reference, perturbed, cut, spec.columns, tolerance)
        report.findings.extend(Finding(symbol, "feature", c) for c in changes)
        obs_rows = 0
        if env is not None and ref_obs is not None:
            until = np.datetime64(cut.replace(tzinfo=None), "us")
            got = _observations(perturbed, symbol, spec, calendar, env, seed, until)
            obs_rows, obs_changes = changes_at_or_before(ref_obs, got, cut, names, tolerance)
            report.findings.extend(Finding(symbol, "observation", c) for c in obs_changes)
        report.cuts.append(CutCheck(symbol, cut, rows, obs_rows))


def _observations(
    rows: pl.DataFrame,
    symbol: Symbol,
    spec: FeatureSetSpec,
    calendar: MarketCalendar,
    env: EnvConfig,
    seed: int,
    until: np.datetime64 | None = None,
) -> pl.DataFrame:
    """The environment's observations over ``rows`` (one replay per run of consecutive bars),
    each run stepped with actions drawn from ``seed`` and its first bar's time, so that two
    computations whose runs start on the same bar take the same actions."""
    frame = rows.with_columns(pl.lit(str(symbol)).alias("symbol"))
    parts = [
        replay_observations(s, env, _actions(s, env, seed), until)
        for s in series_from_frame(frame, spec.columns, spec.base_timeframe, calendar=calendar)
        if len(s) > env.window and (until is None or s.times[0] <= until)
    ]
    if not parts:
        names = observation_names(spec.columns, env.window)
        return pl.DataFrame(
            schema={EVENT_TIME: rows.schema[EVENT_TIME], **dict.fromkeys(names, pl.Float64)}
        )
    return pl.concat(parts)


def _actions(series: MarketSeries, env: EnvConfig, seed: int) -> np.ndarray:
    first = int(series.times[0].astype("datetime64[us]").astype(np.int64))
    return sticky_actions(len(series), env, np.random.default_rng([seed, first]))
