"""`simulate` loops only over the steps whose target changes and fills the rest forward in numpy;
this checks it bit for bit against the plainest loop over every step with the paper broker's
arithmetic (`drl_trading.common.costs`), including dust orders, tiny accounts and bankruptcy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drl_trading.common.costs import (
    TARGET_TOLERANCE,
    CostModel,
    fee,
    market_fill_price,
    order_units,
    settle_units,
)
from drl_trading.evaluation.trace import SimulationTrace, simulate

T0 = np.datetime64("2024-01-01T00:00", "us")
MINUTE = np.timedelta64(60, "s")
FIELDS = ("equity", "position", "units", "cost", "fees")


def _reference(
    open_: list[float], close: list[float], targets: list[float], costs: CostModel, eq0: float
) -> dict[str, np.ndarray]:
    """Step by step: trade when the target moved, mark at the close, stop at the first equity
    <= 0 and stay flat at zero from there (the module docstring of `trace`)."""
    n = len(targets)
    out = {name: np.zeros(n + 1 if name == "equity" else n) for name in FIELDS}
    out["equity"][0] = eq0
    cash, units, last = float(eq0), 0.0, 0.0
    for i in range(n):
        paid = cost = 0.0
        if abs(targets[i] - last) > TARGET_TOLERANCE:
            price = close[i]
            dq = order_units(targets[i], cash + units * price, price, units)
            if dq != 0.0 and abs(dq) * price >= costs.min_order_notional:
                fill = market_fill_price(open_[i + 1], dq > 0, costs.slippage_bps)
                paid = fee(abs(dq) * fill, costs.fee_bps)
                cash -= dq * fill + paid
                units = settle_units(units, dq)
                cost = paid + abs(dq) * abs(fill - open_[i + 1])
        last = targets[i]
        out["position"][i], out["units"][i] = targets[i], units
        out["cost"][i], out["fees"][i] = cost, paid
        equity = cash + units * close[i + 1]
        if equity <= 0.0:
            break  # equity[i + 1] and everything after it stay 0
        out["equity"][i + 1] = equity
    return out


def _run(
    log_moves: list[float], gaps: list[float], targets: list[float], costs: CostModel, eq0: float
) -> tuple[SimulationTrace, dict[str, np.ndarray]]:
    close = 100.0 * np.exp(np.cumsum(log_moves))
    open_ = close * np.exp(gaps)
    times = T0 + np.arange(len(close)) * MINUTE
    trace = simulate("X", times, open_, close, np.array(targets), costs, initial_equity=eq0)
    return trace, _reference(open_.tolist(), close.tolist(), targets, costs, eq0)


def _assert_bitwise(trace: SimulationTrace, ref: dict[str, np.ndarray]) -> None:
    for name in FIELDS:
        got = getattr(trace, name)
        assert got.dtype == np.float64
        assert got.tobytes() == ref[name].tobytes(), (name, got, ref[name])


# targets repeat often (held positions), and two differ by less than the tolerance
TARGETS = st.sampled_from([-1.0, -0.5, 0.0, 0.0, 0.25, 0.25 + 1e-10, 1.0, 1.0])


@st.composite
def _cases(
    draw: st.DrawFn,
) -> tuple[list[float], list[float], list[float], CostModel, float]:
    n = draw(st.integers(0, 40))
    move = st.floats(-1.2, 1.2, allow_nan=False)  # up to 3.3x a bar: shorts go bankrupt
    log_moves = draw(st.lists(move, min_size=n + 1, max_size=n + 1))
    gaps = draw(st.lists(st.floats(-0.3, 0.3), min_size=n + 1, max_size=n + 1))
    targets = draw(st.lists(TARGETS, min_size=n, max_size=n))
    costs = CostModel(
        fee_bps=draw(st.sampled_from([0.0, 5.0, 1000.0])),
        slippage_bps=draw(st.sampled_from([0.0, 2.0, 50.0])),
        min_order_notional=draw(st.sampled_from([0.0, 0.3, 50.0])),
    )
    eq0 = draw(st.sampled_from([1.0, 1000.0, 1e-30]))
    return log_moves, gaps, targets, costs, eq0


@settings(max_examples=300, deadline=None)
@given(_cases())
def test_simulate_equals_a_plain_loop_bit_for_bit(
    case: tuple[list[float], list[float], list[float], CostModel, float],
) -> None:
    _assert_bitwise(*_run(*case))


def test_the_reference_cases_include_bankruptcy_and_dust() -> None:
    # a full short (filled at the open of bar 2) held through a bar that triples the price:
    # bankrupt at the close of bar 3, and the long decided there is never taken
    moves = [0.0, 0.0, 0.0, 1.1, 0.0]
    trace, ref = _run(moves, [0.0] * 5, [0.0, -1.0, -1.0, 1.0], CostModel(5.0, 2.0), 1.0)
    assert trace.equity[2] > 0.0
    assert (trace.equity[3:] == 0.0).all()
    assert trace.position[3] == 0.0
    assert trace.units[3] == 0.0
    _assert_bitwise(trace, ref)
    # 0.25 of 1.0 is 0.25 of notional, under a dust threshold of 0.3: skipped, and then
    # counted as reached, so the repeated target does not trade either
    trace, ref = _run([0.0] * 4, [0.0] * 4, [0.25, 0.25, 1.0], CostModel(5.0, 2.0, 0.3), 1.0)
    assert trace.units[0] == trace.units[1] == 0.0
    assert trace.units[2] > 0.0
    assert trace.cost[0] == 0.0
    _assert_bitwise(trace, ref)


@pytest.mark.parametrize(
    ("targets", "prices", "message"),
    [
        ([0.0, float("nan"), 0.0], [1.0] * 4, "positions must be finite"),
        ([0.0, float("inf"), 0.0], [1.0] * 4, "positions must be finite"),
        ([0.0, 0.0, -1.0000001], [1.0] * 4, "within \\[-1, 1\\]"),
        ([0.0, 0.0, 0.0], [1.0, float("nan"), 1.0, 1.0], "prices must be positive"),
        ([0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 1.0], "prices must be positive"),
    ],
)
def test_invalid_inputs_are_refused(
    targets: list[float], prices: list[float], message: str
) -> None:
    times = T0 + np.arange(4) * MINUTE
    ok = np.ones(4)
    with pytest.raises(ValueError, match=message):
        simulate("X", times, ok, np.array(prices), np.array(targets), CostModel())
    with pytest.raises(ValueError, match=message):
        simulate("X", times, np.array(prices), ok, np.array(targets), CostModel())
