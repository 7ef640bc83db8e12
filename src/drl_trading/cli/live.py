"""`drl-trading live`: the online workflow in one process, trading an exchange account.

The same session as `paper` (ingest → preprocess → inference → execution, the risk engine, the
trade records, the live table and the session report: `drl_trading.cli.paper.run_session`), with
the ccxt broker of ``execution.live`` (`drl_trading.app.live_broker`) instead of the paper
broker, reconciling the book with the exchange at start and every
``execution.reconciliation.every_bars`` bars. The exchange's test network is the default; a
real account needs ``execution.live.confirm_real_account: true`` or the flag
``--i-understand-this-trades-real-money``. Credentials come from the environment or key files
only (docs/live.md).
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from pydantic import ValidationError
from rich.table import Table

from drl_trading.cli.context import console, fail, state
from drl_trading.cli.options import MaxBars, ReplayEnd, ReplayStart, SessionModel, SessionReport
from drl_trading.cli.output import json_value, table_cell
from drl_trading.cli.paper import run_session, session_inputs
from drl_trading.common.domain import Timeframe

if TYPE_CHECKING:
    from drl_trading.app.live_account import LiveAccountStatus

LiveSource = Literal["ccxt-live", "replay"]


class StatusFormat(StrEnum):
    TABLE = "table"
    JSON = "json"


live_app = typer.Typer(
    help="Trade a registered model on an exchange account (`live --model ...`), or show the "
    "account (`live status`).",
    invoke_without_command=True,
)


@live_app.callback()
def live(
    ctx: typer.Context,
    symbols: Annotated[
        str | None, typer.Option("--symbols", "-s", help="Comma-separated (required to trade).")
    ] = None,
    model: SessionModel = None,
    source: Annotated[
        LiveSource,
        typer.Option(
            help="ccxt-live (the exchange of ingest.ccxt, polled for closed candles of "
            "--timeframe) or replay (stored bars, sandbox accounts only: for rehearsals)."
        ),
    ] = "ccxt-live",
    exchange: Annotated[
        str | None,
        typer.Option(help="ccxt exchange id (default: execution.live.exchange)."),
    ] = None,
    sandbox: Annotated[
        bool | None,
        typer.Option(
            "--sandbox/--no-sandbox",
            help="The exchange's test network (default: execution.live.sandbox, true).",
        ),
    ] = None,
    market: Annotated[
        str | None,
        typer.Option(
            help="spot (long or flat) or futures (USD-M perpetuals: long or short; default: "
            "execution.live.market)."
        ),
    ] = None,
    leverage: Annotated[
        int | None,
        typer.Option(
            help="futures: leverage set on each symbol at start (default: "
            "execution.live.leverage, none: the account's)."
        ),
    ] = None,
    real_money: Annotated[
        bool,
        typer.Option(
            "--i-understand-this-trades-real-money",
            help="Confirm a non-sandbox account (execution.live.confirm_real_account).",
        ),
    ] = False,
    start: ReplayStart = None,
    end: ReplayEnd = None,
    max_bars: MaxBars = None,
    timeframe: Annotated[
        Timeframe | None,
        typer.Option("--timeframe", help="Bars of ccxt-live (default 1m)."),
    ] = None,
    out: SessionReport = None,
    session: Annotated[
        str,
        typer.Option(
            help="Account name: its book and trade records persist across runs "
            "(`trades`, `kill`, `resume` take the same --session)."
        ),
    ] = "live",
) -> None:
    """Trade a registered model on an exchange account (sandbox by default; all services
    here). `drl-trading live status` shows the account instead."""
    if ctx.invoked_subcommand is not None:
        return
    if symbols is None:
        raise fail("live: --symbols is required to trade (or `drl-trading live status`)", 2)
    from drl_trading.app.live_broker import check_account
    from drl_trading.app.online_session import SessionRequest
    from drl_trading.execution.core.config import LiveSettings

    settings = state(ctx).settings()
    overrides: dict[str, Any] = {
        k: v
        for k, v in {
            "exchange": exchange,
            "sandbox": sandbox,
            "market": market,
            "leverage": leverage,
        }.items()
        if v is not None
    }
    if real_money:
        overrides["confirm_real_account"] = True
    try:
        live_settings = LiveSettings.model_validate(
            settings.execution.live.model_dump() | overrides
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise fail(f"execution.live{'.' + where if where else ''}: {first['msg']}", 2) from None
    if source == "replay" and not live_settings.sandbox:
        raise fail(
            "--source replay trades past bars: only on a sandbox account (--sandbox); a real "
            "account trades --source ccxt-live",
            2,
        )
    check_account(live_settings)  # a real account unconfirmed: one line, exit 2
    syms, rng = session_inputs(symbols, source, start, end, max_bars, timeframe)
    execution = settings.execution.model_copy(update={"live": live_settings})
    request = SessionRequest(
        symbols=tuple(syms),
        source=source,
        range=rng,
        max_bars=max_bars,
        timeframe=timeframe,
        model_ref=model,
        account=session,
        out=out,
        broker="live",
    )
    run_session(settings.model_copy(update={"execution": execution}), request)


@live_app.command("status")
def status(
    ctx: typer.Context,
    session: Annotated[
        str, typer.Option(help="Live account name (as given to `live --session`).")
    ] = "live",
    fmt: Annotated[
        StatusFormat,
        typer.Option("--format", case_sensitive=False, help="table (a person) or json."),
    ] = StatusFormat.TABLE,
) -> None:
    """The live account as stored: trading state, cash, equity, positions, open orders and the
    last reconciliation with the exchange (no exchange call)."""
    from drl_trading.app.live_account import live_account_status
    from drl_trading.app.paper_account import AccountNotFoundError

    settings = state(ctx).settings()
    try:
        st = live_account_status(settings, session)
    except AccountNotFoundError as exc:
        raise fail(str(exc)) from None
    doc = status_document(st)
    if fmt is StatusFormat.JSON:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    _print_status(doc, st)


def status_document(st: LiveAccountStatus) -> dict[str, Any]:
    """The status of a live account as JSON values (``--format json``; the table shows it)."""
    cp = st.checkpoint
    marks = {} if cp is None else cp.marks
    risk = None if cp is None else cp.risk
    rec = st.reconciliation
    return {
        "account": st.account,
        "exchange": {
            "id": st.venue.exchange,
            "market": st.venue.market,
            "sandbox": st.venue.sandbox,
        },
        "session": None
        if st.session is None
        else {"id": st.session.session_id, "last_beat": st.session.at.isoformat()},
        "trading_state": None if risk is None else risk.state.value,
        "reason": None if risk is None else risk.reason,
        "since": None if risk is None else risk.since.isoformat(),
        "market_time": json_value(max((m.as_of for m in marks.values()), default=None)),
        "cash": json_value(st.cash),
        "equity": json_value(st.equity),
        "positions": [
            {
                "symbol": str(s),
                "quantity": json_value(p.quantity),
                "avg_price": json_value(p.avg_price),
                "mark": json_value(marks[s].price) if s in marks else None,
                "realised_pnl": json_value(p.realised_pnl),
                "fees_paid": json_value(p.fees_paid),
            }
            for s, p in sorted(st.positions.items())
        ],
        "open_orders": []
        if cp is None
        else [
            {
                "client_order_id": o.client_order_id,
                "symbol": str(o.symbol),
                "side": o.side.value,
                "quantity": json_value(o.quantity),
                "limit_price": json_value(o.limit_price),
            }
            for o in cp.portfolio.open_orders
        ],
        "reconciliation": None
        if rec is None
        else {
            "at": rec.at.isoformat(),
            "ok": rec.ok,
            "headline": rec.headline(),
            "summary": rec.summary,
            **dict(rec.details),
        },
    }


def _print_status(doc: dict[str, Any], st: LiveAccountStatus) -> None:
    ex = doc["exchange"]
    venue = f"{ex['id']} {ex['market']}{' (sandbox)' if ex['sandbox'] else ' (REAL ACCOUNT)'}"
    console.print(f"live account {st.account} on {venue}", style="bold", markup=False)
    if st.checkpoint is None:
        console.print("no state stored yet: the account has not committed a bar or signal")
    else:
        state_style = "bold red" if doc["trading_state"] == "halted" else "bold"
        console.print(
            f"trading state {str(doc['trading_state']).upper()} since {doc['since']} "
            f"({doc['reason'] or 'no reason'})",
            style=state_style,
            markup=False,
        )
        console.print(
            f"cash {doc['cash']:,.2f}   equity {doc['equity']:,.2f}   "
            f"last bar {doc['market_time'] or '-'}",
            markup=False,
        )
    beat = st.session
    console.print(
        "session: none running (idle)"
        if beat is None
        else f"session: {beat.session_id} running (last heartbeat {beat.at:%H:%M:%S} UTC)",
        markup=False,
    )
    if doc["positions"]:
        table = Table(title="positions", title_justify="left")
        for c in ("symbol", "quantity", "avg_price", "mark", "realised_pnl", "fees_paid"):
            table.add_column(c)
        for p in doc["positions"]:
            table.add_row(*[table_cell(v) for v in p.values()])
        console.print(table)
    else:
        console.print("positions: none")
    if doc["open_orders"]:
        table = Table(title="open orders", title_justify="left")
        for c in ("client_order_id", "symbol", "side", "quantity", "limit_price"):
            table.add_column(c)
        for o in doc["open_orders"]:
            table.add_row(*[table_cell(v) for v in o.values()])
        console.print(table)
    else:
        console.print("open orders: none")
    rec = st.reconciliation
    if rec is None:
        console.print("last reconciliation: none stored yet")
        return
    console.print(rec.headline(), style=None if rec.ok else "bold red", markup=False)
    d = doc["reconciliation"]
    adopted = [*d.get("adopted_orders", ()), *d.get("adopted_fills", ())]
    if adopted:
        console.print(f"  adopted: {', '.join(map(str, adopted))}", markup=False)
    for o in d.get("foreign_orders", ()):
        console.print(
            f"  foreign order (left alone): {o.get('order_id')} {o.get('client_order_id') or ''} "
            f"{o.get('side')} {o.get('amount')} {o.get('symbol')}",
            markup=False,
        )
    diffs = d.get("differences", ())
    if diffs:
        table = Table(title="differences (here vs the exchange)", title_justify="left")
        for c in ("what", "here", "exchange", "within tolerance"):
            table.add_column(c)
        for x in diffs:
            what = "cash" if x.get("symbol") is None else f"{x['symbol']} position"
            table.add_row(
                *[table_cell(v) for v in (what, x.get("local"), x.get("venue"), x.get("within"))]
            )
        console.print(table)
