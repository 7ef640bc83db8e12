"""The look-ahead check's computation: perturb the bars after a cut, recompute the features the
way preprocessing does, and list what changed at or before the cut.

A feature is causal when its value at a base bar's close depends only on bars that had closed by
then. Changing every bar that opens at or after a cut time (prices moved along a random walk,
volumes scaled) must then leave every row whose ``event_time`` is at or before the cut exactly
as it was: the computation is deterministic, so a causal value is recomputed from identical
inputs and comes out bit for bit the same. Any difference is look-ahead: an indicator that reads
a later bar, a higher timeframe joined before its bar closed, a normalisation over the whole
range. The cuts are base-bar closes, so every bar of the data timeframe lies wholly before or
wholly after one (data bars nest in base bars), and perturbing those that open at or after it
touches exactly the future of that row.

Nothing here reads or writes a store: the caller hands in the stored bars and gets frames back.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import polars as pl

from drl_trading.common.calendar import MarketCalendar
from drl_trading.common.domain import Timeframe, utc
from drl_trading.preprocess.core.features import EVENT_TIME, build_feature_matrix, close_times
from drl_trading.preprocess.core.resample import resample
from drl_trading.strategy.feature_set import FeatureSetSpec

ROW = "(row)"
"""The column name a change is reported under when a row exists in one computation only (a
feature that was undefined, or became defined, because of later bars)."""

_PERTURBED = "__perturbed"
_IN_REFERENCE = "__in_reference"
_IN_PERTURBED = "__in_perturbed"

BAR_COLUMNS = ("bar_open_time", "bar_open", "bar_close")
"""The base bar's key and prices beside each feature row: what an environment series needs."""


@dataclass(frozen=True, slots=True)
class Perturbation:
    """How strongly the bars after a cut are changed. Prices follow ``jump`` (a log-price step
    of this size, either sign, at the first bar after the cut) plus a random walk with
    ``step`` log-price standard deviation per bar; each bar's high is raised and its low lowered
    by up to ``wick`` (fraction) more, so that a feature reading only highs or lows changes too;
    volumes are scaled by ``exp(volume * z)``. Every price is multiplied by a positive factor and
    highs only raised, lows only lowered, so the bars stay valid OHLC."""

    jump: float = 0.05
    step: float = 0.01
    wick: float = 0.005
    volume: float = 0.5


@dataclass(frozen=True, slots=True)
class Change:
    """One column that differed at or before a cut."""

    cut: datetime
    column: str
    """A feature column, an observation entry, or `ROW`."""
    first: datetime
    """The earliest ``event_time`` at or before the cut where it differed."""
    rows: int
    """Rows at or before the cut where it differed."""
    largest: float
    """The largest absolute difference (inf where a value is NaN or missing on one side only)."""
    at: datetime
    """The ``event_time`` of the largest difference."""


def data_frames(
    bars: pl.DataFrame,
    data_timeframe: Timeframe,
    spec: FeatureSetSpec,
    calendar: MarketCalendar | None = None,
) -> dict[Timeframe, pl.DataFrame]:
    """``bars`` (of ``data_timeframe``) and their resamplings to every coarser timeframe of
    ``spec``, on ``calendar`` (None: 24/7): what the offline preprocess builds features from."""
    by_tf = {data_timeframe: bars}
    for tf in spec.all_timeframes:
        if tf.minutes > data_timeframe.minutes:
            by_tf[tf] = resample(bars, tf, source=data_timeframe, calendar=calendar)
    return by_tf


def feature_rows(
    bars: pl.DataFrame,
    data_timeframe: Timeframe,
    spec: FeatureSetSpec,
    calendar: MarketCalendar | None = None,
) -> pl.DataFrame:
    """The feature matrix preprocessing computes from ``bars`` (``event_time`` and
    ``spec.columns``, complete rows only), with `BAR_COLUMNS` of each row's base bar."""
    by_tf = data_frames(bars, data_timeframe, spec, calendar)
    matrix = build_feature_matrix(by_tf, spec, calendar)
    base = by_tf[spec.base_timeframe]
    keyed = pl.DataFrame(
        {
            EVENT_TIME: close_times(base, spec.base_timeframe, calendar),
            "bar_open_time": base["open_time"],
            "bar_open": base["open"],
            "bar_close": base["close"],
        }
    )
    return matrix.frame.join(keyed, on=EVENT_TIME, how="left")


