"""`drl-trading paper`: the online workflow in one process with a paper broker.

Replay (stored bars, as fast as possible or at a speed multiple) or a synthetic live stream go
through the same handlers the distributed services run: ingest → preprocess (online) → inference
→ execution (`drl_trading.app.online_session`). A live table shows progress; at the end (replay
exhausted, ``--max-bars`` or Ctrl-C) the session is summarised and written as JSON and HTML.
A replay with no stored bars for a symbol or range, or over a range the account has already
traded, stops before anything starts (exit 1, the message names what is stored, ``--fresh`` and
``--session``); a session that received no bar says so and exits 1 (130 when interrupted).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.live import Live
from rich.table import Table

from drl_trading.cli.context import console, err_console, fail, state
from drl_trading.cli.options import MaxBars, ReplayEnd, ReplayStart, SessionModel, SessionReport
from drl_trading.common.domain import Symbol, Timeframe, TimeRange, parse_symbols

if TYPE_CHECKING:
    from drl_trading.app.online_session import SessionProgress, SessionRequest
    from drl_trading.app.settings import AppSettings

PaperSource = Literal["replay", "synthetic-live", "ccxt-live"]


def _positive_speed(value: float | None) -> float | None:
    """``--speed`` is a multiple of real time: zero or less would never advance the replay."""
    if value is not None and not value > 0:
        raise typer.BadParameter(
            f"must be > 0 (got {value:g}); leave it out to replay as fast as possible"
        )
    return value


def paper(
    ctx: typer.Context,
    symbols: Annotated[str, typer.Option("--symbols", "-s", help="Comma-separated.")],
    model: SessionModel = None,
    source: Annotated[
        PaperSource,
        typer.Option(
            help="replay (stored bars, at the timeframe they were stored at), synthetic-live, "
            "or ccxt-live (the exchange of ingest.ccxt, polled for closed candles of "
            "--timeframe; market time is the wall clock)."
        ),
    ] = "replay",
    start: ReplayStart = None,
    end: ReplayEnd = None,
    speed: Annotated[
        float | None,
        typer.Option(
            help="Market minutes per 60 s of wall time (> 0); default: max.",
            callback=_positive_speed,
        ),
    ] = None,
    max_bars: MaxBars = None,
    timeframe: Annotated[
        Timeframe | None,
        typer.Option(
            "--timeframe",
            help="Bars of synthetic-live and ccxt-live (default 1m); a replay streams its "
            "stored bars' own timeframe.",
        ),
    ] = None,
    record_features: Annotated[
        Path | None, typer.Option(help="Write every served feature vector to this Parquet file.")
    ] = None,
    out: SessionReport = None,
    session: Annotated[
        str,
        typer.Option(
            help="Paper account name: its portfolio and records persist across runs, and a "
            "rerun continues from its last bar."
        ),
    ] = "default",
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Start the paper account over (deletes its state).")
    ] = False,
) -> None:
    """Paper-trade a registered model on replayed or synthetic live bars (all services here)."""
    from drl_trading.app.online_session import SessionRequest

    settings = state(ctx).settings()
    syms, rng = session_inputs(symbols, source, start, end, max_bars, timeframe)
    request = SessionRequest(
        symbols=tuple(syms),
        source=source,
        range=rng,
        speed=speed,
        max_bars=max_bars,
        timeframe=timeframe,
        model_ref=model,
        account=session,
        fresh=fresh,
        record_features=record_features,
        out=out,
    )
    run_session(settings, request)


def session_inputs(
    symbols: str,
    source: PaperSource,
    start: str | None,
    end: str | None,
    max_bars: int | None,
    timeframe: Timeframe | None,
) -> tuple[list[Symbol], TimeRange | None]:
    """The symbols and range of a session's options (`paper`, `live`); a bad combination exits
    2 with one line."""
    try:
        syms = parse_symbols(symbols)
        if source == "replay":
            if start is None or end is None:
                raise ValueError("--source replay needs --start and --end")
            rng: TimeRange | None = TimeRange.parse(start, end)
        else:
            rng = TimeRange.parse(start, "2100-01-01") if start else None
        if max_bars is not None and max_bars < 1:
            raise ValueError(f"--max-bars must be at least 1, got {max_bars}")
        if timeframe is not None and source == "replay":
            raise ValueError(
                "--timeframe is for synthetic-live and ccxt-live: a replay streams the "
                "timeframe its bars were stored at (leave --timeframe out)"
            )
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    return syms, rng


def run_session(settings: AppSettings, request: SessionRequest) -> None:
    """Run the online session of ``request`` with the live table, then print its report and
    where it was written; a session that received no bar exits 1 (130 when interrupted)."""
    from drl_trading.app.online_session import run_online_session
    from drl_trading.app.session_range import SessionStartError

    display = _LiveStatus(f"{request.broker} trading")
    try:
        outcome = run_online_session(
            settings,
            request,
            on_progress=display.update,
            on_notice=lambda line: err_console.print(f"[yellow]{line}[/yellow]"),
        )
    except SessionStartError as exc:
        raise fail(str(exc)) from None
    finally:
        display.stop()
    if outcome.features_written is not None:
        console.print(
            f"feature vectors: {outcome.features_written} written to {request.record_features}"
        )
    _print_report(outcome.report)
    console.print(f"session report: {outcome.json_path}")
    if outcome.html_path is not None:
        console.print(f"HTML report: {outcome.html_path}")
    if outcome.report["bars"] == 0:
        interrupted = outcome.report["interrupted"]
        raise fail(
            f"the session received no bar from its {request.source} source "
            f"({'interrupted first' if interrupted else 'it ended first'}): nothing was traded",
            130 if interrupted else 1,
        )


class _LiveStatus:
    """The live progress table on stderr, from the first progress report to `stop`."""

    def __init__(self, title: str = "paper trading") -> None:
        self._live: Live | None = None
        self._title = title

    def update(self, progress: SessionProgress) -> None:
        table = _status(progress, self._title)
        if self._live is None:
            self._live = Live(table, console=err_console, refresh_per_second=4)
            self._live.start()
        else:
            self._live.update(table)

    def stop(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None


def _status(progress: SessionProgress, title: str = "paper trading") -> Table:
    online, bars, elapsed = progress.online, progress.bars, progress.elapsed
    ex = online.execution.service.status()
    inf = online.inference.service.status()
    snap = progress.bar_to_ack
    reconciled = online.execution.service.last_reconciliation
    t = Table(
        title=title,
        show_header=True,
        caption=reconciled.summary() if reconciled is not None else None,
    )
    t.add_column("bars")
    t.add_column("bars/s", justify="right")
    t.add_column("equity", justify="right")
    t.add_column("state")
    t.add_column("positions")
    t.add_column("last signal")
    t.add_column("bar→ack p50/p99 ms", justify="right")
    last = inf.last_predictions
    sig = (
        ", ".join(f"{s}:{p.action.value}@{p.confidence:.2f}" for s, p in sorted(last.items()))
        or "-"
    )
    pos = ", ".join(f"{s}:{p.quantity:.4g}" for s, p in sorted(ex.positions.items()) if p.quantity)
    t.add_row(
        str(bars),
        f"{bars / elapsed:,.0f}" if elapsed > 0 else "-",
        f"{ex.equity:,.2f}",
        ex.state.value,
        pos or "flat",
        sig,
        f"{snap.p50 * 1e3:.2f}/{snap.p99 * 1e3:.2f}" if snap.count else "-",
    )
    return t


def _print_report(report: dict[str, Any]) -> None:
    kind = report.get("broker", "paper")
    t = Table(title=f"{kind} session {report['session'][:12]} ({report['model']})")
    t.add_column("")
    t.add_column("value", justify="right")
    t.add_row("bars", str(report["bars"]))
    if report.get("continued_from"):
        t.add_row("continued from", f"{report['continued_from']:%Y-%m-%d %H:%M} UTC")
    t.add_row("equity", f"{report['equity']:,.2f}")
    t.add_row("total return", f"{report['total_return']:.2%}")
    if report.get("continued_from"):
        t.add_row("account return (since its start)", f"{report['account_return']:.2%}")
    t.add_row("fees paid", f"{report['fees_paid']:,.2f}")
    t.add_row("trading state", report["trading_state"])
    if report.get("exchange"):
        x = report["exchange"]
        t.add_row("exchange", f"{x['id']} {x['market']}{' (sandbox)' if x['sandbox'] else ''}")
    if report.get("reconciliation"):
        t.add_row("last reconciliation", report["reconciliation"])
    for key, label in (("sharpe", "Sharpe"), ("max_drawdown", "max drawdown")):
        value = report["metrics"].get(key)
        if value is not None:
            label += _annualised_note(report["metrics"], key)
            t.add_row(label, f"{value:.2%}" if key == "max_drawdown" else f"{value:.2f}")
    t.add_row("predictions", str(report["predictions"]))
    for kind, n in report["records"].items():
        t.add_row(f"{kind}s", str(n))
    lat = report["latency_ms"]["bar_to_ack"]
    if lat["count"]:
        t.add_row("bar → ack p50 / p99 / max (ms)", f"{lat['p50']} / {lat['p99']} / {lat['max']}")
    for name, st in report["latency_ms"]["stages"].items():
        if st["count"]:
            t.add_row(f"· {name} p50 / p99 (ms, per decision)", f"{st['p50']} / {st['p99']}")
    console.print(t)
    rows = report.get("per_symbol") or {}
    if rows:
        per = Table(title="per symbol (the backtest's metrics over the session's bars)")
        for col in ("symbol", "return", "buy & hold", "Sharpe", "max DD", "trades", "fees"):
            per.add_column(col, justify="left" if col == "symbol" else "right")
        for sym, r in rows.items():
            m, bh = r["model"], r["baselines"]["buy-and-hold"]
            per.add_row(
                sym,
                f"{m['total_return']:.2%}",
                f"{bh['total_return']:.2%}",
                f"{m['sharpe']:.2f}{_annualised_note(r, 'sharpe')}",
                f"{m['max_drawdown']:.2%}",
                str(m["n_trades"]),
                f"{m['fees_paid']:.3%}",
            )
        console.print(per)


def _annualised_note(block: dict[str, Any], key: str) -> str:
    """`` (annualised from X days)`` where the report's ``annualisation`` block marks ``key``
    as extrapolated from a range shorter than `MIN_ANNUALISED_DAYS`; reports written before
    the block existed get no mark."""
    ann = block.get("annualisation")
    if not ann or key not in ann.get("extrapolated", ()):
        return ""
    from drl_trading.evaluation.annualisation import Annualisation

    return f" ({Annualisation(ann['span_days'], ann['min_days']).note})"
