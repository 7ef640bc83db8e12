"""From the feature matrix to environment series, and time splits that never leak.

Splits are chronological: train | embargo | validation | embargo | test. The embargo is a gap of
unused bars between two parts: a training step's reward looks one bar ahead and features look
back, so without a gap the last training rewards would be priced on bars the validation scores.
Walk-forward folds slide the validation window forward over the non-test part, each fold
training on everything before its validation window (an expanding window).
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import polars as pl

from drl_trading.common.domain import Timeframe, TimeRange
from drl_trading.common.market_series import MarketSeries


class SplitError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Fold:
    train: TimeRange
    validation: TimeRange


@dataclass(frozen=True, slots=True)
class Splits:
    folds: tuple[Fold, ...]
    test: TimeRange
    embargo: timedelta

    @property
    def final(self) -> Fold:
        return self.folds[-1]

    def describe(self) -> dict[str, str]:
        out = {}
        for i, f in enumerate(self.folds):
            p = f"fold{i}." if len(self.folds) > 1 else ""
            out[f"{p}train"] = f"{f.train.start.isoformat()} .. {f.train.end.isoformat()}"
            out[f"{p}validation"] = (
                f"{f.validation.start.isoformat()} .. {f.validation.end.isoformat()}"
            )
        out["test"] = f"{self.test.start.isoformat()} .. {self.test.end.isoformat()}"
        out["embargo"] = str(self.embargo)
        return out


def _floor(t: datetime, step: timedelta) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=t.tzinfo)
    return epoch + ((t - epoch) // step) * step


def make_splits(
    rng: TimeRange,
    base: Timeframe,
    validation_fraction: float,
    test_fraction: float,
    embargo: timedelta,
    folds: int = 1,
) -> Splits:
    """Cut ``rng`` by fractions of its length (boundaries on the base-bar grid)."""
    if not 0 < validation_fraction < 1 or not 0 < test_fraction < 1:
        raise SplitError("validation and test fractions must be in (0, 1)")
    if validation_fraction * folds + test_fraction >= 0.9:
        raise SplitError("validation x folds + test must leave at least 10% for training")
    if folds < 1:
        raise SplitError("folds must be >= 1")
    total = rng.end - rng.start
    step = base.duration
    test_start = _floor(rng.end - total * test_fraction, step)
    val_len = total * validation_fraction
    out: list[Fold] = []
    for k in range(folds):
        # fold k's validation ends where fold k+1's starts; the last ends an embargo before test
        val_end = _floor(test_start - embargo - val_len * (folds - 1 - k), step)
        val_start = _floor(val_end - val_len, step)
        train_end = val_start - embargo
        if train_end - rng.start < total * 0.1 or val_end <= val_start:
            raise SplitError(
                f"range {rng.start.isoformat()}..{rng.end.isoformat()} is too short for "
                f"{folds} fold(s) with embargo {embargo}: give a longer range or smaller fractions"
            )
        out.append(Fold(TimeRange(rng.start, train_end), TimeRange(val_start, val_end)))
    return Splits(tuple(out), TimeRange(test_start, rng.end), embargo)


def series_from_frame(
    frame: pl.DataFrame, columns: tuple[str, ...], base: Timeframe, rng: TimeRange | None = None
) -> list[MarketSeries]:
    """One `MarketSeries` per symbol and run of consecutive bars: a missing bar splits a series,
    because the environment's "next open" must be the next bar's open."""
    if rng is not None:
        frame = frame.filter(
            (pl.col("bar_open_time") >= rng.start) & (pl.col("bar_open_time") < rng.end)
        )
    out: list[MarketSeries] = []
    step_us = base.duration // timedelta(microseconds=1)
    for (symbol,), part in frame.sort("symbol", "event_time").group_by(
        "symbol", maintain_order=True
    ):
        times = part["event_time"].to_numpy().astype("datetime64[us]")
        feats = part.select(columns).to_numpy().astype(np.float32)
        opens = part["bar_open"].to_numpy().astype(np.float64)
        closes = part["bar_close"].to_numpy().astype(np.float64)
        breaks = np.flatnonzero(np.diff(times.astype(np.int64)) != step_us) + 1
        bounds = [0, *breaks.tolist(), len(times)]
        for a, b in itertools.pairwise(bounds):
            if b - a >= 2:
                out.append(
                    MarketSeries(str(symbol), times[a:b], feats[a:b], opens[a:b], closes[a:b])
                )
    return out


def fingerprint(frame: pl.DataFrame) -> str:
    """A hash of exactly the rows and values the model saw, logged with every run so a result
    can be traced back to its data (and a changed dataset noticed)."""
    h = hashlib.sha256()
    for col in frame.columns:
        h.update(col.encode())
        series = frame[col]
        if series.dtype == pl.Utf8:
            h.update("\x00".join(series.to_list()).encode())
        else:
            h.update(series.to_numpy().tobytes())
    return h.hexdigest()[:16]
