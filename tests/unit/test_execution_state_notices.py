"""The symbol states a commit's notification carries (`state_notices`): a listener that saw every
commit knows each symbol's state exactly as the store would read it; anything it cannot be sure
of (a missed commit, a notification without states) it forgets rather than serve stale."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from drl_trading.common.domain import Symbol, parse_time
from drl_trading.execution.adapter import state_notices
from drl_trading.execution.adapter.state_notices import ListenedStates
from drl_trading.execution.core.records import (
    Checkpoint,
    Mark,
    PortfolioSnapshot,
    Position,
    RiskState,
    SymbolState,
    TradingState,
)

T0 = parse_time("2024-01-01T00:00")
SYMBOLS = [Symbol(s) for s in ("AAAUSDT", "BBBUSDT", "CCCUSDT")]
EMPTY = SymbolState(None, 0.0, None, None)
RISK = RiskState(TradingState.ACTIVE, "", T0, 1.0, 1.0, 1.0)

prices = st.floats(min_value=1e-6, max_value=1e9, allow_nan=False, allow_infinity=False)
signed = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False)
times = st.integers(min_value=0, max_value=10**7).map(lambda s: T0 + timedelta(microseconds=s))
marks = st.builds(Mark, prices, times)
positions = st.builds(Position, signed, prices, signed, prices)


def parts(values: st.SearchStrategy[object]) -> st.SearchStrategy[dict[Symbol, object]]:
    return st.dictionaries(st.sampled_from(SYMBOLS), values, max_size=len(SYMBOLS))


checkpoints = st.builds(
    lambda m, t, e, p: Checkpoint(
        portfolio=PortfolioSnapshot(cash=1.0, positions=p), risk=RISK, marks=m, targets=t, entries=e
    ),
    parts(marks),
    parts(signed),
    parts(marks),
    parts(positions),
)


def stored(cp: Checkpoint, symbol: Symbol) -> SymbolState:
    """What `ExecutionStore.symbol_state` reads for ``symbol`` after ``cp`` was committed."""
    return state_notices.symbol_states(cp).get(symbol, EMPTY)


@settings(max_examples=60, deadline=None)
@given(st.lists(checkpoints, min_size=1, max_size=6))
def test_a_listener_of_every_commit_knows_each_changed_symbol_exactly(
    commits: list[Checkpoint],
) -> None:
    listened = ListenedStates()
    previous: Checkpoint | None = None
    seen: set[Symbol] = set()
    for generation, cp in enumerate(commits, start=7):
        changed = state_notices.changed_states(cp, previous)
        listened.apply(state_notices.encode(generation, changed))
        seen |= set(changed)
        previous = cp
        for symbol in SYMBOLS:
            got = listened.get(symbol)
            if symbol in seen:
                assert got == stored(cp, symbol)
            else:
                assert got is None  # never carried: the listener reads the store


def test_only_what_changed_travels() -> None:
    base = Checkpoint(
        portfolio=PortfolioSnapshot(cash=1.0, positions={SYMBOLS[0]: Position(1.0, 10.0)}),
        risk=RISK,
        marks={s: Mark(10.0, T0) for s in SYMBOLS},
        targets={SYMBOLS[0]: 0.5},
    )
    later = Checkpoint(
        portfolio=base.portfolio,
        risk=RiskState(TradingState.HALTED, "x", T0, 1.0, 1.0, 2.0),
        marks={**base.marks, SYMBOLS[1]: Mark(11.0, T0 + timedelta(minutes=1))},
        targets=base.targets,
    )
    assert state_notices.changed_states(later, base) == {
        SYMBOLS[1]: SymbolState(Mark(11.0, T0 + timedelta(minutes=1)), 0.0, None, None)
    }
    gone = Checkpoint(portfolio=PortfolioSnapshot(cash=1.0), risk=RISK, marks=base.marks)
    assert state_notices.changed_states(gone, base) == {
        SYMBOLS[0]: SymbolState(Mark(10.0, T0), 0.0, None, None)
    }


def test_a_missed_commit_or_a_bare_notice_forgets_everything() -> None:
    state = SymbolState(Mark(10.0, T0), 0.25, Mark(9.0, T0), Position(2.0, 9.0, 0.0, 0.1))
    a, b = SYMBOLS[:2]
    listened = ListenedStates()
    listened.apply(state_notices.encode(3, {a: state}))
    listened.apply(state_notices.encode(4, {b: state}))
    assert listened.get(a) == state and listened.get(b) == state
    listened.apply(state_notices.encode(6, {b: EMPTY}))  # generation 5 was not heard
    assert listened.get(a) is None and listened.get(b) == EMPTY
    listened.apply(state_notices.encode(7, {a: state}))
    listened.apply("")  # a plain NOTIFY (an account reset)
    assert listened.get(a) is None
    listened.apply(state_notices.encode(9, {a: state}))
    listened.apply(state_notices.encode(10, None))  # states did not fit the payload
    assert listened.get(a) is None
    listened.apply(state_notices.encode(11, {a: state}))
    listened.apply("not json")
    assert listened.get(a) is None
    listened.apply(state_notices.encode(12, {a: state}))
    listened.forget()
    assert listened.get(a) is None


def test_states_that_do_not_fit_a_notify_are_left_out() -> None:
    state = SymbolState(Mark(10.0, T0), 0.25, None, Position(2.0, 9.0, 0.0, 0.1))
    many = {Symbol(f"S{i:04d}USDT"): state for i in range(200)}
    payload = state_notices.encode(5, many)
    assert len(payload.encode()) <= state_notices.MAX_PAYLOAD_BYTES
    assert state_notices.decode(payload) == (5, None)
    few = dict(list(many.items())[:3])
    assert state_notices.decode(state_notices.encode(5, few)) == (5, few)
