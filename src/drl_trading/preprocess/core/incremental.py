"""Incremental (one bar at a time) twins of the batch indicators in `indicators.py`.

The live service cannot recompute an indicator over the whole history on every bar, yet a policy
trained on the batch features must see the same numbers when it trades (training/serving parity).
Each indicator therefore keeps a state of O(period) and replays, operation for operation, the
arithmetic of the batch kernel it mirrors, so that a stream started on the same first bar as the
batch reproduces it bit for bit, including its NaN warm-up and its numerical accidents:

* TA-Lib 0.8 (EMA, RSI, MACD, ATR, BBANDS with an SMA middle band). Its recursions are not the
  textbook ones: the EMA step is one fused multiply-add ``fma(x - prev, k, prev)``; the ATR uses
  the two-coefficient Wilder step ``fma(beta, prev, alpha * tr)`` with ``beta = (n-1)/n`` and
  ``alpha = 1 - beta``; the RSI scales by a hoisted ``1/n`` and answers 0 (not 50) while no change
  has been seen; MACD seeds the fast EMA on the ``fast`` closes that end where the slow seed
  window ends; the Bollinger deviation comes from shifted running sums, re-anchored by a two-pass
  over the window when cancellation threatens, when a large value leaves, or every ``32 * period``
  bars. The fused multiply-add is computed exactly in integer arithmetic, because ``math.fma``
  only exists from Python 3.13 on.
* polars 2.1's rolling kernels: the Kahan-compensated sliding sum behind ``rolling_sum`` and
  ``rolling_mean`` (separate error terms for values entering and leaving, non-finite values
  counted rather than summed), and the sliding variance behind ``rolling_std``. That one is not a
  Welford add/remove, which would drift once a large value has left the window, but a two-stack
  queue of Welford states (see `_SlidingVariance`). Logarithms go through numpy so that they
  round like the batch's vectorised log (libm's differs by an ulp on a few percent of inputs, and
  the realized-volatility sum of their squares can cancel to a sign-sensitive residue).

All states are plain picklable objects (floats, ints, lists, deques), so a process can snapshot
them and resume on the next bar. TA-Lib's global settings are assumed at their defaults (no
unstable period, default compatibility), as the batch code uses them.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import Protocol

import numpy as np

from drl_trading.strategy.feature_set import (
    ATR,
    MACD,
    RSI,
    Bollinger,
    EMADistance,
    IndicatorSpec,
    LogReturns,
    RealizedVolatility,
    TimeframeFeatures,
    VolumeZScore,
)

NAN = math.nan


def _fma_exact(a: float, b: float, c: float) -> float:
    """``a * b + c`` rounded once, as C's ``fma`` (which TA-Lib's recursions are built on).

    Every finite double is an integer over a power of two, so the exact value is a ratio of
    Python integers and int/int true division rounds it correctly.
    """
    if not (math.isfinite(a) and math.isfinite(b) and math.isfinite(c)):
        return a * b + c
    na, da = a.as_integer_ratio()
    nb, db = b.as_integer_ratio()
    nc, dc = c.as_integer_ratio()
    dab = da * db
    try:
        if dab >= dc:
            return (na * nb + nc * (dab // dc)) / dab
        return (na * nb * (dc // dab) + nc) / dc
    except OverflowError:
        return a * b + c


_fma: Callable[[float, float, float], float] = getattr(math, "fma", _fma_exact)


def _np_log(x: float) -> float:
    """numpy's log, which differs from libm's by one ulp on a few percent of inputs; realized
    volatility sums their squares, and its sign-sensitive residue must match the batch's."""
    return float(np.log(x))


class IncrementalIndicator(Protocol):
    @property
    def columns(self) -> tuple[str, ...]:
        """Raw column names, in the order of ``indicator_columns(spec, bars)``."""
        ...

    def update(
        self, open_: float, high: float, low: float, close: float, volume: float
    ) -> tuple[float, ...]:
        """Values for this bar, ``math.nan`` while undefined (warm-up)."""
        ...


class _Indicator:
    __slots__ = ("_columns",)

    def __init__(self, columns: list[str]) -> None:
        self._columns = tuple(columns)

    @property
    def columns(self) -> tuple[str, ...]:
        return self._columns


