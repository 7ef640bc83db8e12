"""From the feature matrix to environment series, and time splits that never leak.

Splits are chronological: train | embargo | validation | embargo | test. The embargo is a gap of
unused bars between two parts: a training step's reward looks one bar ahead and features look
back, so without a gap the last training rewards would be priced on bars the validation scores.
Walk-forward folds slide the validation window forward over the non-test part. Each fold
trains on everything before its validation window (``expanding``, the default) or on the last
``train_length`` of it (``rolling``: every fold's window equally long, ending an embargo before
its validation; by default as long as fold 0's expanding window). The validation windows are the
same either way: consecutive, touching, all before the test.

On a 24/7 market the range is cut by fractions of its length, boundaries on the base-bar grid.
On a market that closes (FX weekends, exchange nights and holidays) it is cut by fractions of
the market's bars in it (`drl_trading.common.bar_windows.bar_slots`; daily bars are sessions),
each boundary the key of a bar, and the embargo is ``embargo / base`` bars of the market: a
weekend counts for no bar, so a part is never mostly closure.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import polars as pl

from drl_trading.common.bar_windows import bar_closes, bar_slots, slot_ordinals
from drl_trading.common.calendar import MarketCalendar
from drl_trading.common.domain import Timeframe, TimeRange, from_micros, to_micros
from drl_trading.common.market_series import MarketSeries
from drl_trading.training.core.config import WindowKind


class SplitError(ValueError):
    """The split settings cannot cut the range; the message says what they need."""


@dataclass(frozen=True, slots=True)
class Fold:
    train: TimeRange
    validation: TimeRange


@dataclass(frozen=True, slots=True)
class Splits:
    folds: tuple[Fold, ...]
    test: TimeRange
    embargo: timedelta
    window: WindowKind = "expanding"
    train_length: str | None = None
    """Rolling windows: each fold's training length as read (``30 days`` on a 24/7 market,
    ``720 1h bars of market calendar fx`` where the market closes); None when expanding."""

    @property
    def final(self) -> Fold:
        return self.folds[-1]

    @property
    def window_text(self) -> str:
        """``expanding training windows`` / ``rolling training windows of 30 days``."""
        if self.window == "expanding":
            return "expanding training windows"
        return f"rolling training windows of {self.train_length}"

    def protocol_text(self, seeds: int) -> str:
        """``3 walk-forward folds (rolling training windows of 30 days), embargo 12 h, 2 seeds
        = 6 trainings``: the protocol as the training summary and the evaluation report say it."""
        folds = len(self.folds)

        def n(k: int, word: str) -> str:
            return f"{k} {word}{'' if k == 1 else 's'}"

        return (
            f"{n(folds, 'walk-forward fold')} ({self.window_text}), embargo "
            f"{length(self.embargo)}, {n(seeds, 'seed')} = {n(folds * seeds, 'training')}"
        )

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
        out["window"] = self.window
        if self.train_length is not None:
            out["train_length"] = self.train_length
        return out


def _floor(t: datetime, step: timedelta) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=t.tzinfo)
    return epoch + ((t - epoch) // step) * step


MIN_TRAIN_FRACTION = 0.1
"""The least share of the range the training part keeps (of fold 0, the shortest)."""
_SHARE_TOLERANCE = 1e-6
"""Fractions that leave training no more than `MIN_TRAIN_FRACTION` within this are refused:
0.2 x 3 + 0.3 is 0.8999999999999999 in floats, which would leave a training share above the
minimum by 3e-17 and a needed range length beyond any date."""


def make_splits(
    rng: TimeRange,
    base: Timeframe,
    validation_fraction: float,
    test_fraction: float,
    embargo: timedelta,
    folds: int = 1,
    *,
    min_bars: int = 2,
    what: Callable[[], str] | None = None,
    calendar: MarketCalendar | None = None,
    window: WindowKind = "expanding",
    train_length: timedelta | None = None,
) -> Splits:
    """Cut ``rng`` by fractions of its length (boundaries on the base-bar grid), or, on a
    ``calendar`` that closes, by fractions of the market's base bars in ``rng`` (boundaries at
    bar keys; see the module). Every part (each fold's training and validation, the test)
    spans at least ``min_bars`` base bars and fold 0's expanding training at least
    `MIN_TRAIN_FRACTION` of ``rng``; a shorter ``rng`` is a `SplitError` giving its length and
    the least length these settings need. ``what`` names ``rng`` in that message (default: "the
    range ..."); it is called only for the message, so that what it costs (a store query) is not
    paid by every split that fits.

    ``window="rolling"`` keeps those validation windows and trains each fold on the
    ``train_length`` (whole base bars; on a calendar that closes, the market's bars, as the
    embargo) ending where its expanding window ends; None: as many bars as fold 0's expanding
    window. A length under ``min_bars`` bars, or longer than fold 0's expanding window, is a
    `SplitError` saying so."""
    if window not in ("expanding", "rolling"):
        raise SplitError(f"window must be 'expanding' or 'rolling', not {window!r}")
    if window == "expanding" and train_length is not None:
        raise SplitError(
            "train_length applies to rolling windows only: set training.split.window to "
            "rolling or remove training.split.train_length"
        )
    if not 0 < validation_fraction < 1 or not 0 < test_fraction < 1:
        raise SplitError("validation and test fractions must be in (0, 1)")
    if validation_fraction * folds + test_fraction >= 1 - MIN_TRAIN_FRACTION - _SHARE_TOLERANCE:
        raise SplitError(
            f"validation x folds + test ({validation_fraction:g} x {folds} + {test_fraction:g})"
            f" must leave more than {MIN_TRAIN_FRACTION:.0%} for training"
        )
    if folds < 1:
        raise SplitError("folds must be >= 1")
    if min_bars < 1:
        raise SplitError("min_bars must be >= 1")
    if calendar is not None and not calendar.always_open:
        splits, train_ends, at = _slot_splits(
            rng, base, validation_fraction, test_fraction, embargo, folds, min_bars, what, calendar
        )
        if window == "expanding":
            return splits
        return _rolling_slots(splits, train_ends, at, rng, base, min_bars, calendar, train_length)
    total = rng.end - rng.start
    step = base.duration
    least = step * min_bars
    test_start = _floor(rng.end - total * test_fraction, step)
    val_len = total * validation_fraction
    out: list[Fold] = []
    short = rng.end - test_start < least

    # the validations' boundaries, each floored once: fold k's validation is [cut(k), cut(k+1)),
    # so it ends exactly where fold k+1's starts (never a bar of both); the last ends an embargo
    # before test
    def cut(j: int) -> datetime:
        return _floor(test_start - embargo - val_len * (folds - j), step)

    for k in range(folds):
        val_start, val_end = cut(k), cut(k + 1)
        train_end = val_start - embargo
        train = train_end - rng.start
        if train < max(total * MIN_TRAIN_FRACTION, least) or val_end - val_start < least:
            short = True
            break
        out.append(Fold(TimeRange(rng.start, train_end), TimeRange(val_start, val_end)))
    if short:
        need = split_length_needed(
            base, validation_fraction, test_fraction, embargo, folds, min_bars
        )
        folded = f" x {folds} folds" if folds > 1 else ""
        raise SplitError(
            f"too little data for the splits: {what() if what else f'the range {rng}'}, "
            f"{length(total)}; "
            f"the splits (training.split) need at least {length(need)}: validation "
            f"{validation_fraction:.0%}{folded} and test {test_fraction:.0%} of it, an embargo "
            f"of {length(embargo)} between the parts, and training at least "
            f"{MIN_TRAIN_FRACTION:.0%} of it; every part at least {min_bars} {base.value} bars. "
            "Ingest a longer range, or lower training.split.validation_fraction, "
            "test_fraction or embargo"
        )
    splits = Splits(tuple(out), TimeRange(test_start, rng.end), embargo)
    if window == "expanding":
        return splits
    return _rolling(splits, base, min_bars, train_length)


def _train_length_text(train_length: timedelta) -> str:
    return f"training.split.train_length {length(train_length)}"


def _rolling(
    splits: Splits, base: Timeframe, min_bars: int, train_length: timedelta | None
) -> Splits:
    """``splits`` (cut 24/7) with every fold trained on the same span ending where its expanding
    window ends: ``train_length`` in whole base bars, or fold 0's expanding span."""
    step = base.duration
    first = splits.folds[0].train
    room = first.end - first.start
    if train_length is None:
        span = room
    else:
        bars = train_length // step
        span = bars * step
        if bars < min_bars:
            raise SplitError(
                f"{_train_length_text(train_length)} is {bars} {base.value} "
                f"bar{'' if bars == 1 else 's'}, fewer than the {min_bars} every part of the "
                "splits needs: lengthen it, or set it to null (as long as fold 0's expanding "
                "window)"
            )
        if span > room:
            raise SplitError(
                f"{_train_length_text(train_length)} is longer than fits before fold 0's "
                f"validation: its expanding window, {first}, is {length(room)}. Shorten it, or "
                "set it to null (that length), lower training.split.walk_forward_folds or "
                "validation_fraction, or ingest a longer range"
            )
    folds = tuple(
        Fold(TimeRange(f.train.end - span, f.train.end), f.validation) for f in splits.folds
    )
    return Splits(folds, splits.test, splits.embargo, "rolling", length(span))


def _rolling_slots(
    splits: Splits,
    train_ends: list[int],
    at: Callable[[int], datetime],
    rng: TimeRange,
    base: Timeframe,
    min_bars: int,
    calendar: MarketCalendar,
    train_length: timedelta | None,
) -> Splits:
    """`_rolling` on the market's bars: every fold trains on the same number of bars, ending at
    bar position ``train_ends[k]`` (where its expanding window ends); ``train_length`` counts
    ``train_length / base`` bars of the market, as the embargo does."""
    room = train_ends[0]
    bars = room if train_length is None else embargo_bars(train_length, base)
    counted = f"{base.value} bar{'' if bars == 1 else 's'} of market calendar {calendar.name}"
    if train_length is not None and bars < min_bars:
        raise SplitError(
            f"{_train_length_text(train_length)} is {bars} {counted}, fewer than the "
            f"{min_bars} every part of the splits needs: lengthen it, or set it to null (as "
            "long as fold 0's expanding window)"
        )
    if train_length is not None and bars > room:
        first = splits.folds[0].train
        raise SplitError(
            f"{_train_length_text(train_length)} is {bars} {counted}, more than fit before "
            f"fold 0's validation: its expanding window, {first}, is {room} bars. Shorten it, "
            "or set it to null (that length), lower training.split.walk_forward_folds or "
            "validation_fraction, or ingest a longer range"
        )
    folds = tuple(
        Fold(TimeRange(rng.start if end == bars else at(end - bars), f.train.end), f.validation)
        for f, end in zip(splits.folds, train_ends, strict=True)
    )
    return Splits(folds, splits.test, splits.embargo, "rolling", f"{bars} {counted}")


def embargo_bars(embargo: timedelta, base: Timeframe) -> int:
    """The embargo in base bars on a market that closes: as many whole bars as fit in it (a
    24/7 split leaves exactly these out too: 12 h is 12 1h bars, 0 1d bars)."""
    return embargo // base.duration


def _slot_splits(
    rng: TimeRange,
    base: Timeframe,
    validation_fraction: float,
    test_fraction: float,
    embargo: timedelta,
    folds: int,
    min_bars: int,
    what: Callable[[], str] | None,
    calendar: MarketCalendar,
) -> tuple[Splits, list[int], Callable[[int], datetime]]:
    """`make_splits` on the market's bars: the same cuts as the 24/7 code, in bar positions
    (position ``i`` is the ``i``-th bar keyed in ``rng``; a part ``[a, b)`` of positions is the
    time range from bar ``a``'s key to bar ``b``'s, or to ``rng.end`` for the last). Also gives
    each fold's training end position and the position-to-time map, for rolling windows."""
    keys = bar_slots(calendar, base, rng.start, rng.end)
    n = int(keys.size)
    gap = embargo_bars(embargo, base)

    def at(i: int) -> datetime:
        return rng.end if i >= n else from_micros(int(keys[i]))

    test_start = math.floor(n - n * test_fraction)
    val_len = n * validation_fraction
    out: list[Fold] = []
    train_ends: list[int] = []
    short = n - test_start < min_bars

    def cut(j: int) -> int:  # as in the 24/7 code: validation k is [cut(k), cut(k + 1))
        return math.floor(test_start - gap - val_len * (folds - j))

    for k in range(folds):
        val_start, val_end = cut(k), cut(k + 1)
        train_end = val_start - gap
        if train_end < max(n * MIN_TRAIN_FRACTION, min_bars) or val_end - val_start < min_bars:
            short = True
            break
        out.append(Fold(TimeRange(rng.start, at(train_end)), TimeRange(at(val_start), at(val_end))))
        train_ends.append(train_end)
    if short:
        need = split_bars_needed(validation_fraction, test_fraction, gap, folds, min_bars)
        folded = f" x {folds} folds" if folds > 1 else ""
        raise SplitError(
            f"too little data for the splits: {what() if what else f'the range {rng}'}, "
            f"{n} {base.value} bars of market calendar {calendar.name}; the splits "
            f"(training.split) need at least {need} bars: validation {validation_fraction:.0%}"
            f"{folded} and test {test_fraction:.0%} of them, an embargo of {gap} bars "
            f"({length(embargo)}) between the parts, and training at least "
            f"{MIN_TRAIN_FRACTION:.0%} of them; every part at least {min_bars} bars. "
            "Ingest a longer range, or lower training.split.validation_fraction, "
            "test_fraction or embargo"
        )
    return Splits(tuple(out), TimeRange(at(test_start), rng.end), embargo), train_ends, at


def split_bars_needed(
    validation_fraction: float,
    test_fraction: float,
    gap_bars: int,
    folds: int = 1,
    min_bars: int = 2,
) -> int:
    """The least number of market bars `make_splits` cuts on a calendar that closes: the
    bound of `split_length_needed` counted in bars (three boundaries floored, each taking up
    to a bar from training); ``gap_bars``: the embargo in bars (`embargo_bars`)."""
    train_share = 1 - test_fraction - folds * validation_fraction
    need = max(
        min_bars / test_fraction,
        min_bars / validation_fraction,
        (2 * gap_bars + min_bars + 3) / train_share,
        (2 * gap_bars + 3) / (train_share - MIN_TRAIN_FRACTION),
    )
    return math.ceil(need)


def length(span: timedelta) -> str:
    """``span`` for messages: ``1 day 16 h 25 min``, ``12 h``, ``0 min``."""
    seconds = int(span.total_seconds())
    days, rest = divmod(seconds, 86_400)
    parts = [f"{days} day{'s' if days != 1 else ''}"] if days else []
    for value, unit in ((rest // 3600, "h"), (rest % 3600 // 60, "min"), (rest % 60, "s")):
        if value:
            parts.append(f"{value} {unit}")
    return " ".join(parts) or "0 min"


def split_length_needed(
    base: Timeframe,
    validation_fraction: float,
    test_fraction: float,
    embargo: timedelta,
    folds: int = 1,
    min_bars: int = 2,
) -> timedelta:
    """The least range length `make_splits` cuts with these settings, on the base-bar grid.

    Fold 0's training part is the shortest: ``T * (1 - test - folds * validation) - 2 *
    embargo``, which must reach ``min_bars`` bars and `MIN_TRAIN_FRACTION` of ``T``; the test
    and each validation part must reach ``min_bars`` bars. Three boundaries (test start, fold
    0's validation end and start) are floored to the grid, each taking up to a bar from
    training."""
    step = base.duration
    least = step * min_bars
    floors = 3 * step
    train_share = 1 - test_fraction - folds * validation_fraction
    need = max(
        least / test_fraction,
        least / validation_fraction,
        (2 * embargo + least + floors) / train_share,
        (2 * embargo + floors) / (train_share - MIN_TRAIN_FRACTION),
    )
    return -((-need) // step) * step


def stored_range(
    frame: pl.DataFrame,
    base: Timeframe,
    requested: TimeRange,
    calendar: MarketCalendar | None = None,
) -> TimeRange:
    """The part of ``requested`` the feature rows of ``frame`` cover (column
    ``bar_open_time``): the first row's bar to the last row's bar's close (one ``base`` bar
    later on a 24/7 market, the ``calendar``'s close otherwise). The splits are cut over it,
    not over ``requested``: a requested range wider than the stored data would otherwise put
    parts where there is none (and the warm-up before the first feature row would eat the
    training part)."""
    times = frame["bar_open_time"]
    first, last = times.min(), times.max()
    assert isinstance(first, datetime)
    assert isinstance(last, datetime)
    if calendar is None or calendar.always_open:
        end = last + base.duration
    else:
        (close,) = bar_closes(calendar, base, [to_micros(last)])
        end = from_micros(int(close))
    return TimeRange(max(requested.start, first), min(requested.end, end))


def series_from_frame(
    frame: pl.DataFrame,
    columns: tuple[str, ...],
    base: Timeframe,
    rng: TimeRange | None = None,
    calendar: MarketCalendar | None = None,
) -> list[MarketSeries]:
    """One `MarketSeries` per symbol and run of consecutive bars: a missing bar splits a series,
    because the environment's "next open" must be the next bar's open. Consecutive means
    neighbouring bars of the market (`slot_ordinals` one apart): on a ``calendar`` that closes,
    an FX weekend or an exchange night is no missing bar (None: 24/7, one ``base`` apart)."""
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
        if calendar is None or calendar.always_open:
            breaks = np.flatnonzero(np.diff(times.astype(np.int64)) != step_us) + 1
        else:
            keys = part["bar_open_time"].dt.epoch("us").to_numpy()
            breaks = np.flatnonzero(np.diff(slot_ordinals(calendar, base, keys)) != 1) + 1
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
