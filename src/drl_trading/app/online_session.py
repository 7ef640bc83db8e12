"""The online session in one process: ingest → preprocess → inference → execution on live bars.

`run_online_session` is what `drl-trading paper` and `drl-trading live` run (the broker is the
request's: paper, or the exchange account of ``execution.live``): it opens the
embedded runtime, composes the online services on the account's store, catches up, then pumps
one live bar at a time through every handler, records what execution held at each base close
(`SessionRecorder`), and ends with the session report (JSON + the backtest's HTML report).
Bars are of the data timeframe: a replay's is the finest stored over its range
(`app.data_timeframe`), a live source's the one asked (1m by default); base closes, warm-ups and
annualisation follow the symbols' market calendar (``markets``).
Before any of it, `app.session_range` checks that a replay has stored bars for every symbol and
where the account stands: a session on an account that already traded past its start continues
from the account's last bar, and its report covers the continuation only (return, fees and
record counts from the account's state when the session started).
While it runs it beats a heartbeat into the account's store and its execution service applies
the kill/resume requests left there (`app.paper_account`) before its next signal or bar, and
between bars. Display is the caller's: it gets a `SessionProgress` every ``progress_every``
bars and a line for each applied request.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import structlog

from drl_trading.app.data_timeframe import data_timeframe
from drl_trading.app.heap import HeapSettler
from drl_trading.app.infrastructure import build_calendars, build_strategy, feature_set_for
from drl_trading.app.ingest import LiveSourceKind
from drl_trading.app.paper_account import (
    LIVE_MARKER,
    SessionHeartbeat,
    account_dir,
    account_market_time,
    start_account_over,
    store_path,
)
from drl_trading.app.runtime import EmbeddedRuntime, OnlineComponents
from drl_trading.app.session_range import (
    SessionStartError,
    plan_session,
    stream_start,
    window_start,
)
from drl_trading.app.settings import AppSettings
from drl_trading.common.adapter.system_clock import ManualClock, SystemClock
from drl_trading.common.bar_windows import BarWindows, bars_per_year, history_start
from drl_trading.common.calendar import MarketCalendar
from drl_trading.common.costs import CostModel
from drl_trading.common.domain import Symbol, Timeframe, TimeRange, from_micros, to_micros
from drl_trading.common.latency import LatencyHistogram, LatencySnapshot
from drl_trading.common.ports import Clock, MarketDataRepository
from drl_trading.execution.core.records import ControlRequest
from drl_trading.execution.core.service import ExecutionService, ExecutionStatus
from drl_trading.strategy.feature_set import FeatureSetSpec
from drl_trading.strategy.signals import signal_rules

if TYPE_CHECKING:
    from drl_trading.execution.adapter.ccxt_broker import CcxtBroker

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class SessionRequest:
    symbols: tuple[Symbol, ...]
    source: LiveSourceKind = "replay"
    range: TimeRange | None = None
    """Replay: the bars to replay (required). Live: ``range.start`` is the first live bar
    (default: now, at the start of its base window on the market's calendar)."""
    speed: float | None = None
    """Market minutes per wall minute; None: as fast as possible (replay)."""
    max_bars: int | None = None
    """Stop after this many bars (of the data timeframe)."""
    timeframe: Timeframe | None = None
    """The live source's bars (synthetic-live, ccxt-live; default 1m). A replay streams its
    stored bars' own (the finest stored in its range); asking another is refused."""
    model_ref: str | None = None
    account: str = "default"
    fresh: bool = False
    """Start the account over: its state deleted in its store once every start check passed
    (stored bars, the model), so a refused session keeps it; refused while another session
    runs on the account (`app.paper_account.start_account_over`)."""
    record_features: Path | None = None
    """Write every served feature vector to this Parquet file."""
    out: Path | None = None
    """Report JSON path (default: reports/<broker>-<session>.json; the HTML beside it)."""
    broker: Literal["paper", "live"] = "paper"
    """paper: the paper broker; live: the exchange account of ``execution.live`` through the
    ccxt broker (`app.live_broker`), which is also the venue the service reconciles with."""


@dataclass(frozen=True, slots=True)
class SessionProgress:
    bars: int
    elapsed: float
    """Wall seconds since streaming began."""
    bar_to_ack: LatencySnapshot
    online: OnlineComponents


@dataclass(frozen=True, slots=True)
class SessionOutcome:
    report: dict[str, Any]
    json_path: Path
    html_path: Path | None
    features_written: int | None = None
    """Feature vectors written to ``record_features`` (None when not asked)."""
    notices: list[str] = field(default_factory=list)


_HEAP = HeapSettler()
"""One per process: a second session in the same process (a notebook, the tests) freezes the heap
again only if modules were imported since."""


def run_online_session(
    settings: AppSettings,
    request: SessionRequest,
    *,
    on_progress: Callable[[SessionProgress], None] | None = None,
    on_notice: Callable[[str], None] | None = None,
    progress_every: int = 200,
) -> SessionOutcome:
    """Runs until the source is exhausted, ``max_bars`` or Ctrl-C (the report then says
    ``interrupted``). Raises `SessionStartError` (before the model is loaded) when a replayed
    symbol has no stored bars in the range or the account already traded the whole range,
    when the model cannot serve (other features, or another market calendar than the
    symbols'), and for ``fresh`` while another session runs on the account (nothing deleted
    then). Usage errors before any work: symbols on different calendars (`MixedCalendarsError`)
    or stored at different timeframes (`MixedTimeframesError`), a feature set whose base is
    finer than the data (`BaseTimeframeError`)."""
    from drl_trading.app.ingest import build_live_source
    from drl_trading.evaluation.account import account_metrics
    from drl_trading.execution.core.session_recorder import SessionRecorder, calendar_close
    from drl_trading.inference.core.service import ModelMismatchError
    from drl_trading.ingest.adapter.clocked_source import ClockedSource
    from drl_trading.preprocess.core.checks import require_base_at_least

    source, rng, syms = request.source, request.range, list(request.symbols)
    if source == "replay" and rng is None:
        raise ValueError("a replay needs a start and an end")
    if request.max_bars is not None and request.max_bars < 1:
        raise ValueError(f"max_bars must be at least 1, got {request.max_bars}")
    folder = account_dir(settings, request.account)
    _check_account_kind(settings, request)
    settings = _on_account_store(settings, request.account)
    broker = _live_broker(settings, request) if request.broker == "live" else None
    if broker is not None:
        # a live account's capital is what the exchange holds (the quote balance)
        ex_live = settings.execution.model_copy(update={"initial_cash": broker.cash})
        settings = settings.model_copy(update={"execution": ex_live})
    spec = feature_set_for(settings)
    base = spec.base_timeframe
    calendars = build_calendars(settings)
    calendar = calendars.for_symbols(syms)
    # a live stream starts at a base window's start, so its first base bar is complete
    requested = rng.start if rng else window_start(datetime.now(UTC), base, calendar)
    recorded: list[dict[str, Any]] = []
    stage = LatencyHistogram()
    notices: list[str] = []

    def notice(line: str) -> None:
        notices.append(line)
        if on_notice is not None:
            on_notice(line)

    # the heartbeat (entered on ``beats``) stops before the runtime closes the account's store
    with EmbeddedRuntime.open(settings) as runtime, ExitStack() as beats:
        if broker is not None:
            beats.callback(broker.close)  # its order stream's thread, even if composing fails
        bar_tf = _session_timeframe(request, runtime.market_data)
        require_base_at_least(spec, bar_tf)  # before the model loads
        plan = plan_session(
            syms,
            source,
            requested,
            rng.end if source == "replay" and rng else None,
            account=request.account,
            account_time=None if request.fresh else account_market_time(settings, request.account),
            bars=runtime.market_data,
            timeframe=bar_tf,
            calendars=calendars,
        )
        folder.mkdir(parents=True, exist_ok=True)
        if broker is not None:
            _mark_live(folder, settings)
        for line in plan.notices:
            notice(line)
        first_live = stream_start(plan, base, calendar)
        market_clock = ManualClock(first_live)
        clock: Clock = SystemClock() if source == "ccxt-live" else market_clock
        inner, history = build_live_source(
            settings,
            source,
            syms,
            runtime.market_data,
            clock,
            first_live,
            rng.end if source == "replay" and rng else None,
            request.speed,
            timeframe=bar_tf,
        )
        try:
            clocked = ClockedSource(
                inner, None if source == "ccxt-live" else market_clock, calendars=calendars
            )
            online = runtime.enable_online(
                clocked,
                model_ref=request.model_ref,
                clock=clock,
                history=history,
                symbols=syms,
                timeframe=bar_tf,
                broker=broker,
            )
        except (LookupError, ModelMismatchError) as exc:
            raise SessionStartError(f"{type(exc).__name__}: {exc}") from None
        if request.fresh:  # every start check passed: only now is the account started over
            start_account_over(online.execution.service, settings, request.account)
        if request.record_features is not None and runtime.preprocess.online is not None:
            cols = spec.columns

            def keep(symbol: Symbol, row: Any) -> None:
                recorded.append(
                    {"symbol": str(symbol), "event_time": row.event_time}
                    | dict(zip(cols, row.values, strict=True))
                )

            runtime.preprocess.online.on_row = keep
        live_from = window_start(first_live, base, calendar)
        # the catch-up feeds the stored bars from this origin minus the feature set's look-back,
        # so every indicator has settled (`SEED_WEIGHT_TOLERANCE`) by the first live bar, as it
        # had in training; a live source first fetches that look-back (the replayed bars are
        # stored already)
        run = online.ingest.start(
            syms, _warmup_from(source, spec, calendar, live_from), live_from=live_from
        )
        session_id = run.correlation_id[:12]
        inference = online.inference.service
        execution = online.execution.service

        def applied(control: ControlRequest) -> None:
            at = control.applied_at or clock.now()
            notice(
                f"{control.kind.value} request #{control.control_id} applied at "
                f"{at:%Y-%m-%d %H:%M:%S} UTC (session {session_id}): {control.outcome}"
            )

        execution.attach(session_id, applied)
        beats.enter_context(SessionHeartbeat(online.execution.store, session_id))
        runtime.run_until_idle()  # gap fill → catch-up → completed.catchup → streaming
        heap = _HEAP  # catch-up imported Feast: off the collector's path (app/heap.py)
        heap.settle()
        # the account as the session found it: the report's figures are measured from here
        opening = execution.status()
        opening_fees = sum(p.fees_paid for p in opening.positions.values())
        marked = {s: m.as_of for s in syms if (m := execution.mark(s)) is not None}
        ex = settings.execution
        recorder = SessionRecorder(
            execution,
            syms,
            base,
            CostModel(ex.fee_bps, ex.slippage_bps, ex.min_order_notional),
            ex.initial_cash,
            calendars,
        )
        clocked.observers.append(recorder.on_bar)
        bars = 0
        paced = source != "replay" or request.speed is not None
        base_us = base.micros
        windows = None if calendar.always_open else BarWindows(calendar, base)

        def closed_at(t: datetime) -> datetime:
            """A bar's calendar close from its nominal one (what execution marks)."""
            return t if windows is None else from_micros(calendar_close(windows, to_micros(t)))

        def base_close(bar_open: datetime, bar_close: datetime) -> datetime | None:
            """The base close the bar ``[bar_open, bar_close)`` completes, if it does."""
            if windows is None:
                return bar_close if to_micros(bar_close) % base_us == 0 else None
            key = windows.key(to_micros(bar_open))
            if key is None:
                return None
            close = windows.close(key)
            return from_micros(close) if to_micros(closed_at(bar_close)) >= close else None

        curve: list[tuple[datetime, float, float]] = []  # (base close, equity, gross exposure)
        account_time = execution.market_time()
        if account_time is not None:
            # a continued account: its curves start from its state at its last bar, so that
            # what it held then (fills of its last orders, price moves) counts in the session
            recorder.start_from_account()
            curve.append((closed_at(account_time), opening.equity, _gross(opening)))
        started = time.perf_counter()
        interrupted = False

        def progress() -> None:
            if on_progress is not None:
                elapsed = time.perf_counter() - started
                on_progress(SessionProgress(bars, elapsed, stage.snapshot(), online))

        progress()
        try:
            while request.max_bars is None or bars < request.max_bars:
                t0 = time.perf_counter()
                if online.ingest.pump(1) == 0:
                    break
                runtime.run_until_idle()
                stage.record(time.perf_counter() - t0)
                if paced or bars % 64 == 63:
                    # the bar's order is acknowledged: persist the staged bars now (live), or
                    # every 64 bars in a replay as fast as possible
                    runtime.flush()
                recorder.after_processing()
                heap.settle()  # the bar is acknowledged: freeze what a handler imported
                last = clocked.last
                if last is None or last.close_time > marked.get(last.symbol, last.open_time):
                    bars += 1  # a bar new to the account (a continuation re-streams up to 4)
                now = (
                    base_close(last.open_time, last.close_time)
                    if last
                    else base_close(clock.now(), clock.now())
                )
                if now is not None:
                    # after the last symbol's bar of a base close (a later bar of the same
                    # minute replaces the earlier snapshot)
                    st = execution.status()
                    point = (now, st.equity, _gross(st))
                    if curve and curve[-1][0] == now:
                        curve[-1] = point
                    else:
                        curve.append(point)
                _apply_controls(execution)
                if bars % progress_every == 0:
                    progress()
        except KeyboardInterrupt:
            interrupted = True
        progress()
        elapsed = time.perf_counter() - started
        status = execution.status()
        # stopped inside a base bar: the curves end where the account does
        recorder.finish()
        closing = execution.market_time()
        if closing is not None:
            closing = closed_at(closing)
        if closing is not None and curve and closing > curve[-1][0]:
            curve.append((closing, status.equity, _gross(status)))
        ppy = bars_per_year(calendar, base, first_live, closing or first_live)
        # the simple rules as a backtest of this model runs them: the same lookbacks, short
        # only where the model's package and the strategy's signal rules both allow it
        model_shorts = inference.model.predictor.manifest.allow_short
        strategy = build_strategy(settings)
        per_symbol = recorder.result(
            ppy,
            settings.training.random_agent_seeds,
            elapsed,
            lookbacks=settings.training.baselines.lookbacks,
            allow_short={s: model_shorts and signal_rules(strategy, s).allow_short for s in syms},
        )
        inf = inference.status()
        start_equity = opening.equity
        report = {
            "session": run.correlation_id,
            "account": request.account,
            "source": source,
            "broker": request.broker,
            "symbols": [str(s) for s in syms],
            "model": f"{inf.model_name}/{inf.model_version}",
            "bars": bars,
            "seconds": round(elapsed, 3),
            "interrupted": interrupted,
            "continued_from": plan.continued_from,
            "first_bar": plan.first_bar,
            "start_equity": start_equity,
            "equity": status.equity,
            "cash": status.cash,
            "initial_cash": ex.initial_cash,
            "total_return": status.equity / start_equity - 1.0 if start_equity else 0.0,
            "account_return": status.equity / ex.initial_cash - 1.0,
            "fees_paid": sum(p.fees_paid for p in status.positions.values()) - opening_fees,
            "max_drawdown_seen": status.drawdown,
            "trading_state": status.state.value,
            "positions": {
                str(s): {"quantity": p.quantity, "avg_price": p.avg_price}
                for s, p in status.positions.items()
            },
            "records": {k.value: v - opening.counts.get(k, 0) for k, v in status.counts.items()},
            "account_records": {k.value: v for k, v in status.counts.items()},
            "predictions": inf.predictions,
            "skips": inf.skips,
            "capital": {str(k): v for k, v in recorder.capital.items()},
            "capital_mode": ex.capital,
            "metrics": account_metrics(curve, ppy),
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
    if (reconciled := execution.last_reconciliation) is not None:
        report["reconciliation"] = reconciled.summary()
    if broker is not None:
        live = settings.execution.live
        report["exchange"] = {"id": live.exchange, "market": live.market, "sandbox": live.sandbox}
    name = f"{request.broker}-{run.correlation_id[:12]}.json"
    path = request.out or settings.reports_dir / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str))
    html_path = None
    if per_symbol.symbols:
        html_path = path.with_suffix(".html")
        html_path.write_text(_html_report(report, per_symbol, bar_tf, base))
    written = None
    if request.record_features is not None:
        import polars as pl

        pl.DataFrame(recorded).write_parquet(request.record_features)
        written = len(recorded)
    return SessionOutcome(report, path, html_path, written, notices)