class _EMA:
    """TA-Lib's EMA: SMA seed over the first ``period`` inputs, then the fused step."""

    __slots__ = ("_k", "_n", "_period", "_sum", "value")

    def __init__(self, period: int) -> None:
        self._period = period
        self._k = 2.0 / (period + 1)
        self._n = 0
        self._sum = 0.0
        self.value = NAN

    def update(self, x: float) -> float:
        if self._n >= self._period:
            self.value = _fma(x - self.value, self._k, self.value)
            return self.value
        self._n += 1
        self._sum += x
        if self._n == self._period:
            self.value = self._sum / self._period
        return self.value


class _KahanWindowSum:
    """polars' sliding ``SumWindow``: compensated adds and removes with separate error terms;
    non-finite values are counted (NaN poisons the window only while it is inside it)."""

    __slots__ = ("_err_add", "_err_sub", "_neg_inf", "_non_finite", "_pos_inf", "_sum")

    def __init__(self) -> None:
        self._sum = 0.0
        self._err_add = 0.0
        self._err_sub = 0.0
        self._non_finite = 0
        self._pos_inf = 0
        self._neg_inf = 0

    def add(self, value: float) -> None:
        if math.isfinite(value):
            y = value - self._err_add
            new_sum = self._sum + y
            self._err_add = (new_sum - self._sum) - y
            self._sum = new_sum
        else:
            self._non_finite += 1
            self._pos_inf += value > 0.0
            self._neg_inf += value < 0.0

    def sub(self, value: float) -> None:
        if math.isfinite(value):
            y = (0.0 - value) - self._err_sub
            new_sum = self._sum + y
            self._err_sub = (new_sum - self._sum) - y
            self._sum = new_sum
        else:
            self._non_finite -= 1
            self._pos_inf -= value > 0.0
            self._neg_inf -= value < 0.0

    def get(self) -> float:
        if self._non_finite == 0:
            return self._sum
        if self._non_finite == self._pos_inf:
            return math.inf
        if self._non_finite == self._neg_inf:
            return -math.inf
        return NAN


class _RollingSum:
    """A fixed window of the last ``window`` values and their polars-exact sum."""

    __slots__ = ("_sum", "_window", "values")

    def __init__(self, window: int) -> None:
        self._window = window
        self.values: deque[float] = deque(maxlen=window)
        self._sum = _KahanWindowSum()

    def push(self, value: float) -> float:
        """The window sum after ``value`` entered, NaN until the window is full."""
        if len(self.values) == self._window:
            self._sum.sub(self.values[0])
        self.values.append(value)
        self._sum.add(value)
        return self._sum.get() if len(self.values) == self._window else NAN


class IncrementalLogReturns(_Indicator):
    __slots__ = ("_closes", "_horizons")

    def __init__(self, spec: LogReturns) -> None:
        super().__init__(spec.columns())
        self._horizons = spec.horizons
        self._closes: deque[float] = deque(maxlen=max(spec.horizons) + 1)

    def update(
        self, open_: float, high: float, low: float, close: float, volume: float
    ) -> tuple[float, ...]:
        closes = self._closes
        closes.append(close)
        n = len(closes)
        return tuple(_np_log(close / closes[-1 - h]) if h < n else NAN for h in self._horizons)


class IncrementalRSI(_Indicator):
    """TA-Lib 0.8's RSI, mapped to [-1, 1] like the batch column. Gains and losses are scaled by
    a hoisted ``1/period``; with no change at all since the seed (a flat market) TA-Lib answers
    0, i.e. -1 here, not the neutral 0."""

    __slots__ = ("_gain", "_inv", "_loss", "_n", "_period", "_prev")

    def __init__(self, spec: RSI) -> None:
        super().__init__(spec.columns())
        self._period = spec.period
        self._inv = 1.0 / spec.period
        self._n = 0
        self._prev = NAN
        self._gain = 0.0
        self._loss = 0.0

    def update(
        self, open_: float, high: float, low: float, close: float, volume: float
    ) -> tuple[float, ...]:
        n, p = self._n, self._period
        self._n = n + 1
        delta = close - self._prev
        self._prev = close
        if n == 0:
            return (NAN,)
        gain_delta = delta if delta > 0.0 else 0.0
        if n > p:
            self._gain *= float(p - 1)
            self._loss *= float(p - 1)
        self._gain += gain_delta
        self._loss += gain_delta - delta
        if n < p:
            return (NAN,)
        self._gain *= self._inv
        self._loss *= self._inv
        total = self._gain + self._loss
        rsi = 100.0 * (self._gain / total) if total > 0.0 else 0.0
        return (rsi / 50.0 - 1.0,)


