"""DuckDB swallows an interrupt that Python raises inside a query (while it reads a registered
frame or runs a Python function) and reports it as its own InvalidInputException quoting the
exception; the market-data adapter raises it again as what it was, so that the CLI exits 130 on
Ctrl-C and 143 on SIGTERM instead of reporting an internal error."""

from __future__ import annotations

import threading

import duckdb
import pytest

from drl_trading.common import errors
from drl_trading.common.adapter.duckdb_market_data import _interrupts_as_keyboard_interrupt
from drl_trading.common.errors import Terminated, note_terminated


@pytest.fixture(autouse=True)
def _no_sigterm_yet(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SIGTERM record is process-wide; each test starts without one and leaves none."""
    monkeypatch.setattr(errors, "_terminated", threading.Event())


def _query_raising(interrupt: BaseException) -> None:
    con = duckdb.connect()

    def stop(value: int) -> int:
        raise interrupt

    con.create_function("stop", stop)
    with _interrupts_as_keyboard_interrupt():
        con.execute("SELECT stop(1)").fetchall()


def test_sigterm_inside_a_query_is_raised_again_as_terminated() -> None:
    with pytest.raises(Terminated):
        _query_raising(note_terminated())


def test_ctrl_c_inside_a_query_is_raised_again_as_a_keyboard_interrupt() -> None:
    with pytest.raises(KeyboardInterrupt) as caught:
        _query_raising(KeyboardInterrupt())
    assert not isinstance(caught.value, Terminated)


def test_other_errors_inside_a_query_stay_what_they_were() -> None:
    with pytest.raises(duckdb.Error, match="no such thing"):
        _query_raising(ValueError("no such thing"))
