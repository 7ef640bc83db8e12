"""`drl-trading live` against the local Binance when things go wrong, as a user runs it (the
command in its own process, the fake exchange in this one):

- the process killed (SIGKILL) after an order was sent and before its acknowledgement was
  recorded, then started again on the account: reconciliation adopts the order and its fill,
  nothing is sent twice and no fill is lost;
- the account changed on the exchange behind the session's back: the periodic reconciliation
  halts trading and no order follows;
- 429s, 5xx and an insufficient-balance refusal during a session: retried (each order placed
  once) or recorded as a rejection, and the session goes on;
- a replay through `live --sandbox` decides as `paper` does on the same bars, filled at the
  fake's prices.

Orders fill inside their POST (`FakeExchange.fill_on_arrival`), so what the session finds at its
next poll does not depend on thread timing."""

from __future__ import annotations

import os
import signal
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from drl_trading.app.settings import AppSettings
from drl_trading.common.domain import TimeRange, utc
from drl_trading.common.model_registry import ModelVersion
from drl_trading.execution.core.records import RecordKind, TradingState
from drl_trading.inference.core.service import prediction_id
from drl_trading.testing.cli_process import run_cli, said
from drl_trading.testing.fake_exchange import FakeExchange, FakeOrder
from drl_trading.testing.live_session import (
    ENV,
    SYMBOL,
    StoredAccount,
    champion_home,
    fake_exchange,
    log_text,
    replay_args,
    start_cli,
    stored_account,
    stored_bars,
    write_live_config,
)

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

START, END = "2024-01-15", "2024-01-15T06:00"
PREFIX = "drl-"  # execution.live.client_id_prefix


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> tuple[AppSettings, ModelVersion]:
    return champion_home(tmp_path_factory.mktemp("live-faults"))


def at_next_open(
    settings: AppSettings, model: ModelVersion, start: str, end: str
) -> Callable[[FakeOrder], float | None]:
    """The fill price of an order of ours: the open of the bar after its signal's, where
    `paper` fills it too (the signal's bar close from its client id: `prediction_id`)."""
    bars = stored_bars(settings, TimeRange.parse(start, end))
    opens = {
        "sig-" + prediction_id(SYMBOL, utc(t), model.name, model.version)[:24]: round(float(o), 2)
        for t, o in zip(bars["open_time"], bars["open"], strict=True)
    }
    return lambda order: opens.get(order.client_order_id.removeprefix(PREFIX))


def ours(fx: FakeExchange) -> list[FakeOrder]:
    return [o for o in fx.orders() if not o.foreign]


def assert_books_agree(fx: FakeExchange, account: StoredAccount) -> tuple[int, int, int]:
    """Orders sent = orders on the exchange, each client id once; every exchange fill is one
    FILL record (same order, quantity, price). Returns (orders, fills, duplicates)."""
    ids = [o.client_order_id for o in ours(fx)]
    duplicates = len(ids) - len(set(ids))
    assert duplicates == 0, Counter(ids).most_common(3)
    recorded = [r.client_order_id for r in account.of(RecordKind.ORDER)]
    assert sorted(i.removeprefix(PREFIX) for i in ids) == sorted(recorded)  # type: ignore[type-var]
    signals = [r.signal_id for r in account.of(RecordKind.ORDER) if r.signal_id is not None]
    assert len(signals) == len(set(signals)), "a signal was ordered twice"
    venue = Counter(
        (f.client_order_id.removeprefix(PREFIX), f.quantity, f.price) for f in fx.fills()
    )
    booked = Counter((r.client_order_id, r.quantity, r.price) for r in account.of(RecordKind.FILL))
    assert venue == booked
    return len(ids), sum(booked.values()), duplicates


