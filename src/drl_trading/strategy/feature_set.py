"""Declarative feature sets: which indicators, with which parameters, on which timeframes.

A feature set is data, not code, so that its definition can be hashed into a stable version that
travels with the stored features and, later, with every trained model: a model can then refuse
features computed by a different definition instead of silently predicting on them.

Every feature is scale-free (a return, a ratio or a bounded oscillator), so one policy can trade
symbols whose prices differ by orders of magnitude.
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from drl_trading.common.bar_windows import history_start
from drl_trading.common.calendar import MarketCalendar
from drl_trading.common.domain import Timeframe, utc

_FROZEN = ConfigDict(frozen=True, extra="forbid")

SEED_WEIGHT_TOLERANCE = 1e-12
"""Largest weight an exponentially smoothed indicator's seed may keep in a settled value.

An EMA with smoothing ``a`` weighs its seed (the SMA it starts from) by ``(1 - a)^k`` after ``k``
further bars, so its value depends on where the history started until that weight is negligible.
Below 1e-12, two computations started at different bars agree to about 1e-12 of the indicator's
scale, which keeps the 1e-9 training/serving parity (served features equal to the features a model
was trained on, whatever either history's start) with three orders of magnitude to spare. Each
indicator's `warmup_bars` is derived from this and its own recursion; see docs/data-path.md.
"""


def settle_bars(alpha: float, tolerance: float = SEED_WEIGHT_TOLERANCE) -> int:
    """Bars after its seed for an exponential smoothing with weight ``alpha`` on the newest value
    (EMA: ``2 / (period + 1)``; Wilder: ``1 / period``) until the seed weighs less than
    ``tolerance``: the least ``n`` with ``(1 - alpha)^n <= tolerance``."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"smoothing weight must be in (0, 1), got {alpha}")
    return math.ceil(math.log(tolerance) / math.log1p(-alpha))


def _ema_alpha(period: int) -> float:
    return 2.0 / (period + 1)


class LogReturns(BaseModel):
    """``ln(close_t / close_{t-h})`` for each horizon ``h`` in bars."""

    model_config = _FROZEN
    kind: Literal["log_return"] = "log_return"
    horizons: tuple[int, ...] = (1, 4, 16)

    @field_validator("horizons")
    @classmethod
    def _positive(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v or any(h < 1 for h in v):
            raise ValueError("horizons must be positive bar counts")
        return tuple(sorted(set(v)))

    def columns(self) -> list[str]:
        return [f"logret_{h}" for h in self.horizons]

    def warmup_bars(self) -> int:
        """Bars up to and including the first value; exact from then on (no memory)."""
        return max(self.horizons) + 1


class RSI(BaseModel):
    """Wilder's RSI scaled to [-1, 1] (``rsi/50 - 1``) so that it is centred like the others."""

    model_config = _FROZEN
    kind: Literal["rsi"] = "rsi"
    period: int = Field(14, ge=2)

    def columns(self) -> list[str]:
        return [f"rsi_{self.period}"]

    def warmup_bars(self) -> int:
        """The first value needs ``period + 1`` closes (``period`` changes averaged as the seed);
        Wilder's smoothing (``1/period``) then forgets the seed after `settle_bars` more."""
        return self.period + 1 + settle_bars(1.0 / self.period)


class MACD(BaseModel):
    """MACD line, signal and histogram, divided by the close (fractions of price)."""

    model_config = _FROZEN
    kind: Literal["macd"] = "macd"
    fast: int = Field(12, ge=2)
    slow: int = Field(26, ge=3)
    signal: int = Field(9, ge=2)

    @model_validator(mode="after")
    def _order(self) -> MACD:
        if self.fast >= self.slow:
            raise ValueError(f"macd fast ({self.fast}) must be below slow ({self.slow})")
        return self

    def columns(self) -> list[str]:
        p = f"{self.fast}_{self.slow}_{self.signal}"
        return [f"macd_{p}", f"macd_signal_{p}", f"macd_hist_{p}"]

    def warmup_bars(self) -> int:
        """Both line EMAs are seeded on the bar the slow SMA seed (``slow`` closes) ends, and the
        slow one forgets its seed last; the signal EMA of the line then needs its own seed
        (``signal`` line values) and settling on top: the chained EMAs add up."""
        line = self.slow + max(
            settle_bars(_ema_alpha(self.slow)), settle_bars(_ema_alpha(self.fast))
        )
        return line + self.signal - 1 + settle_bars(_ema_alpha(self.signal))


class Bollinger(BaseModel):
    """%B (position of the close inside the bands, 0.5 = middle) and bandwidth (width / middle)."""

    model_config = _FROZEN
    kind: Literal["bollinger"] = "bollinger"
    period: int = Field(20, ge=2)
    num_std: float = Field(2.0, gt=0)

    def columns(self) -> list[str]:
        p = f"{self.period}_{_num(self.num_std)}"
        return [f"bb_pctb_{p}", f"bb_width_{p}"]

    def warmup_bars(self) -> int:
        """One full window; exact from then on."""
        return self.period


class ATR(BaseModel):
    """Wilder's average true range divided by the close."""

    model_config = _FROZEN
    kind: Literal["atr"] = "atr"
    period: int = Field(14, ge=2)

    def columns(self) -> list[str]:
        return [f"atr_norm_{self.period}"]

    def warmup_bars(self) -> int:
        """The first true range needs a previous close, the seed is the SMA of ``period`` true
        ranges, then Wilder's smoothing (``1/period``) forgets it after `settle_bars` more."""
        return self.period + 1 + settle_bars(1.0 / self.period)


class EMADistance(BaseModel):
    """``close / EMA(period) - 1``."""

    model_config = _FROZEN
    kind: Literal["ema_distance"] = "ema_distance"
    period: int = Field(50, ge=2)

    def columns(self) -> list[str]:
        return [f"ema_dist_{self.period}"]

    def warmup_bars(self) -> int:
        """The SMA seed of ``period`` closes, then `settle_bars` of the EMA (``2/(period+1)``)."""
        return self.period + settle_bars(_ema_alpha(self.period))


class RealizedVolatility(BaseModel):
    """``sqrt(sum of squared one-bar log returns over the window)``: volatility over the window."""

    model_config = _FROZEN
    kind: Literal["realized_vol"] = "realized_vol"
    window: int = Field(20, ge=2)

    def columns(self) -> list[str]:
        return [f"rv_{self.window}"]

    def warmup_bars(self) -> int:
        """``window`` one-bar returns, the first of which needs a previous close; exact."""
        return self.window + 1


class VolumeZScore(BaseModel):
    """``(volume - mean) / std`` over the window (population std); 0 when the window is constant."""

    model_config = _FROZEN
    kind: Literal["volume_zscore"] = "volume_zscore"
    window: int = Field(20, ge=2)

    def columns(self) -> list[str]:
        return [f"vol_z_{self.window}"]

    def warmup_bars(self) -> int:
        """One full window; exact from then on."""
        return self.window


IndicatorSpec = Annotated[
    LogReturns | RSI | MACD | Bollinger | ATR | EMADistance | RealizedVolatility | VolumeZScore,
    Field(discriminator="kind"),
]

TIME_ENCODING_COLUMNS = ("tod_sin", "tod_cos", "dow_sin", "dow_cos")


class TimeframeFeatures(BaseModel):
    model_config = _FROZEN
    timeframe: Timeframe
    indicators: tuple[IndicatorSpec, ...]

    def columns(self) -> list[str]:
        return [f"{c}__{self.timeframe.value}" for ind in self.indicators for c in ind.columns()]

    def warmup_bars(self) -> int:
        """Bars of this timeframe until every indicator's value is settled: the largest
        indicator's `warmup_bars` (each is the count up to and including its first settled
        value, from the first bar of a series)."""
        return max((ind.warmup_bars() for ind in self.indicators), default=0)

    def lookback(self) -> timedelta:
        """History before a base bar's open for this timeframe's values there to be settled:
        the warm-up bars, plus one for the window a read starts inside (partial, left out) and
        one for the window still open at the base bar (its features come from closed bars)."""
        return self.timeframe.duration * (self.warmup_bars() + 2)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x).replace(".", "p")


class FeatureSetSpec(BaseModel):
    """A named feature set. Rows are produced on ``base_timeframe``; every other timeframe's
    features are aligned onto it from bars that had closed by the base bar's close."""

    model_config = _FROZEN
    name: str = Field("core", pattern=r"^[a-z][a-z0-9_]{0,40}$")
    base_timeframe: Timeframe = Timeframe.M5
    timeframes: tuple[TimeframeFeatures, ...]
    time_encodings: bool = True

    @model_validator(mode="after")
    def _check(self) -> FeatureSetSpec:
        tfs = [t.timeframe for t in self.timeframes]
        if len(set(tfs)) != len(tfs):
            raise ValueError("each timeframe may appear once in a feature set")
        for tf in tfs:
            if tf.minutes < self.base_timeframe.minutes:
                raise ValueError(
                    f"timeframe {tf.value} is finer than the base timeframe "
                    f"{self.base_timeframe.value}"
                )
            if tf.minutes % self.base_timeframe.minutes:
                raise ValueError(
                    f"timeframe {tf.value} is not a multiple of base {self.base_timeframe.value}"
                )
        if not self.columns:
            raise ValueError("a feature set needs at least one feature")
        return self

    @cached_property
    def columns(self) -> tuple[str, ...]:
        cols = [c for t in self.timeframes for c in t.columns()]
        if self.time_encodings:
            cols.extend(TIME_ENCODING_COLUMNS)
        return tuple(cols)

    @cached_property
    def version(self) -> str:
        """First 12 hex digits of the SHA-256 of the canonical definition."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    @property
    def view_name(self) -> str:
        return f"{self.name}__{self.version}"

    @property
    def all_timeframes(self) -> list[Timeframe]:
        tfs = {self.base_timeframe, *(t.timeframe for t in self.timeframes)}
        return sorted(tfs, key=lambda t: t.minutes)

    def settle_time(self) -> timedelta:
        """History a base row needs before it for every value to be settled (the largest
        `TimeframeFeatures.lookback`); a row with less is computed from the first bar read and
        matches another computation only if that started on the same bar."""
        return max((t.lookback() for t in self.timeframes), default=timedelta(0))

    def lookback(self) -> timedelta:
        """History before a requested start for the first rows to be settled (every timeframe's
        `TimeframeFeatures.lookback`), rounded up to whole days: what ingest fetches before a
        requested start, what preprocessing reads before it, and what the online catch-up feeds
        before a session's first bar, so that both paths give the same values to 1e-9 whatever
        their histories' starts (`SEED_WEIGHT_TOLERANCE`)."""
        minutes = math.ceil(self.settle_time().total_seconds() / 60)
        day = 1440
        return timedelta(minutes=math.ceil(minutes / day) * day)

    def history_start(self, calendar: MarketCalendar, start: datetime) -> datetime:
        """Where history must begin for the rows from ``start`` on to be settled, on the
        symbol's market calendar: ``start - lookback()`` on a 24/7 market (unchanged figures);
        elsewhere each timeframe's warm-up bars plus two (as in `TimeframeFeatures.lookback`)
        counted in the market's own bars (`history_start`: 200 XNYS daily bars reach about 290
        calendar days back, an FX weekend adds no bar), floored to the UTC day."""
        start = utc(start)
        if calendar.always_open:
            return start - self.lookback()
        earliest = start
        for tf in self.timeframes:
            at = history_start(calendar, tf.timeframe, start, tf.warmup_bars() + 2)
            earliest = min(earliest, at)
        return datetime(earliest.year, earliest.month, earliest.day, tzinfo=UTC)


def default_feature_set() -> FeatureSetSpec:
    """The framework's example feature set on 5m bars with 15m, 1h, 4h and 1d context."""
    full: tuple[IndicatorSpec, ...] = (
        LogReturns(horizons=(1, 4, 16)),
        RSI(period=14),
        MACD(),
        Bollinger(),
        ATR(period=14),
        EMADistance(period=50),
        RealizedVolatility(window=20),
        VolumeZScore(window=20),
    )
    return FeatureSetSpec(
        name="core",
        base_timeframe=Timeframe.M5,
        timeframes=(
            TimeframeFeatures(timeframe=Timeframe.M5, indicators=full),
            TimeframeFeatures(timeframe=Timeframe.M15, indicators=full),
            TimeframeFeatures(timeframe=Timeframe.H1, indicators=full),
            TimeframeFeatures(
                timeframe=Timeframe.H4,
                indicators=(LogReturns(horizons=(1, 6)), RSI(period=14), ATR(period=14)),
            ),
            TimeframeFeatures(
                timeframe=Timeframe.D1,
                indicators=(LogReturns(horizons=(1,)), RealizedVolatility(window=5)),
            ),
        ),
        time_encodings=True,
    )
