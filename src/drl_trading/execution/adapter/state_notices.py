"""Symbol states carried on the execution store's commit notification (PostgreSQL ``NOTIFY``).

Inference, in its own process, needs each decided symbol's state as execution last committed it
(`SymbolState`: mark, target, entry, position). Reading it costs a database round trip per
decision; a commit already notifies its listeners, so the notification carries the states the
commit changed (against the checkpoint the same store handle committed before, which is the
stored one at the previous generation: the commit's guard refuses any other) and the listener
keeps them (`ListenedStates`). The listener then knows a symbol's state without asking, as long
as it saw every commit since it started listening.

Payload: compact JSON ``{"g": generation, "s": {symbol: [mark price, mark close (Unix µs),
target, entry price, entry time (µs), quantity, average price, realised PnL, fees]}}``, ``null``
for an absent part. PostgreSQL limits a payload to 8,000 bytes: a commit changing more symbols
than fit sends ``{"g": generation}`` alone, and so does a commit after a reload (nothing to diff
against) with many symbols; a listener then forgets what it knew and reads the store again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from drl_trading.common.domain import Symbol, from_micros, to_micros
from drl_trading.execution.core.records import Checkpoint, Mark, Position, SymbolState

MAX_PAYLOAD_BYTES = 7_900
"""PostgreSQL refuses a ``NOTIFY`` payload of 8,000 bytes or more; a margin below it."""


def symbol_states(cp: Checkpoint) -> dict[Symbol, SymbolState]:
    """Every symbol's state in ``cp``, as `ExecutionStore.symbol_state` reads it back."""
    symbols = {*cp.marks, *cp.targets, *cp.entries, *cp.portfolio.positions}
    return {s: _state_of(cp, s) for s in symbols}


def _state_of(cp: Checkpoint, symbol: Symbol) -> SymbolState:
    return SymbolState(
        cp.marks.get(symbol),
        cp.targets.get(symbol, 0.0),
        cp.entries.get(symbol),
        cp.portfolio.positions.get(symbol),
    )


def changed_states(cp: Checkpoint, previous: Checkpoint | None) -> dict[Symbol, SymbolState]:
    """The symbols whose state differs between ``previous`` (None: unknown, so all of ``cp``'s)
    and ``cp``; a symbol gone from ``cp`` is in it with an empty state."""
    if previous is None:
        return symbol_states(cp)
    out: dict[Symbol, SymbolState] = {}
    for part, before in (
        (cp.marks, previous.marks),
        (cp.targets, previous.targets),
        (cp.entries, previous.entries),
        (cp.portfolio.positions, previous.portfolio.positions),
    ):
        if part is before or part == before:
            continue
        for symbol in {*part, *before}:
            if symbol not in out and part.get(symbol) != before.get(symbol):  # type: ignore[attr-defined]
                out[symbol] = _state_of(cp, symbol)
    return out


def encode(generation: int, states: Mapping[Symbol, SymbolState] | None) -> str:
    """The payload of the commit at ``generation``; without ``states`` (or when they do not
    fit) only the generation, which tells a listener that its states may be out of date."""
    if states is not None:
        body = json.dumps(
            {"g": generation, "s": {str(s): _row(st) for s, st in states.items()}},
            separators=(",", ":"),
        )
        if len(body.encode()) <= MAX_PAYLOAD_BYTES:
            return body
    return json.dumps({"g": generation}, separators=(",", ":"))


def _row(st: SymbolState) -> list[float | int | None]:
    m, e, p = st.mark, st.entry, st.position
    return [
        None if m is None else m.price,
        None if m is None else to_micros(m.as_of),
        st.target,
        None if e is None else e.price,
        None if e is None else to_micros(e.as_of),
        None if p is None else p.quantity,
        None if p is None else p.avg_price,
        None if p is None else p.realised_pnl,
        None if p is None else p.fees_paid,
    ]


def decode(payload: str) -> tuple[int | None, dict[Symbol, SymbolState] | None]:
    """(generation, states) of a payload; (None, None) for one this module did not write (a
    plain ``NOTIFY``, another version), which a listener treats as "anything may have changed"."""
    try:
        body = json.loads(payload) if payload else None
    except ValueError:
        return None, None
    if not isinstance(body, dict) or not isinstance(body.get("g"), int):
        return None, None
    rows = body.get("s")
    if not isinstance(rows, dict):
        return body["g"], None
    try:
        return body["g"], {Symbol(s): _state(row) for s, row in rows.items()}
    except (TypeError, ValueError):
        return body["g"], None


def _state(row: list[Any]) -> SymbolState:
    mp, mt, target, ep, et, q, avg, realised, fees = row
    return SymbolState(
        None if mt is None else Mark(float(mp), from_micros(mt)),
        float(target),
        None if et is None else Mark(float(ep), from_micros(et)),
        None if q is None else Position(float(q), float(avg), float(realised), float(fees)),
    )


class ListenedStates:
    """The symbol states a listener learned from the notifications it received, in order.

    A state is known only if the listener saw every commit since the one that carried it: a
    notification without states, one it cannot read, or a generation that does not follow the
    last one (a commit it missed, an account reset) makes it forget everything."""

    def __init__(self) -> None:
        self._states: dict[Symbol, SymbolState] = {}
        self._generation: int | None = None

    def apply(self, payload: str) -> None:
        generation, states = decode(payload)
        follows = self._generation is None or generation == self._generation + 1
        if generation is None or states is None or not follows:
            self._states.clear()
        if states is not None and generation is not None:
            self._states.update(states)
        self._generation = generation

    def forget(self) -> None:
        """Notifications may have been lost (the listening connection broke)."""
        self._states.clear()
        self._generation = None

    def get(self, symbol: Symbol) -> SymbolState | None:
        return self._states.get(symbol)