def test_kill_after_send_before_ack_then_restart_adopts_order_and_fill(
    home: tuple[AppSettings, ModelVersion], tmp_path: Path
) -> None:
    settings, model = home
    price_of = at_next_open(settings, model, START, END)
    with fake_exchange() as fx:
        # the only reconciliation is the one at start: the stored report is the restart's
        config = write_live_config(
            tmp_path / "live.yaml",
            fx,
            execution={"live": {"timeout_ms": 120_000}, "reconciliation": {"every_bars": 10**6}},
        )
        fx.fill_on_arrival(price_of)
        fx.faults.hold_s = 300.0  # the session waits for its acknowledgement until killed
        fx.faults.timeout_after_accept = 1
        proc = start_cli(settings.home, "live", *replay_args(START, END, session="crash"),
                         config=config)  # fmt: skip
        try:
            assert fx.faults.withheld.wait(180), "no order reached the exchange"
            os.kill(proc.pid, signal.SIGKILL)
            assert proc.wait(60) == -signal.SIGKILL
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        (held,) = ours(fx)
        assert held.status in ("FILLED", "EXPIRED") and len(fx.fills()) == 1
        coid = held.client_order_id.removeprefix(PREFIX)
        crashed = stored_account(settings, "crash")
        assert coid not in {r.client_order_id for r in crashed.records}  # never recorded

        restart = run_cli(settings.home, "live", *replay_args(START, END, session="crash",
                          max_bars=40), config=config, env=ENV)  # fmt: skip
        assert restart.returncode == 0, said(restart)[-4000:]
        account = stored_account(settings, "crash")
        sent, recorded, duplicates = assert_books_agree(fx, account)
        on_exchange, fills = len(ours(fx)), len(fx.fills())

    (adopted,) = [r for r in account.of(RecordKind.ORDER) if r.client_order_id == coid]
    assert adopted.risk_check == "reconciliation" and "never recorded" in adopted.reason
    assert [r.client_order_id for r in account.of(RecordKind.FILL)].count(coid) == 1
    rec = account.reconciliation
    assert rec is not None and rec.ok, rec
    assert "adopted 1 fill(s), 1 order(s)" in rec.summary
    assert rec.details["adopted_orders"] == [coid]
    print(f"\nkill -9: orders sent {len(account.of(RecordKind.ORDER))}, on the exchange "
          f"{on_exchange}, exchange fills {fills}, FILL records {recorded}, duplicates "
          f"{duplicates} (sent {sent})")  # fmt: skip


def test_position_changed_behind_the_sessions_back_halts(
    home: tuple[AppSettings, ModelVersion], tmp_path: Path
) -> None:
    """A session stops; someone moves BTC into the account on the exchange; the next start's
    reconciliation finds the stored book and the exchange apart and halts before any order."""
    settings, _ = home
    with fake_exchange() as fx:
        config = write_live_config(tmp_path / "live.yaml", fx)
        first = run_cli(settings.home, "live", *replay_args(START, END, session="halt",
                        max_bars=5), config=config, env=ENV)  # fmt: skip
        assert first.returncode == 0, said(first)[-4000:]
        before = stored_account(settings, "halt")
        held = before.checkpoint.portfolio.positions.get(SYMBOL) if before.checkpoint else None
        local = held.quantity if held is not None else 0.0
        free, locked = fx.balances().get("BTC", (0.0, 0.0))
        fx.set_balance("BTC", free + 0.5)  # a deposit (or a manual trade) behind its back
        orders_before = len(ours(fx))
        again = run_cli(settings.home, "live", *replay_args(START, END, session="halt",
                        max_bars=20), config=config, env=ENV)  # fmt: skip
        orders_after = len(ours(fx))
        listed = run_cli(settings.home, "trades", "--session", "halt", config=config, env=ENV)
        account = stored_account(settings, "halt")

    assert again.returncode == 0, said(again)[-4000:]
    assert account.checkpoint is not None
    risk = account.checkpoint.risk
    assert risk.state is TradingState.HALTED and risk.reason.startswith("reconciliation:")
    assert orders_after == orders_before  # nothing sent after the halt
    rec = account.reconciliation
    assert rec is not None and not rec.ok
    (diff,) = [d for d in rec.details["differences"] if not d["within"]]
    assert diff["symbol"] == str(SYMBOL)
    assert diff["local"] == pytest.approx(local)
    assert diff["venue"] == pytest.approx(free + locked + 0.5)
    assert "HALTED" in said(listed) and "BTCUSDT position" in said(listed)
    assert "reconciliation mismatch: trading halted" in log_text(settings)
