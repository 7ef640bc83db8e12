"""A live account with no session running, on the local Binance: `live status` shows what the
store holds (state, book, the last reconciliation), `kill` cancels our orders on the exchange
and leaves the foreign one, `kill --flatten` sells what is held and records the fill, and a
missing key is refused with one line before anything is sent. `serve execution` with
``execution.broker: live`` composes the ccxt broker on the same account.

The account is made as a session leaves it: our orders sent through its broker (client ids
``drl-sig-...``), one filled and recorded, one resting, and a reconciliation stored.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from drl_trading.app.settings import AppSettings, load_settings
from drl_trading.cli.app import app
from drl_trading.common.adapter.system_clock import ManualClock
from drl_trading.common.domain import Bar, Order, Side, Symbol, Timeframe, parse_time
from drl_trading.execution.adapter.sqlite_store import SQLiteExecutionStore
from drl_trading.execution.core.records import RecordKind, TradeRecord, TradingState
from drl_trading.testing.fake_exchange import BTCUSDT, FakeExchange

pytestmark = pytest.mark.integration

SYMBOL = Symbol("BTCUSDT")
SPEC = BTCUSDT
KEY, SECRET = "acct-key-91f2", "acct-secret-c07e"
ENV = {"DRL_TRADING_EXCHANGE_API_KEY": KEY, "DRL_TRADING_EXCHANGE_SECRET": SECRET}
T0 = parse_time("2026-12-01T10:00")
OURS_OPEN = "sig-" + "b" * 24
OURS_FILLED = "sig-" + "a" * 24


@pytest.fixture
def fx() -> Iterator[FakeExchange]:
    with FakeExchange(
        [SPEC], balances={"USDT": 10_000.0}, fee_bps=10.0, api_key=KEY, secret=SECRET
    ) as exchange:
        yield exchange


def write_config(tmp_path: Path, fx: FakeExchange, **execution: object) -> Path:
    config = tmp_path / "live.yaml"
    live = {"api_url": fx.url, "timeout_ms": 5_000, "max_attempts": 2, "first_backoff_s": 0.0}
    config.write_text(yaml.safe_dump({"execution": {"live": live, **execution}}))
    return config


def make_account(tmp_path: Path, fx: FakeExchange, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stored live account ``acct`` holding 0.1 BTC (bought at 40,000), one resting limit
    buy of ours, and a foreign order on the exchange; no session runs on it."""
    from drl_trading.app.execution import bootstrap_execution
    from drl_trading.app.infrastructure import build_strategy
    from drl_trading.app.live_broker import build_live_broker
    from drl_trading.app.paper_account import LIVE_MARKER, account_dir, store_path

    home = tmp_path / "home"
    settings = load_settings(write_config(tmp_path, fx), home=home)
    folder = account_dir(settings, "acct")
    folder.mkdir(parents=True)
    (folder / LIVE_MARKER).write_text(
        json.dumps({"exchange": "binance", "market": "spot", "sandbox": True})
    )
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    clock = ManualClock(T0)
    ex = settings.execution.model_copy(update={"store_path": store_path(settings, "acct")})

    broker = build_live_broker(settings.execution.live, [SYMBOL], clock)
    parts = bootstrap_execution(
        ex, build_strategy(settings).risk_parameters(), clock, home, [SYMBOL],
        broker=broker, venue=broker,
    )  # fmt: skip
    try:
        bar = Bar(SYMBOL, Timeframe.M1, T0 - timedelta(minutes=2), *(40_000.0,) * 4, 1.0)
        parts.service.on_bar(bar)  # reconciles first: an empty account
        # orders as a session sends them (the records are the service's; here the broker's)
        assert broker.submit(Order(OURS_FILLED, SYMBOL, Side.BUY, 0.1)).accepted
        fx.trade("BTCUSDT", 40_000.0, liquidity=10.0)
        assert broker.submit(Order(OURS_OPEN, SYMBOL, Side.BUY, 0.01, 30_000.0)).accepted
        fx.place_foreign_order("BTCUSDT", "buy", 0.01, 31_000.0)
        parts.service.on_bar(replace(bar, open_time=T0 - timedelta(minutes=1)))  # the fill
        parts.service.reconcile()
    finally:
        parts.close()
    for k in ENV:
        monkeypatch.delenv(k)
    return home


def cli(home: Path, config: Path, *args: str, env: dict[str, str] | None = None) -> str:
    result = CliRunner().invoke(
        app, ["--home", str(home), "--config", str(config), *args], env=env, color=False
    )
    out = " ".join(result.output.split())
    assert result.exit_code == 0, out
    return out


def records(home: Path) -> list[TradeRecord]:
    store = SQLiteExecutionStore(home / "paper" / "acct" / "execution.sqlite")
    try:
        return list(store.records_since(parse_time("1970-01-01")))
    finally:
        store.close()