def _check_account_kind(settings: AppSettings, request: SessionRequest) -> None:
    """A paper session never runs on a live account nor a live one on a paper account: their
    books describe different money (refused before anything starts)."""
    folder = account_dir(settings, request.account)
    is_live = (folder / LIVE_MARKER).exists()
    if request.broker == "paper" and is_live:
        raise SessionStartError(
            f"account {request.account!r} ({folder}) trades on an exchange (`drl-trading "
            "live`): paper-trade another account with --session NAME"
        )
    has_state = (
        settings.execution.store == "sqlite" and store_path(settings, request.account).exists()
    )
    if request.broker == "live" and has_state and not is_live and not request.fresh:
        raise SessionStartError(
            f"account {request.account!r} ({folder}) is a paper account: trade live on "
            "another account with --session NAME"
        )


def _live_broker(settings: AppSettings, request: SessionRequest) -> CcxtBroker:
    """The exchange broker of ``execution.live`` for the session's symbols, on the wall clock
    (the exchange's time: cancel-after and order ages are real seconds, also in a replay)."""
    from drl_trading.app.live_broker import build_live_broker

    return build_live_broker(settings.execution.live, request.symbols, SystemClock())


def _mark_live(folder: Path, settings: AppSettings) -> None:
    live = settings.execution.live
    marker = {"exchange": live.exchange, "market": live.market, "sandbox": live.sandbox}
    (folder / LIVE_MARKER).write_text(json.dumps(marker))


