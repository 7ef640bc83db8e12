"""`drl-trading live` end to end on the local Binance: a champion model replays stored bars in
a sandbox session whose orders go through ccxt to the fake exchange (`execution.live.api_url`),
with credentials in environment variables; a driver thread prints the trades that fill them.
Checked: the orders reached the exchange with our client ids, once each; their fills are the
account's FILL records (`drl-trading trades`); the key never appears in output or report. A
second session trades the fake's USD-M perpetual (``execution.live.market: futures``, leverage
set at start) and ends with its ledger, its status and the exchange's position in agreement."""

from __future__ import annotations

import functools
import json
import threading
from pathlib import Path

import pytest

from drl_trading.app.settings import AppSettings
from drl_trading.common.domain import Side, TimeRange
from drl_trading.execution.core.records import RecordKind
from drl_trading.testing.cli_process import run_cli, said
from drl_trading.testing.fake_exchange import BTCUSDT_PERP, FakeExchange
from drl_trading.testing.live_session import (
    API_KEY,
    ENV,
    SECRET,
    champion_home,
    fake_exchange,
    mean_close,
    stored_account,
    write_live_config,
)

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.alone]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> AppSettings:
    return champion_home(tmp_path_factory.mktemp("live"))[0]


def test_live_sandbox_session_trades_on_the_exchange(home: AppSettings, tmp_path: Path) -> None:
    price = mean_close(home, TimeRange.parse("2024-01-15", "2024-01-15T05:00"))
    with fake_exchange() as fx:
        config = write_live_config(tmp_path / "live.yaml", fx)
        cli = functools.partial(run_cli, home.home, config=config, env=ENV)
        stop = threading.Event()

        def print_trades() -> None:
            # a trade print whenever one of the session's market orders rests: it fills there
            while not stop.wait(0.01):
                if any(o.status in ("NEW", "PARTIALLY_FILLED") for o in fx.orders()):
                    fx.trade("BTCUSDT", price, liquidity=1_000.0)

        driver = threading.Thread(target=print_trades, daemon=True)
        driver.start()
        report = tmp_path / "live.json"
        try:
            proc = cli("live", "-s", "BTCUSDT", "--model", "drl-example@champion",
                       "--source", "replay", "--start", "2024-01-15", "--end", "2024-01-16",
                       "--max-bars", "300", "--out", str(report))  # fmt: skip
        finally:
            stop.set()
            driver.join()
        out = said(proc)
        assert proc.returncode == 0, out[-4000:]
        orders, fills = fx.orders(), fx.fills()

    summary = json.loads(report.read_text())
    assert summary["broker"] == "live" and summary["bars"] == 300
    assert summary["exchange"] == {"id": "binance", "market": "spot", "sandbox": True}
    assert summary["reconciliation"].startswith("reconciliation ok")
    assert "live session" in out and "last reconciliation" in out
    assert API_KEY not in out and SECRET not in out and SECRET not in report.read_text()

    # the session's orders reached the exchange with our client ids, each once
    ours = [o for o in orders if not o.foreign]
    assert ours, "no order reached the exchange"
    ids = [o.client_order_id for o in ours]
    assert len(set(ids)) == len(ids)
    assert all(i.startswith("drl-sig-") for i in ids)

    records = stored_account(home, "live").records
    sent = {r.client_order_id for r in records if r.kind is RecordKind.ORDER}
    assert {i.removeprefix("drl-") for i in ids} == sent
    # every exchange fill of ours is one FILL record, at the exchange's price
    recorded = [r for r in records if r.kind is RecordKind.FILL]
    assert fills and len(recorded) == len(fills)
    assert {r.price for r in recorded} == {price}

    listed = cli("trades", "--session", "live", "--since", "2024-01-01")
    assert listed.returncode == 0, said(listed)
    assert "fill" in said(listed).lower()

    # a kill on the idle live account goes to the exchange: without credentials it is refused
    # with one line, nothing asked; a paper session never runs on a live account
    blank = {"DRL_TRADING_EXCHANGE_API_KEY": "", "DRL_TRADING_EXCHANGE_SECRET": ""}
    flatten = run_cli(home.home, "kill", "--session", "live", "--flatten", config=config, env=blank)
    assert flatten.returncode == 2, said(flatten)
    assert "kill on live account 'live' cancels its orders on binance: no API key" in said(flatten)
    paper = cli("paper", "-s", "BTCUSDT", "--session", "live",
                "--start", "2024-01-15", "--end", "2024-01-16")  # fmt: skip
    assert paper.returncode == 1 and "trades on an exchange" in said(paper), said(paper)


def test_live_futures_session_trades_the_perpetual(home: AppSettings, tmp_path: Path) -> None:
    price = round(mean_close(home, TimeRange.parse("2024-01-15", "2024-01-15T05:00")), 1)
    futures = FakeExchange([BTCUSDT_PERP], balances={"USDT": 10_000.0}, fee_bps=4.0,
                           api_key=API_KEY, secret=SECRET, market_type="usdm")  # fmt: skip
    with futures as fx:
        fx.trade("BTCUSDT", price, liquidity=0.0)
        config = write_live_config(
            tmp_path / "futures.yaml", fx, execution={"live": {"market": "futures", "leverage": 2}}
        )
        fx.fill_on_arrival(lambda order: price)
        report = tmp_path / "futures.json"
        cli = functools.partial(run_cli, home.home, config=config, env=ENV)
        proc = cli("live", "-s", "BTCUSDT", "--model", "drl-example@champion",
                   "--source", "replay", "--start", "2024-01-15", "--end", "2024-01-16",
                   "--max-bars", "300", "--session", "futures", "--out", str(report))  # fmt: skip
        out = said(proc)
        assert proc.returncode == 0, out[-4000:]
        leverage, fills, held = fx.leverage("BTCUSDT"), fx.fills(), fx.positions
        status = cli("live", "status", "--session", "futures", "--format", "json")

    summary = json.loads(report.read_text())
    assert summary["exchange"] == {"id": "binance", "market": "futures", "sandbox": True}
    assert summary["reconciliation"].startswith("reconciliation ok")
    assert leverage == 2
    # the book followed the exchange's fills: the ledger ends where the exchange's position is
    stored = stored_account(home, "futures")
    recorded = stored.of(RecordKind.FILL)
    assert fills and len(recorded) == len(fills)
    net = sum(r.quantity if r.side is Side.BUY else -r.quantity for r in recorded)
    assert net == pytest.approx(held.get("BTCUSDT", (0.0, 0.0))[0], abs=1e-6)
    assert stored.checkpoint is not None
    book = stored.checkpoint.portfolio.positions
    assert book["BTCUSDT"].quantity == pytest.approx(net, abs=1e-6)
    assert status.returncode == 0, said(status)
    shown = json.loads(status.stdout)
    assert shown["exchange"]["market"] == "futures"
    assert [p["quantity"] for p in shown["positions"]] == ([pytest.approx(net)] if net else [])