def perturb_after(
    bars: pl.DataFrame,
    cut: datetime,
    rng: np.random.Generator,
    perturbation: Perturbation = Perturbation(),
) -> pl.DataFrame:
    """``bars`` with every bar that opens at or after ``cut`` changed by ``perturbation`` (drawn
    from ``rng``); the bars before it are returned as they were."""
    after = (bars["open_time"] >= utc(cut)).to_numpy()
    n = int(after.sum())
    if n == 0:
        return bars
    p = perturbation
    sign = 1.0 if rng.random() < 0.5 else -1.0
    log_factor = sign * p.jump + np.cumsum(p.step * rng.standard_normal(n))
    factor = np.ones(bars.height)
    factor[after] = np.exp(log_factor)
    up = np.ones(bars.height)
    down = np.ones(bars.height)
    up[after] = 1.0 + p.wick * rng.random(n)
    down[after] = 1.0 - p.wick * rng.random(n)
    volume = np.ones(bars.height)
    volume[after] = np.exp(p.volume * rng.standard_normal(n))
    return bars.with_columns(
        pl.col("open") * factor,
        pl.col("high") * (factor * up),
        pl.col("low") * (factor * down),
        pl.col("close") * factor,
        pl.col("volume") * volume,
    )


def pick_cuts(closes: pl.Series, count: int, rng: np.random.Generator) -> list[datetime]:
    """``count`` cut times among ``closes`` (sorted base-bar closes), spread evenly: the closes
    but the last (a cut needs a bar after it) are split into ``count`` equal strata and one close
    is drawn in each. Fewer when there are fewer closes."""
    usable = closes.len() - 1
    if usable < 1 or count < 1:
        return []
    edges = np.linspace(0, usable, min(count, usable) + 1).astype(np.int64)
    picks = [
        int(rng.integers(lo, max(hi, lo + 1))) for lo, hi in itertools.pairwise(edges.tolist())
    ]
    return [closes[i] for i in sorted(set(picks))]


def changes_at_or_before(
    reference: pl.DataFrame,
    perturbed: pl.DataFrame,
    cut: datetime,
    columns: tuple[str, ...],
    tolerance: float = 0.0,
) -> tuple[int, list[Change]]:
    """The rows of ``reference`` at or before ``cut`` (by ``event_time``) and each of
    ``columns`` that differs there from ``perturbed`` by more than ``tolerance`` (absolute), plus
    `ROW` when a row is in one frame only. NaN on both sides is no difference."""
    cut = utc(cut)
    ref = reference.filter(pl.col(EVENT_TIME) <= cut).select(EVENT_TIME, *columns)
    per = perturbed.filter(pl.col(EVENT_TIME) <= cut).select(EVENT_TIME, *columns)
    joined = (
        ref.with_columns(pl.lit(True).alias(_IN_REFERENCE))
        .join(
            per.with_columns(pl.lit(True).alias(_IN_PERTURBED)),
            on=EVENT_TIME,
            how="full",
            suffix=_PERTURBED,
            coalesce=True,
        )
        .sort(EVENT_TIME)
    )
    times = joined[EVENT_TIME]
    changes: list[Change] = []
    one_side = (joined[_IN_REFERENCE].is_null() | joined[_IN_PERTURBED].is_null()).to_numpy()
    if one_side.any():
        changes.append(_change(cut, ROW, times, one_side, np.where(one_side, np.inf, 0.0)))
    both = ~one_side
    for col in columns:
        a = joined[col].to_numpy().astype(np.float64)
        b = joined[f"{col}{_PERTURBED}"].to_numpy().astype(np.float64)
        nan_a, nan_b = np.isnan(a), np.isnan(b)
        with np.errstate(invalid="ignore"):
            size = np.where(nan_a | nan_b, np.where(nan_a == nan_b, 0.0, np.inf), np.abs(a - b))
        changed = both & (size > tolerance)
        if changed.any():
            changes.append(_change(cut, col, times, changed, np.where(changed, size, 0.0)))
    return ref.height, changes


def _change(
    cut: datetime, column: str, times: pl.Series, changed: np.ndarray, size: np.ndarray
) -> Change:
    where = np.flatnonzero(changed)
    largest = int(np.argmax(size))
    return Change(
        cut=cut,
        column=column,
        first=times[int(where[0])],
        rows=int(where.size),
        largest=float(size[largest]),
        at=times[largest],
    )