def test_status_shows_the_stored_account_and_last_reconciliation(
    tmp_path: Path, fx: FakeExchange, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = make_account(tmp_path, fx, monkeypatch)
    config = write_config(tmp_path, fx)
    out = cli(home, config, "live", "status", "--session", "acct")
    assert "live account acct on binance spot (sandbox)" in out
    assert "trading state ACTIVE" in out and "session: none running" in out
    assert "BTCUSDT" in out and OURS_OPEN in out
    assert "reconciliation 2026-12-01 10:00 UTC: ok (0 adopted, 1 foreign)" in out
    assert "foreign order (left alone)" in out

    doc = json.loads(cli(home, config, "live", "status", "--session", "acct", "--format", "json"))
    assert doc["trading_state"] == "active" and doc["session"] is None
    assert [p["symbol"] for p in doc["positions"]] == ["BTCUSDT"]
    assert doc["positions"][0]["quantity"] == pytest.approx(0.1, abs=1e-9)
    assert [o["client_order_id"] for o in doc["open_orders"]] == [OURS_OPEN]
    rec = doc["reconciliation"]
    assert rec["ok"] is True and len(rec["foreign_orders"]) == 1
    assert {d["symbol"] for d in rec["differences"]} >= {"BTCUSDT", None}
    assert all({"local", "venue", "within"} <= d.keys() for d in rec["differences"])


def test_kill_cancels_on_the_exchange_and_flatten_sells_what_is_held(
    tmp_path: Path, fx: FakeExchange, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = make_account(tmp_path, fx, monkeypatch)
    config = write_config(tmp_path, fx)
    asked = len(fx.requests)

    # no key: one line, nothing asked of the exchange, the account untouched
    refused = CliRunner().invoke(
        app, ["--home", str(home), "--config", str(config), "kill", "--session", "acct"],
        env={"DRL_TRADING_EXCHANGE_API_KEY": "", "DRL_TRADING_EXCHANGE_SECRET": ""},
    )  # fmt: skip
    assert refused.exit_code == 2, refused.output
    said = " ".join(refused.output.split())
    assert "kill on live account 'acct' cancels its orders on binance: no API key" in said
    assert "Traceback" not in said and len(fx.requests) == asked

    # kill: our resting order cancelled there, the foreign one left, the account halted
    out = cli(home, config, "kill", "--session", "acct", "--reason", "drill", env=ENV)
    assert (
        "kill applied on the exchange" in out
        and "trading state: halted (kill switch: drill)" in out
    )
    assert "cancelled on the exchange: 1 open order(s) of ours" in out and OURS_OPEN in out
    status = {o.client_order_id: o.status for o in fx.orders()}
    assert status["drl-" + OURS_OPEN] == "CANCELED"
    assert [s for c, s in status.items() if c.startswith("web_")] == ["NEW"]
    cancels = [r for r in records(home) if r.kind is RecordKind.CANCEL]
    assert [r.client_order_id for r in cancels] == [OURS_OPEN]
    assert KEY not in out and SECRET not in out

    # flatten on the idle account: a market sell of the 0.1 BTC, filled by the next print
    stop = threading.Event()

    def print_trades() -> None:
        while not stop.wait(0.01):
            if any(o.status == "NEW" and o.type == "MARKET" for o in fx.orders()):
                fx.trade("BTCUSDT", 41_000.0, liquidity=10.0)

    driver = threading.Thread(target=print_trades, daemon=True)
    driver.start()
    try:
        out = cli(home, config, "kill", "--session", "acct", "--flatten", env=ENV)
    finally:
        stop.set()
        driver.join()
    assert "closing order sent: sell 0.1 BTCUSDT (flat-" in out, out
    assert "filled: sell 0.1 BTCUSDT" in out and "at 41000" in out
    assert "not filled yet" not in out
    sells = [o for o in fx.orders() if o.side == "SELL" and o.client_order_id.startswith("drl-")]
    assert len(sells) == 1 and sells[0].status == "FILLED"
    fills = [r for r in records(home) if r.kind is RecordKind.FILL]
    assert [f.price for f in fills if (f.client_order_id or "").startswith("flat-")] == [41_000.0]

    doc = json.loads(cli(home, config, "live", "status", "--session", "acct", "--format", "json"))
    assert doc["trading_state"] == TradingState.HALTED.value and doc["positions"] == []
    assert doc["open_orders"] == []
    # the flatten's reconciliation agrees with the exchange: the fill is booked once
    assert doc["reconciliation"]["ok"] is True, doc["reconciliation"]


def test_serve_execution_with_broker_live_trades_the_exchange_account(
    tmp_path: Path, fx: FakeExchange, monkeypatch: pytest.MonkeyPatch
) -> None:
    from drl_trading.app.live_broker import LiveAccountError
    from drl_trading.app.services import _execution_broker
    from drl_trading.execution.adapter.ccxt_broker import CcxtBroker

    config = write_config(tmp_path, fx, broker="live")
    settings: AppSettings = load_settings(
        config, home=tmp_path / "h", serve={"symbols": ["BTCUSDT"]}
    )
    with pytest.raises(LiveAccountError, match="no API key"):
        _execution_broker(settings)
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    composed, broker = _execution_broker(settings)
    try:
        assert isinstance(broker, CcxtBroker)
        assert composed.execution.initial_cash == pytest.approx(10_000.0)  # the exchange's USDT
        assert ("GET", "/api/v3/account", 200) in fx.requests
    finally:
        # its order stream would otherwise go on reconnecting to the stopped fake exchange
        # for the rest of the pytest process, logging into later tests' output
        assert broker is not None
        broker.close()

    paper, none = _execution_broker(load_settings(home=tmp_path / "h2"))
    assert none is None and paper.execution.broker == "paper"

    real = load_settings(
        config, home=tmp_path / "h3", execution={"broker": "live", "live": {"sandbox": False}}
    )
    with pytest.raises(LiveAccountError, match="confirm_real_account"):
        _execution_broker(real)