def _session_timeframe(request: SessionRequest, market_data: MarketDataRepository) -> Timeframe:
    """The timeframe of the session's bars: a replay's stored one (`data_timeframe`; refused
    when ``request.timeframe`` asks another), a live source's ``request.timeframe`` (default
    1m)."""
    if request.source != "replay" or request.range is None:
        return request.timeframe or Timeframe.M1
    rng = request.range
    stored = data_timeframe(market_data, list(request.symbols), rng.start, rng.end)
    if request.timeframe is not None and request.timeframe is not stored:
        raise SessionStartError(
            f"the stored bars of {', '.join(request.symbols)} in {rng.start:%Y-%m-%d %H:%M} .. "
            f"{rng.end:%Y-%m-%d %H:%M} are {stored.value}, not {request.timeframe.value}: a "
            "replay streams the timeframe its bars were stored at (leave --timeframe out)"
        )
    return stored


def _warmup_from(
    source: LiveSourceKind, spec: FeatureSetSpec, calendar: MarketCalendar, live_from: datetime
) -> datetime:
    """Where the catch-up starts: a replay one day of base bars before ``live_from`` (counted
    in the market's bars: the session before a Monday is Friday's), a live source the feature
    set's history start (`FeatureSetSpec.history_start`), which it fetches first."""
    if source != "replay":
        return spec.history_start(calendar, live_from)
    if calendar.always_open:
        return live_from - timedelta(days=1)
    base = spec.base_timeframe
    return history_start(calendar, base, live_from, max(1, 1440 // base.minutes))


def _gross(status: ExecutionStatus) -> float:
    """Gross exposure as a fraction of equity (0.0 for an account without equity)."""
    gross = sum(abs(p.quantity) * status.marks.get(s, 0.0) for s, p in status.positions.items())
    return gross / status.equity if status.equity else 0.0


def _apply_controls(execution: ExecutionService) -> None:
    """Between bars, apply the pending kill/resume requests (those of a bar that reached no
    service too). A failure here stops nothing: the service applies them before its next
    signal or bar, where the bus retries what fails."""
    try:
        execution.apply_controls()
    except Exception as exc:
        log.warning("control requests not applied between bars", error=repr(exc))


def _on_account_store(settings: AppSettings, account: str) -> AppSettings:
    """The account's execution store lives in its folder unless the configuration names one."""
    ex = settings.execution
    if ex.store == "memory" or ex.store_path is not None:
        return settings
    path = store_path(settings, account)
    return settings.model_copy(update={"execution": ex.model_copy(update={"store_path": path})})


def _html_report(
    report: dict[str, Any], result: Any, data_timeframe: Timeframe, base: Timeframe
) -> str:
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
        f"bars ({data_timeframe.value})": str(report["bars"]),
        "decision bars": f"{base.value} closes",
        "trading state": report["trading_state"],
    }
    return render_report(
        BacktestReport(
            title=f"{str(report.get('broker', 'paper')).capitalize()} session "
            f"{report['session'][:12]}",
            subtitle=f"{start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} UTC",
            metadata=metadata,
            sections=[s.section() for s in result.symbols],
        )
    )


def _ms(snap: LatencySnapshot) -> dict[str, float]:
    return {k: round(getattr(snap, k) * 1e3, 3) for k in ("p50", "p99", "max")} | {
        "count": snap.count
    }
