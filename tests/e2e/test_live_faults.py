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

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.alone]

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


def after_each_fill(fx: FakeExchange, then: Callable[[int], None]) -> None:
    """``then(n)`` inside the POST of our ``n``-th accepted order (1-based), after
    `fill_on_arrival` filled it and before its response: faults armed there hit the requests
    that follow that order, whatever the threads' timing. Under the exchange's lock: ``then``
    may change `fx.faults` only."""
    fill = fx.faults.on_accept
    accepted = 0

    def hook() -> None:
        nonlocal accepted
        if fill is not None:
            fill()
        accepted += 1
        then(accepted)

    fx.faults.on_accept = hook


def test_rate_limits_server_errors_and_a_rejection_during_a_session(
    home: tuple[AppSettings, ModelVersion], tmp_path: Path
) -> None:
    """Faults where the session certainly goes: a 418 ban, a 429 and a 503 on its first request
    (loading the markets); the first order's answer lost after the exchange executed it, then a
    429 and a 503 on the look-up by client id that follows; the second order refused for
    insufficient balance. The session retries what was refused before processing, finds the
    executed order instead of resending it, records the refusal and trades on."""
    settings, model = home
    with fake_exchange() as fx:
        config = write_live_config(
            tmp_path / "live.yaml", fx, execution={"live": {"first_backoff_s": 0.05}}
        )
        fx.fill_on_arrival(at_next_open(settings, model, START, END))
        fx.faults.ban = fx.faults.rate_limit = fx.faults.server_errors = 1
        fx.faults.drop_after_accept = 1

        def arm(n: int) -> None:
            if n == 1:
                fx.faults.rate_limit = fx.faults.server_errors = 1
                fx.faults.reject_next = "insufficient_balance"

        after_each_fill(fx, arm)
        logged_before = len(log_text(settings))
        done = run_cli(settings.home, "live", *replay_args(START, END, session="faults"),
                       config=config, env=ENV)  # fmt: skip
        requests = fx.requests
        pending = (fx.faults.ban, fx.faults.rate_limit, fx.faults.server_errors)
        unused = (fx.faults.drop_after_accept, fx.faults.reject_next)
        account = stored_account(settings, "faults")
        sent, fills, duplicates = assert_books_agree(fx, account)

    assert done.returncode == 0, said(done)[-4000:]
    assert pending == (0, 0, 0) and unused == (0, None), "a fault was never reached"
    answers = [(r.method, r.path, r.status) for r in requests]
    markets = "/api/v3/exchangeInfo"
    assert answers[:4] == [("GET", markets, s) for s in (418, 429, 503, 200)]
    first_post = answers.index(("POST", "/api/v3/order", 200))  # executed, its answer lost
    assert answers[first_post + 1 : first_post + 4] == [
        ("GET", "/api/v3/order", s) for s in (429, 503, 200)
    ]  # the look-up by client id, retried, finds it: no resend
    posts = [a for a in answers if a[:2] == ("POST", "/api/v3/order")]
    assert posts.count(("POST", "/api/v3/order", 400)) == 1  # the refusal
    assert len(posts) == sent + 1  # every other POST placed one order, none twice

    (refused,) = account.of(RecordKind.REJECTION)
    assert refused.risk_check == "broker" and refused.signal_id is not None
    assert refused.signal_time is not None
    assert refused.reason.startswith("exchange_rejected:")
    assert "insufficient balance" in refused.reason
    refused_at = refused.signal_time
    later = [d for d in account.decisions() if d[0] is not None and d[0] > refused_at]
    assert later, "no signal was decided after the refusal"
    assert sent >= 1 and fills >= 1
    checkpoint = account.checkpoint
    assert checkpoint is not None and checkpoint.risk.state is TradingState.ACTIVE
    logged = log_text(settings)[logged_before:]
    retries = logged.count("live_broker.retry") + logged.count("ccxt_broker.retry")
    faulted = sum(1 for a in answers if a[2] in (418, 429, 503))
    assert faulted == 5 and retries == faulted  # each refused request retried once, logged
    print(f"\nfaults: requests {len(answers)}, 418/429/5xx answered {faulted}, broker retries "
          f"logged {retries}, orders sent {sent}, exchange fills {fills}, rejections 1, "
          f"duplicates {duplicates}")  # fmt: skip


def test_live_replay_decides_as_paper_on_the_same_bars(
    home: tuple[AppSettings, ModelVersion], tmp_path: Path
) -> None:
    """`paper` and `live` replay the same bars with the same model and cash: the same decision
    on every signal, each live order filled by the fake at the open of the bar after its signal,
    where `paper` fills it (no slippage, the fake's fee). Two limits make the accounts alike
    where a spot account cannot follow the paper one: shorts are forbidden (spot is long or
    flat; paper would sell what it does not hold), and a position is at most half the equity
    (paper buys the whole equity and pays the fee on top, below zero cash; the exchange fills
    only what the cash pays, fee included)."""
    settings, model = home
    price_of = at_next_open(settings, model, START, END)
    with fake_exchange(usdt=10_000.0, fee_bps=10.0) as fx:
        config = write_live_config(
            tmp_path / "both.yaml",
            fx,
            execution={"initial_cash": 10_000.0, "fee_bps": 10.0, "slippage_bps": 0.0,
                       "allow_short": False, "max_position": 0.5},
        )  # fmt: skip
        fx.fill_on_arrival(price_of)
        fx.faults.user_stream_delay_s = 0.5  # pushes lag: fills are still booked at the next bar
        paper = run_cli(settings.home, "paper", *replay_args(START, END, session="parity-paper"),
                        config=config, env=ENV)  # fmt: skip
        assert paper.returncode == 0, said(paper)[-4000:]
        assert fx.requests == [], "paper talked to the exchange"
        live = run_cli(settings.home, "live", *replay_args(START, END, session="parity-live"),
                       config=config, env=ENV)  # fmt: skip
        assert live.returncode == 0, said(live)[-4000:]
        venue_fills = {f.client_order_id.removeprefix(PREFIX): f.price for f in fx.fills()}
        placed = {o.client_order_id.removeprefix(PREFIX): price_of(o) for o in ours(fx)}
        live_account = stored_account(settings, "parity-live")
        sent, _, duplicates = assert_books_agree(fx, live_account)
    on_paper = stored_account(settings, "parity-paper")

    assert on_paper.decisions() == live_account.decisions()
    orders = {r.client_order_id: r for r in on_paper.of(RecordKind.ORDER)}
    assert len(orders) >= 1, "the replay placed no order: nothing to compare"
    assert set(orders) == {r.client_order_id for r in live_account.of(RecordKind.ORDER)}
    for r in live_account.of(RecordKind.ORDER):
        assert r.quantity == pytest.approx(orders[r.client_order_id].quantity, rel=1e-4)
    live_fills = {r.client_order_id: r for r in live_account.of(RecordKind.FILL)}
    paper_fills = {r.client_order_id: r for r in on_paper.of(RecordKind.FILL)}
    assert set(live_fills) == set(paper_fills) == set(orders)
    assert {c: f.price for c, f in live_fills.items()} == venue_fills == placed
    for coid, fill in paper_fills.items():
        assert fill.signal_time == live_fills[coid].signal_time
        assert fill.price == pytest.approx(live_fills[coid].price, abs=0.005)  # to the tick
        assert fill.fee == pytest.approx(live_fills[coid].fee, rel=1e-3)
    print(f"\nparity: signals {len(live_account.decisions())}, orders {sent} (paper "
          f"{len(orders)}), fills at the fake's opens {len(live_fills)}, duplicates "
          f"{duplicates}")  # fmt: skip