class IncrementalMACD(_Indicator):
    """TA-Lib's MACD: the fast EMA is seeded on the ``fast`` closes that end on the bar where the
    slow SMA seed ends, so both lines start together; the signal EMA is seeded with the SMA of the
    first ``signal`` MACD values, and nothing is output before that seed exists."""

    __slots__ = (
        "_fast",
        "_fast_ema",
        "_fast_sum",
        "_k_fast",
        "_k_sig",
        "_k_slow",
        "_n",
        "_sig_sum",
        "_signal",
        "_signal_ema",
        "_slow",
        "_slow_ema",
        "_slow_sum",
    )

    def __init__(self, spec: MACD) -> None:
        super().__init__(spec.columns())
        self._fast, self._slow, self._signal = spec.fast, spec.slow, spec.signal
        self._k_fast = 2.0 / (spec.fast + 1)
        self._k_slow = 2.0 / (spec.slow + 1)
        self._k_sig = 2.0 / (spec.signal + 1)
        self._n = 0
        self._slow_sum = 0.0
        self._fast_sum = 0.0
        self._sig_sum = 0.0
        self._fast_ema = NAN
        self._slow_ema = NAN
        self._signal_ema = NAN

    def update(
        self, open_: float, high: float, low: float, close: float, volume: float
    ) -> tuple[float, ...]:
        n = self._n
        self._n = n + 1
        slow, sig = self._slow, self._signal
        if n < slow:
            self._slow_sum += close
            if n >= slow - self._fast:
                self._fast_sum += close
            if n < slow - 1:
                return (NAN, NAN, NAN)
            self._slow_ema = self._slow_sum / slow
            self._fast_ema = self._fast_sum / self._fast
        else:
            self._fast_ema = _fma(close - self._fast_ema, self._k_fast, self._fast_ema)
            self._slow_ema = _fma(close - self._slow_ema, self._k_slow, self._slow_ema)
        line = self._fast_ema - self._slow_ema
        first_out = slow + sig - 2
        if n < first_out:
            self._sig_sum += line
            return (NAN, NAN, NAN)
        if n == first_out:
            self._sig_sum += line
            self._signal_ema = self._sig_sum / sig
        elif sig == 1:
            self._signal_ema = line
        else:
            self._signal_ema = _fma(line - self._signal_ema, self._k_sig, self._signal_ema)
        signal = self._signal_ema
        return (line / close, signal / close, (line - signal) / close)


class IncrementalBollinger(_Indicator):
    """TA-Lib 0.8's BBANDS (SMA middle band): the running SMA sum, and the variance from running
    sums of deviations from a shift that is re-anchored on the window mean (a fresh two-pass over
    the window, O(period)) when the variance has become small against its sums, when a large value
    leaves, or every ``32 * period`` bars; %B and bandwidth then as in `indicators.bollinger`."""

    __slots__ = (
        "_inv",
        "_k",
        "_ma_total",
        "_period",
        "_shift",
        "_since_reseed",
        "_total1",
        "_total2",
        "_window",
    )

    def __init__(self, spec: Bollinger) -> None:
        super().__init__(spec.columns())
        self._period = spec.period
        self._k = float(spec.num_std)
        self._inv = 1.0 / spec.period
        self._window: deque[float] = deque(maxlen=spec.period)
        self._shift = NAN
        self._ma_total = 0.0
        self._total1 = 0.0
        self._total2 = 0.0
        self._since_reseed = 32 * spec.period

    def update(
        self, open_: float, high: float, low: float, close: float, volume: float
    ) -> tuple[float, ...]:
        window, p, inv = self._window, self._period, self._inv
        if not window:
            self._shift = close
        window.append(close)
        self._ma_total += close
        dev = close - self._shift
        self._total1 += dev
        self._total2 += dev * dev
        if len(window) < p:
            return (NAN, NAN)

        mean1 = self._total1 * inv
        variance = self._total2 * inv - mean1 * mean1
        middle = self._ma_total / p
        trailing = window[0]
        self._ma_total -= trailing
        dev = trailing - self._shift
        self._total1 -= dev
        sq = dev * dev
        self._total2 -= sq
        self._since_reseed -= 1
        if (
            variance < 0.000001 * (self._total2 * inv)
            or sq > 1000000.0 * self._total2
            or self._since_reseed <= 0
        ):
            variance = self._reseed()

        stddev = math.sqrt(variance) if variance != 0.0 else 0.0
        half = stddev * self._k
        upper = middle + half
        lower = middle - half
        width = upper - lower
        pct_b = (close - lower) / width if width > 0 else 0.5
        return (pct_b, width / middle)

    def _reseed(self) -> float:
        window, inv = self._window, self._inv
        self._since_reseed = 32 * self._period
        total = 0.0
        for x in window:
            total += x
        shift = total * inv
        total1 = 0.0
        total2 = 0.0
        for x in window:
            dev = x - shift
            total1 += dev
            total2 += dev * dev
        mean1 = total1 * inv
        variance = total2 * inv - mean1 * mean1
        if variance < 0.000000000001 * (total2 * inv):
            variance = 0.0
        dev = window[0] - shift
        self._shift = shift
        self._total1 = total1 - dev
        self._total2 = total2 - dev * dev
        return variance


