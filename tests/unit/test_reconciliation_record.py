"""The stored form of a reconciliation report (`reconciliation_record`), its one-line headline,
and `trades` showing the last one of an account."""

from __future__ import annotations

import json
import math
from datetime import timedelta
from pathlib import Path

from typer.testing import CliRunner

from drl_trading.app.paper_account import store_path
from drl_trading.app.settings import load_settings
from drl_trading.cli.app import app
from drl_trading.common.domain import Order, Side, Symbol, parse_time
from drl_trading.execution.adapter.sqlite_store import SQLiteExecutionStore
from drl_trading.execution.core.reconciliation import (
    LocalBook,
    Reconciliation,
    VenueFill,
    VenueOrder,
    VenueState,
    reconcile,
    reconciliation_record,
)
from drl_trading.execution.core.records import (
    Checkpoint,
    PortfolioSnapshot,
    Position,
    RiskState,
    TradingState,
)

S = Symbol("BTCUSDT")
T0 = parse_time("2026-12-01T19:30")


def halted() -> Reconciliation:
    """Ours: an order open on the venue to adopt, a fill of an order never recorded, an order
    we held open that the venue no longer lists; foreign: a manual order; and the venue holds
    0.3 BTC more than we know of."""
    held = PortfolioSnapshot(
        10_000.0, {S: Position(0.5, 100.0)}, (Order("sig-gone", S, Side.BUY, 1),)
    )
    local = LocalBook.of(held, [])
    venue = VenueState(
        taken_at=T0,
        fills_since=T0 - timedelta(hours=1),
        open_orders=(
            VenueOrder("sig-new", "o1", S, Side.BUY, 0.2),
            VenueOrder(None, "o2", S, Side.SELL, 1.0),
        ),
        fills=(VenueFill("t1", "sig-lost", "o3", S, Side.BUY, 0.1, 100.0, 0.01, T0),),
        positions={S: 0.9},
        cash=10_000.0 - 10.0 - 0.01,
    )
    return reconcile(local, venue)


def test_a_record_holds_the_report_in_json_values() -> None:
    rec = halted()
    record = reconciliation_record(rec)
    assert (record.at, record.ok, record.summary) == (T0, False, rec.summary())
    d = record.details
    assert json.loads(json.dumps(d, allow_nan=False)) == d  # JSON values only, exactly
    assert d["adopted_orders"] == ["sig-new", "sig-lost"]
    assert d["adopted_fills"] == [a.record_id for a in rec.adopted_fills]
    assert d["closed_while_away"] == [
        {"client_order_id": "sig-gone", "resolution": "cancelled", "filled": 0.0, "quantity": 1.0}
    ]
    assert [o["order_id"] for o in d["foreign_orders"]] == ["o2"]
    assert d["differences"][0] == {"symbol": "BTCUSDT", "local": 0.6, "venue": 0.9, "within": False}
    assert d["differences"][1]["symbol"] is None and d["differences"][1]["within"]
    assert d["halt_reasons"] == list(rec.halt_reasons) and len(rec.halt_reasons) == 1
    assert d["order_conflicts"] == []
    assert record.headline() == (
        "reconciliation 2026-12-01 19:30 UTC: HALTED: BTCUSDT position 0.6 here, 0.9 on the venue"
    )


def test_an_ok_headline_counts_what_was_adopted_and_left_alone() -> None:
    local = LocalBook.of(PortfolioSnapshot(10_000.0), [])
    mine, theirs = (VenueOrder(c, o, S, Side.SELL, 1.0) for c, o in (("sig-a", "o1"), ("x", "o2")))
    venue = VenueState(T0, T0, open_orders=(mine, theirs), cash=10_000.0)
    record = reconciliation_record(reconcile(local, venue))
    assert record.ok
    assert record.headline() == "reconciliation 2026-12-01 19:30 UTC: ok (1 adopted, 1 foreign)"


def test_an_order_conflict_and_a_non_finite_value_are_kept_readable() -> None:
    rec = halted()
    conflict = "order sig-old (BTCUSDT) is open on the venue but closed here: cancel it"
    nan_cash = rec.differences[1].__class__(None, math.nan, 1.0, False)
    odd = Reconciliation(
        **{
            **{f: getattr(rec, f) for f in rec.__dataclass_fields__},
            "differences": (nan_cash,),
            "halt_reasons": (conflict, f"{nan_cash.describe()} beyond tolerance"),
        }
    )
    record = reconciliation_record(odd)
    assert record.details["differences"] == [
        {"symbol": None, "local": "nan", "venue": 1.0, "within": False}
    ]
    assert record.details["order_conflicts"] == [conflict]
    assert record.headline().endswith(f"HALTED: cash nan here, 1.00 on the venue; {conflict}")


def test_trades_shows_the_accounts_last_reconciliation(tmp_path: Path) -> None:
    home = tmp_path / "home"
    path = store_path(load_settings(home=home), "default")
    path.parent.mkdir(parents=True)
    store = SQLiteExecutionStore(path)
    risk = RiskState(TradingState.HALTED, "reconciliation", T0, 1e4, 1e4, 1e4)
    store.commit(Checkpoint(PortfolioSnapshot(cash=1e4), risk))
    store.close()
    env = {"COLUMNS": "200", "DRL_TRADING_HOME": None, "DRL_TRADING_CONFIG": None}

    res = CliRunner().invoke(app, ["--home", str(home), "trades"], env=env)
    assert res.exit_code == 0, res.output
    assert "reconciliation" not in res.stdout  # never reconciled: no line

    store = SQLiteExecutionStore(path)
    store.save_reconciliation(reconciliation_record(halted()))
    store.close()
    res = CliRunner().invoke(app, ["--home", str(home), "trades"], env=env)
    assert res.exit_code == 0, res.output
    assert (
        "reconciliation 2026-12-01 19:30 UTC: HALTED: BTCUSDT position 0.6 here, 0.9 on the venue"
        in res.stdout
    )
    res = CliRunner().invoke(app, ["--home", str(home), "trades", "--format", "json"], env=env)
    assert json.loads(res.stdout) == []  # machine output stays the rows alone
