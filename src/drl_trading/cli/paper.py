"""`drl-trading paper`: the online workflow in one process with a paper broker.

Replay (stored bars, as fast as possible or at a speed multiple) or a synthetic live stream go
through the same handlers the distributed services run: ingest → preprocess (online) → inference
→ execution. A live table shows progress; at the end (replay exhausted, ``--max-bars`` or Ctrl-C)
the session is summarised and written as JSON.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.live import Live
from rich.table import Table

from drl_trading.app.runtime import EmbeddedRuntime
from drl_trading.cli.context import console, err_console, fail, state
from drl_trading.cli.trades import poll_switches
from drl_trading.common.adapter.system_clock import ManualClock, SystemClock
from drl_trading.common.costs import CostModel
from drl_trading.common.domain import Symbol, TimeRange, parse_symbols, to_micros
from drl_trading.common.latency import LatencyHistogram

PaperSource = Literal["replay", "synthetic-live", "ccxt-live"]


def paper(
    ctx: typer.Context,
    symbols: Annotated[str, typer.Option("--symbols", "-s", help="Comma-separated.")],
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="NAME@alias or NAME/version (default: champion)."),
    ] = None,
    source: Annotated[
        PaperSource,
        typer.Option(
            help="replay (stored bars), synthetic-live, or ccxt-live (the exchange of "
            "ingest.ccxt, polled for closed 1m candles; market time is the wall clock)."
        ),
    ] = "replay",
    start: Annotated[str | None, typer.Option(help="Replay start (inclusive), UTC.")] = None,
    end: Annotated[str | None, typer.Option(help="Replay end (exclusive), UTC.")] = None,
    speed: Annotated[
        float | None, typer.Option(help="Market minutes per 60 s of wall time; default: max.")
    ] = None,
    max_bars: Annotated[int | None, typer.Option(help="Stop after this many 1m bars.")] = None,
    record_features: Annotated[
        Path | None, typer.Option(help="Write every served feature vector to this Parquet file.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Session report JSON (default: reports/).")
    ] = None,
    session: Annotated[
        str,
        typer.Option(help="Paper account name: its portfolio and records persist across runs."),
    ] = "default",
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Start the paper account over (deletes its state).")
    ] = False,
) -> None:
    """Paper-trade a registered model on replayed or synthetic live bars (all services here)."""
    import polars as pl

    from drl_trading.app.infrastructure import feature_set_for
    from drl_trading.app.session import ClockedSource, SessionRecorder
    from drl_trading.evaluation.metrics import periods_per_year
    from drl_trading.inference.core.service import ModelMismatchError

    settings = state(ctx).settings()
    try:
        syms = parse_symbols(symbols)
        if source == "replay":
            if start is None or end is None:
                raise ValueError("--source replay needs --start and --end")
            rng: TimeRange | None = TimeRange.parse(start, end)
        else:
            rng = TimeRange.parse(start, "2100-01-01") if start else None
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    account_dir = settings.home / "paper" / session
    if fresh and account_dir.exists():
        shutil.rmtree(account_dir)
    account_dir.mkdir(parents=True, exist_ok=True)
    if settings.execution.store != "memory" and settings.execution.store_path is None:
        settings = settings.model_copy(
            update={
                "execution": settings.execution.model_copy(
                    update={"store_path": account_dir / f"execution.{settings.execution.store}"}
                )
            }
        )
    spec = feature_set_for(settings)
    # a live stream starts on the base grid, so its first base bar is complete
    first_live = rng.start if rng else spec.base_timeframe.floor(datetime.now(UTC))
    market_clock = ManualClock(first_live)
    clock: Any = SystemClock() if source == "ccxt-live" else market_clock
    recorded: list[dict[str, Any]] = []
    stage = LatencyHistogram()
    with EmbeddedRuntime.open(settings) as runtime:
        from drl_trading.app.ingest import build_live_source

        inner, history = build_live_source(
            settings,
            source,
            syms,
            runtime.market_data,
            clock,
            first_live,
            rng.end if source == "replay" and rng else None,
            speed,
        )
        try:
            clocked = ClockedSource(inner, None if source == "ccxt-live" else market_clock)
            online = runtime.enable_online(
                clocked,
                model_ref=model,
                clock=clock,
                history=history,
                symbols=syms,
            )
        except (LookupError, ModelMismatchError) as exc:
            raise fail(f"{type(exc).__name__}: {exc}") from None
        if record_features is not None and runtime.preprocess.online is not None:
            cols = spec.columns

            def keep(symbol: Symbol, row: Any) -> None:
                recorded.append(
                    {"symbol": str(symbol), "event_time": row.event_time}
                    | dict(zip(cols, row.values, strict=True))
                )

            runtime.preprocess.online.on_row = keep
        live_from = spec.base_timeframe.floor(first_live)
        warmup = timedelta(days=1) if source == "replay" else spec.lookback() + timedelta(days=1)
        run = online.ingest.start(syms, live_from - warmup, live_from=live_from)
        runtime.run_until_idle()  # gap fill → catch-up → completed.catchup → streaming
        inference = online.inference.service
        execution = online.execution.service
        ex = settings.execution
        recorder = SessionRecorder(
            execution,
            list(syms),
            spec.base_timeframe,
            CostModel(ex.fee_bps, ex.slippage_bps, ex.min_order_notional),
            ex.initial_cash,
        )
        clocked.observers.append(recorder.on_bar)
        bars = 0
        paced = source != "replay" or speed is not None
        base_us = spec.base_timeframe.micros
        curve: list[tuple[datetime, float, float]] = []  # (base close, equity, gross exposure)
        started = time.perf_counter()
        interrupted = False
        with Live(_status(online, 0, stage, 0.0), console=err_console, refresh_per_second=4) as lv:
            try:
                while max_bars is None or bars < max_bars:
                    t0 = time.perf_counter()
                    if online.ingest.pump(1) == 0:
                        break
                    runtime.run_until_idle()
                    stage.record(time.perf_counter() - t0)
                    if paced or bars % 64 == 63:
                        # the bar's order is acknowledged: persist the staged bars now (live),
                        # or every 64 bars in a replay as fast as possible
                        runtime.flush()
                    recorder.after_processing()
                    bars += 1
                    now = clocked.last.close_time if clocked.last else clock.now()
                    if to_micros(now) % base_us == 0:
                        # after the last symbol's bar of a base close (a later bar of the same
                        # minute replaces the earlier snapshot)
                        st = execution.status()
                        gross = sum(
                            abs(p.quantity) * st.marks.get(sym, 0.0)
                            for sym, p in st.positions.items()
                        )
                        point = (now, st.equity, gross / st.equity if st.equity else 0.0)
                        if curve and curve[-1][0] == now:
                            curve[-1] = point
                        else:
                            curve.append(point)
                    if bars % 20 == 0:
                        switched = poll_switches(account_dir, execution)
                        if switched:
                            err_console.print(f"[yellow]{switched}[/yellow]")
                    if bars % 200 == 0:
                        lv.update(_status(online, bars, stage, time.perf_counter() - started))
            except KeyboardInterrupt:
                interrupted = True
            lv.update(_status(online, bars, stage, time.perf_counter() - started))
        elapsed = time.perf_counter() - started
        ppy = periods_per_year(spec.base_timeframe.minutes)
        per_symbol = recorder.result(ppy, settings.training.random_agent_seeds, elapsed)
        status = execution.status()
        inf = inference.status()
        counts = {k.value: v for k, v in status.counts.items()}
        report = {
            "session": run.correlation_id,
            "account": session,
            "source": source,
            "symbols": [str(s) for s in syms],
            "model": f"{inf.model_name}/{inf.model_version}",
            "bars": bars,
            "seconds": round(elapsed, 3),
            "interrupted": interrupted,
            "equity": status.equity,
            "cash": status.cash,
            "initial_cash": settings.execution.initial_cash,
            "total_return": status.equity / settings.execution.initial_cash - 1.0,
            "max_drawdown_seen": status.drawdown,
            "trading_state": status.state.value,
            "positions": {
                str(s): {"quantity": p.quantity, "avg_price": p.avg_price}
                for s, p in status.positions.items()
            },
            "records": counts,
            "predictions": inf.predictions,
            "skips": inf.skips,
            "capital": {str(k): v for k, v in recorder.capital.items()},
            "capital_mode": ex.capital,
            "metrics": _session_metrics(curve, ppy),
            "per_symbol": per_symbol.to_dict()["symbols"],
            "latency_ms": {
                "bar_to_ack": _ms(stage.snapshot()),
                "stages": {k: _ms(v) for k, v in online.stages.snapshot().items()},
                "inference": {k: _ms(v) for k, v in inf.latency.items()},
            },
            "ingest": {
                k: v for k, v in asdict(online.ingest.stats()).items() if isinstance(v, int)
            },
        }
    path = out or settings.reports_dir / f"paper-{run.correlation_id[:12]}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str))
    html_path = path.with_suffix(".html")
    if per_symbol.symbols:
        html_path.write_text(_html_report(report, per_symbol, spec.base_timeframe.minutes))
    if record_features is not None:
        pl.DataFrame(recorded).write_parquet(record_features)
        console.print(f"feature vectors: {len(recorded)} written to {record_features}")
    _print_report(report)
    console.print(f"session report: {path}")
    if per_symbol.symbols:
        console.print(f"HTML report: {html_path}")


def _session_metrics(curve: list[tuple[datetime, float, float]], ppy: float) -> dict[str, Any]:
    """The backtest's equity-curve metrics of the whole account over the session's base-bar
    closes (per-symbol metrics, trades and baselines are under ``per_symbol``)."""
    import numpy as np

    from drl_trading.evaluation.metrics import compute_metrics
    from drl_trading.evaluation.trace import SimulationTrace

    if len(curve) < 2:
        return {}
    times = np.array([t.replace(tzinfo=None) for t, _, _ in curve], dtype="datetime64[us]")
    equity = np.array([e for _, e, _ in curve], dtype=np.float64)
    exposure = np.array([x for _, _, x in curve[1:]], dtype=np.float64)
    n = len(curve) - 1
    level = equity / equity[0]  # the account as its own price series
    trace = SimulationTrace(
        symbol="portfolio",
        times=times,
        open=level,
        close=level,
        equity=equity,
        position=np.clip(exposure, 0.0, 1.0),
        units=exposure,
        cost=np.zeros(n),
        fees=np.zeros(n),
        costs=CostModel(0.0, 0.0),
    )
    m = compute_metrics(trace, ppy).to_dict()
    keep = (
        "total_return",
        "cagr",
        "annual_volatility",
        "sharpe",
        "sortino",
        "calmar",
        "max_drawdown",
        "max_drawdown_duration_days",
        "exposure",
        "n_steps",
        "start",
        "end",
    )
    return {k: m[k] for k in keep if k in m}


def _html_report(report: dict[str, Any], result: Any, base_minutes: int) -> str:
    from drl_trading.evaluation.report import BacktestReport
    from drl_trading.evaluation.report_html import render_report

    start = min(s.model.start for s in result.symbols)
    end = max(s.model.end for s in result.symbols)
    metadata = {
        "session": report["session"],
        "account": report["account"],
        "model": report["model"],
        "source": report["source"],
        "capital": ", ".join(f"{k} {v:,.2f}" for k, v in report["capital"].items())
        + f" ({report['capital_mode']})",
        "bars (1m)": str(report["bars"]),
        "decision bars": f"{base_minutes}m closes",
        "trading state": report["trading_state"],
    }
    return render_report(
        BacktestReport(
            title=f"Paper session {report['session'][:12]}",
            subtitle=f"{start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} UTC",
            metadata=metadata,
            sections=[s.section() for s in result.symbols],
        )
    )


def _ms(snap: Any) -> dict[str, float]:
    return {k: round(getattr(snap, k) * 1e3, 3) for k in ("p50", "p99", "max")} | {
        "count": snap.count
    }


def _status(online: Any, bars: int, stage: LatencyHistogram, elapsed: float) -> Table:
    ex = online.execution.service.status()
    inf = online.inference.service.status()
    snap = stage.snapshot()
    t = Table(title="paper trading", show_header=True)
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
    t = Table(title=f"paper session {report['session'][:12]} ({report['model']})")
    t.add_column("")
    t.add_column("value", justify="right")
    t.add_row("bars", str(report["bars"]))
    t.add_row("equity", f"{report['equity']:,.2f}")
    t.add_row("total return", f"{report['total_return']:.2%}")
    t.add_row("trading state", report["trading_state"])
    for key, label in (("sharpe", "Sharpe"), ("max_drawdown", "max drawdown")):
        value = report["metrics"].get(key)
        if value is not None:
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
                f"{m['sharpe']:.2f}",
                f"{m['max_drawdown']:.2%}",
                str(m["n_trades"]),
                f"{m['fees_paid']:.3%}",
            )
        console.print(per)