class IncrementalATR(_Indicator):
    """TA-Lib 0.8's ATR: the first bar has no true range; the SMA of the next ``period`` true
    ranges seeds the two-coefficient Wilder recursion. Divided by the close like the batch."""

    __slots__ = ("_alpha", "_atr", "_beta", "_n", "_period", "_prev_close", "_tr_sum")

    def __init__(self, spec: ATR) -> None:
        super().__init__(spec.columns())
        p = spec.period
        self._period = p
        self._beta = float(p - 1) / float(p)
        self._alpha = 1.0 - self._beta
        self._n = 0
        self._prev_close = NAN
        self._tr_sum = 0.0
        self._atr = NAN

    def update(
        self, open_: float, high: float, low: float, close: float, volume: float
    ) -> tuple[float, ...]:
        n = self._n
        self._n = n + 1
        prev_close = self._prev_close
        self._prev_close = close
        if n == 0:
            return (NAN,)
        greatest = high - low
        val2 = abs(prev_close - high)
        if val2 > greatest:
            greatest = val2
        val3 = abs(prev_close - low)
        if val3 > greatest:
            greatest = val3
        p = self._period
        if n < p:
            self._tr_sum += greatest
            return (NAN,)
        if n == p:
            self._tr_sum += greatest
            self._atr = self._tr_sum / p
        else:
            self._atr = _fma(self._beta, self._atr, self._alpha * greatest)
        return (self._atr / close,)


class IncrementalEMADistance(_Indicator):
    __slots__ = ("_ema",)

    def __init__(self, spec: EMADistance) -> None:
        super().__init__(spec.columns())
        self._ema = _EMA(spec.period)

    def update(
        self, open_: float, high: float, low: float, close: float, volume: float
    ) -> tuple[float, ...]:
        return (close / self._ema.update(close) - 1.0,)


class IncrementalRealizedVolatility(_Indicator):
    """``sqrt`` of the polars-exact sliding sum of squared one-bar log returns. The first bar's
    return is NaN, so, as in the batch, the first window that holds it is NaN too."""

    __slots__ = ("_prev_close", "_sum")

    def __init__(self, spec: RealizedVolatility) -> None:
        super().__init__(spec.columns())
        self._prev_close = NAN
        self._sum = _RollingSum(spec.window)

    def update(
        self, open_: float, high: float, low: float, close: float, volume: float
    ) -> tuple[float, ...]:
        r = _np_log(close / self._prev_close) if self._prev_close == self._prev_close else NAN
        self._prev_close = close
        total = self._sum.push(r * r)
        # a negative residue of the running sum over a flat stretch is zero volatility (the
        # batch clamps the same way)
        return (math.sqrt(total) if total >= 0.0 else 0.0 if total == total else NAN,)


class _SlidingVariance:
    """polars' sliding population variance, a two-stack queue of Welford states ``(weight, mean,
    sum of squared deviations)``.

    ``back`` collects the values that entered since the last rebuild into one running state.
    When the oldest value has to leave and ``front`` is empty, every value of ``back`` moves to
    ``front`` as suffix states, built by inserting from the newest to the oldest, so that popping
    the oldest value is dropping one state. A window's variance is the running state combined
    with the oldest surviving suffix. Non-finite values count as 0 and make the result NaN while
    they are inside the window, as in polars.
    """

    __slots__ = ("_back", "_back_state", "_front", "_n_non_finite", "_non_finite", "_window")

    def __init__(self, window: int) -> None:
        self._window = window
        self._back: list[float] = []
        self._back_state = (0.0, 0.0, 0.0)
        self._front: list[tuple[float, float, float]] = []
        self._non_finite: deque[bool] = deque(maxlen=window)
        self._n_non_finite = 0

    def push(self, value: float) -> float:
        """The variance after ``value`` entered, NaN until the window is full."""
        full = len(self._non_finite) == self._window
        if full:
            if not self._front:
                state = (0.0, 0.0, 0.0)
                for x in reversed(self._back):
                    state = _welford_insert(state, x)
                    self._front.append(state)
                self._back = []
                self._back_state = (0.0, 0.0, 0.0)
            self._front.pop()
            self._n_non_finite -= self._non_finite[0]
        finite = math.isfinite(value)
        self._non_finite.append(not finite)
        self._n_non_finite += not finite
        x = value if finite else 0.0
        self._back.append(x)
        self._back_state = _welford_insert(self._back_state, x)
        if len(self._non_finite) < self._window:
            return NAN
        state = self._back_state
        if self._front:
            state = _welford_combine(state, self._front[-1])
        weight, _, dp = state
        if self._n_non_finite:
            return NAN
        var = dp / weight
        return 0.0 if var < 0.0 else var


def _welford_insert(state: tuple[float, float, float], x: float) -> tuple[float, float, float]:
    weight, mean, dp = state
    new_weight = weight + 1.0
    delta = x - mean
    new_mean = mean + delta / new_weight
    return new_weight, new_mean, dp + (x - new_mean) * delta


def _welford_combine(
    state: tuple[float, float, float], other: tuple[float, float, float]
) -> tuple[float, float, float]:
    weight, mean, dp = state
    o_weight, o_mean, o_dp = other
    if o_weight == 0.0:
        return state
    if weight == 0.0:
        return other
    new_weight = weight + o_weight
    delta = o_mean - mean
    new_mean = mean + delta * (o_weight / new_weight)
    return new_weight, new_mean, dp + (o_dp + o_weight * (o_mean - new_mean) * delta)


class IncrementalVolumeZScore(_Indicator):
    """polars' rolling mean and population std, then the batch's zero-spread rule."""

    __slots__ = ("_n", "_sum", "_var")

    def __init__(self, spec: VolumeZScore) -> None:
        super().__init__(spec.columns())
        self._n = float(spec.window)
        self._sum = _RollingSum(spec.window)
        self._var = _SlidingVariance(spec.window)

    def update(
        self, open_: float, high: float, low: float, close: float, volume: float
    ) -> tuple[float, ...]:
        total = self._sum.push(volume)
        var = self._var.push(volume)
        if var != var:
            return (NAN,)
        mean = total / self._n
        std = math.sqrt(var)
        if std > 1e-12 * max(abs(mean), 1.0):
            return ((volume - mean) / std,)
        return (0.0,)


def incremental_for(spec: IndicatorSpec) -> IncrementalIndicator:
    """A fresh incremental state for one indicator spec."""
    match spec:
        case LogReturns():
            return IncrementalLogReturns(spec)
        case RSI():
            return IncrementalRSI(spec)
        case MACD():
            return IncrementalMACD(spec)
        case Bollinger():
            return IncrementalBollinger(spec)
        case ATR():
            return IncrementalATR(spec)
        case EMADistance():
            return IncrementalEMADistance(spec)
        case RealizedVolatility():
            return IncrementalRealizedVolatility(spec)
        case VolumeZScore():
            return IncrementalVolumeZScore(spec)
    raise TypeError(f"unknown indicator spec {spec!r}")  # pragma: no cover - exhaustive above


class IncrementalFeatureSet:
    """Every indicator of one timeframe, with the column names `timeframe_features` gives them."""

    def __init__(self, tf_spec: TimeframeFeatures) -> None:
        self.timeframe = tf_spec.timeframe
        self.indicators: list[IncrementalIndicator] = [
            incremental_for(spec) for spec in tf_spec.indicators
        ]
        suffix = tf_spec.timeframe.value
        self.columns: tuple[str, ...] = tuple(
            f"{name}__{suffix}" for ind in self.indicators for name in ind.columns
        )

    def update(
        self, open_: float, high: float, low: float, close: float, volume: float
    ) -> tuple[float, ...]:
        out: list[float] = []
        for ind in self.indicators:
            out.extend(ind.update(open_, high, low, close, volume))
        return tuple(out)
