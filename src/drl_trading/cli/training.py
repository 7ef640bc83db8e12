"""`drl-trading train`, `backtest` and `quickstart`: the offline workflow's second half."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from drl_trading.app.offline_workflow import OfflineWorkflow, WorkflowError
from drl_trading.app.settings import AppSettings
from drl_trading.cli.context import console, err_console, fail, state, symbols_and_range
from drl_trading.cli.durations import parse_duration
from drl_trading.cli.ingest import ingest_with_progress, print_ingest_report, resolve_range
from drl_trading.cli.options import (
    DataTimeframe,
    End,
    FeeBps,
    HistorySource,
    SlippageBps,
    SourcePath,
    Start,
)
from drl_trading.cli.pipeline import print_preprocess_outcome, run_preprocess
from drl_trading.cli.progress import progress_bar, train_bar
from drl_trading.common.domain import Timeframe, TimeRange, parse_symbols
from drl_trading.evaluation.annualisation import Annualisation, annualisation
from drl_trading.ingest.core.service import TrainingDataRequest
from drl_trading.training.core.config import WindowKind

if TYPE_CHECKING:
    from drl_trading.evaluation.backtest import BacktestResult

METRIC_ROWS: tuple[tuple[str, str, str], ...] = (
    ("total_return", "total return", "pct"),
    ("cagr", "CAGR", "pct"),
    ("annual_volatility", "volatility (ann.)", "pct"),
    ("sharpe", "Sharpe", "num"),
    ("sortino", "Sortino", "num"),
    ("calmar", "Calmar", "num"),
    ("max_drawdown", "max drawdown", "pct"),
    ("max_drawdown_duration_days", "max DD duration (days)", "num"),
    ("n_trades", "trades", "int"),
    ("win_rate", "win rate", "pct"),
    ("profit_factor", "profit factor", "num"),
    ("avg_holding_bars", "avg holding (bars)", "num"),
    ("turnover", "turnover", "num"),
    ("exposure", "exposure", "pct"),
    ("fees_paid", "fees paid", "pct"),
)


def _fmt(value: Any, kind: str, attr: str = "", ann: Annualisation | None = None) -> str:
    """``value`` as a table cell; with ``ann`` (the range's annualisation) an annualised figure
    ``attr`` over a short range is omitted (`annualisation`: CAGR, Calmar)."""
    if ann is not None and ann.omitted(attr):
        return ann.omitted_text
    if value is None:
        return "-"
    v = float(value)
    if math.isinf(v):
        return "inf"
    if math.isnan(v):
        return "nan"
    if kind == "pct":
        return f"{v:.2%}"
    if kind == "int":
        return f"{int(v)}"
    return f"{v:.2f}"


def _label(label: str, attr: str, ann: Annualisation) -> str:
    if not ann.extrapolated(attr):
        return label
    return f"{label.removesuffix(' (ann.)')} ({ann.note})"


def print_backtest(result: BacktestResult, title: str) -> None:
    """One table per symbol, after the costs line. Over a range shorter than
    `MIN_ANNUALISED_DAYS` CAGR and Calmar read "n/a" and volatility, Sharpe and Sortino are
    labelled with the days they were annualised from."""
    if result.costs_text is not None:
        console.print(result.costs_text)
    if result.annualisation is not None:
        console.print(f"annualised with {result.annualisation}")
    for sym in result.symbols:
        ann = annualisation(sym.model)
        table = Table(title=f"{title}: {sym.symbol} ({sym.model.n_steps} bars)")
        table.add_column("metric")
        table.add_column("model", style="bold")
        for name in sym.baselines:
            table.add_column(name, justify="right")
        for attr, label, kind in METRIC_ROWS:
            row = [_label(label, attr, ann), _fmt(getattr(sym.model, attr), kind, attr, ann)]
            row += [_fmt(getattr(b, attr), kind, attr, ann) for b in sym.baselines.values()]
            table.add_row(*row)
        console.print(table)
        if sym.skipped_bars:
            err_console.print(
                f"[yellow]{sym.symbol}: {sym.skipped_bars} bars outside the longest gap-free "
                "run were not backtested[/yellow]"
            )


def _gate_note(validation: BacktestResult) -> str:
    """The gate reads validation Sharpe; say so where it was annualised from a short range."""
    short = [annualisation(s.model) for s in validation.symbols]
    short = [a for a in short if a.extrapolated("sharpe")]
    return f" (validation Sharpe {min(short, key=lambda a: a.span_days).note})" if short else ""


def print_training_result(result: Any) -> None:
    print_backtest(result.test, "test backtest")
    console.print(
        f"training: {result.timesteps:,} steps in {result.train_seconds:.1f} s "
        f"({result.steps_per_second:,.0f} env steps/s); backtest {result.test.bars:,} bars in "
        f"{result.test.seconds:.2f} s ({result.test.bars_per_second:,.0f} bars/s)"
    )
    console.print(protocol_line(result))
    console.print(f"report:        {result.report_path}")
    if result.evaluation_report_path is not None:
        console.print(f"evaluation:    {result.evaluation_report_path}")
    console.print(f"metrics:       {result.metrics_path}")
    console.print(f"MLflow run id: {result.run_id}")
    console.print(f"model:         {result.model.uri}")
    verdict = "[green]yes[/green]" if result.champion else "[yellow]no[/yellow]"
    console.print(f"champion:      {verdict}: {result.gate_reason}{_gate_note(result.validation)}")
    # the same model, range and costs through the online services: the paper session's
    # per-symbol metrics equal this test backtest's (docs/online.md, "One engine")
    test = result.splits.test
    m = result.model
    model_ref = f"{m.name}@champion" if result.champion else f"{m.name}/{m.version}"
    symbols = ",".join(s.symbol for s in result.test.symbols)
    console.print(
        f"paper-trade the test range: drl-trading paper --model {model_ref} --symbols {symbols} "
        f"--source replay --start {test.start:%Y-%m-%dT%H:%M} --end {test.end:%Y-%m-%dT%H:%M} "
        "--fresh"
    )


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def protocol_line(result: Any) -> str:
    """The evaluation protocol a training ran: ``protocol:      3 walk-forward folds (rolling
    training windows of 30 days), embargo 12 h, 2 seeds = 6 trainings``."""
    seeds = result.evidence.seeds if result.evidence is not None else 1
    return f"protocol:      {result.splits.protocol_text(seeds)}"


def _with_protocol(
    settings: AppSettings,
    folds: int | None,
    seeds: int | None,
    window: WindowKind | None,
    train_length: str | None,
) -> AppSettings:
    """``settings`` with the walk-forward protocol's flags where given (``--folds``,
    ``--seeds``, ``--window``, ``--train-length``), in the order of `_settings_with`.
    ``--window expanding`` drops a configured ``train_length`` (a rolling window's);
    ``--train-length`` with expanding windows is a ValueError saying to add ``--window
    rolling``."""
    training = settings.training
    split: dict[str, Any] = {}
    if folds is not None:
        split["walk_forward_folds"] = folds
    if window is not None:
        split["window"] = window
        if window == "expanding":
            split["train_length"] = None
    if train_length is not None:
        split["train_length"] = parse_duration(train_length)
        if split.get("window", training.split.window) == "expanding":
            raise ValueError(
                f"--train-length {train_length} sets rolling training windows, but they are "
                "expanding (training.split.window): add --window rolling"
            )
    update: dict[str, Any] = {}
    if seeds is not None:
        update["seeds"] = seeds
    if split:
        update["split"] = {**training.split.model_dump(), **split}
    return _with_training(settings, update, "--folds/--seeds/--window/--train-length")


def _settings_with(
    settings: AppSettings, timesteps: int | None, algorithm: str | None
) -> AppSettings:
    """``settings`` with the values of ``--timesteps`` and ``--algorithm`` where given: a flag
    beats the environment, which beats the file, which beats the default (`load_settings`), so
    a flag left out never masks ``training.total_timesteps`` or ``training.algorithm.name``."""
    training = settings.training
    update: dict[str, Any] = {}
    if timesteps is not None:
        update["total_timesteps"] = timesteps
    if algorithm is not None:
        update["algorithm"] = {**training.algorithm.model_dump(), "name": algorithm}
    return _with_training(settings, update, "--timesteps/--algorithm")


def _with_training(settings: AppSettings, update: dict[str, Any], flags: str) -> AppSettings:
    """``settings`` with ``update`` applied to ``training`` and validated; an invalid value is
    a `ConfigError` naming ``flags`` and every problem."""
    if not update:
        return settings
    from pydantic import ValidationError

    from drl_trading.app.settings import ConfigError
    from drl_trading.training.core.config import TrainingSettings

    training = settings.training
    try:
        new_training = TrainingSettings.model_validate({**training.model_dump(), **update})
    except ValidationError as exc:
        problems = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        raise ConfigError(f"invalid {flags}: {problems}") from None
    return settings.model_copy(update={"training": new_training})


QUICKSTART_RANGE = ("2024-01-01", "2024-03-01")
"""`quickstart`'s range where none is given and the source has none of its own."""

QUICKSTART_EDGE = 0.5
"""The edge `quickstart` plants in synthetic data where neither ``--edge`` nor
``ingest.synthetic.edge`` says otherwise (measured: docs/training.md, "Known-answer
quickstart")."""
QUICKSTART_EDGE_TIMEFRAME = "5m"
"""...on the bars of this timeframe where ``ingest.synthetic.edge_timeframe`` is not set: the
default feature set's base, whose last return the agent observes directly. An edge on 1h bars
is momentum on 5m bars, which the momentum and SMA-cross baselines trade as well as the agent."""


def _with_edge(settings: AppSettings, source: str, edge: float | None) -> AppSettings:
    """``settings`` with ``ingest.synthetic.edge`` for this run: ``--edge`` where given, else
    the configured value where one was set (file or environment), else `QUICKSTART_EDGE`; the
    same for ``edge_timeframe`` (`QUICKSTART_EDGE_TIMEFRAME`)."""
    synthetic = settings.ingest.synthetic
    if source != "synthetic":
        if edge is not None:
            raise ValueError(
                f"--edge plants an edge in synthetic data only, not in --source {source}: "
                "drop --edge or use --source synthetic"
            )
        return settings
    if edge is None:
        edge = synthetic.edge if "edge" in synthetic.model_fields_set else QUICKSTART_EDGE
    if not 0.0 <= edge < 1.0:
        raise ValueError(f"--edge must be in [0, 1) (an AR(1) coefficient), got {edge:g}")
    timeframe = (
        synthetic.edge_timeframe
        if "edge_timeframe" in synthetic.model_fields_set
        else QUICKSTART_EDGE_TIMEFRAME
    )
    update = {"edge": edge, "edge_timeframe": timeframe}
    ingest = settings.ingest.model_copy(update={"synthetic": synthetic.model_copy(update=update)})
    return settings.model_copy(update={"ingest": ingest})


def _sharpe_text(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def print_planted(result: Any, settings: AppSettings) -> None:
    """The known answer beside the verdict: the planted edge and its oracle's Sharpe on the test
    bars (before and after the model's costs), then what the agent recovered out of sample."""
    from drl_trading.app.planted_edge import planted_edge

    synthetic = settings.ingest.synthetic
    planted = planted_edge(synthetic.edge, Timeframe(synthetic.edge_timeframe), result)
    if planted.edge == 0.0:
        what = (
            "planted:       nothing (edge 0, a pure random walk; oracle on "
            f"{planted.timeframe} bars)"
        )
    else:
        what = (
            f"planted:       edge {planted.edge:g} on {planted.timeframe} bars, oracle Sharpe "
            f"{planted.planted_sharpe:.1f} before costs over ~60 days"
        )
    console.print(
        f"{what}; the oracle rule on this test range's bars: "
        f"{_sharpe_text(planted.oracle_before_costs)} before costs, "
        f"{_sharpe_text(planted.oracle_after_costs)} after costs"
    )
    e = result.evidence
    verdict = "[green]yes[/green]" if result.champion else "[yellow]no[/yellow]"
    recovered = f"test-range Sharpe {result.test.mean('model', 'sharpe'):.1f}"
    if e is not None:
        recovered = (
            f"out-of-sample Sharpe {e.sharpe:.1f} ({e.confidence:.0%} CI {e.ci_lower:.1f}.."
            f"{e.ci_upper:.1f}), deflated Sharpe {e.dsr:.2f}; {recovered}"
        )
    console.print(f"recovered:     {recovered}; champion {verdict}")


Timesteps = Annotated[
    int | None,
    typer.Option(
        "--timesteps",
        "-t",
        min=1,
        help="Environment steps to train for (default: training.total_timesteps).",
    ),
]
Algorithm = Annotated[
    str | None,
    typer.Option(
        help="PPO, A2C, DQN, SAC, TD3, RecurrentPPO or MaskablePPO "
        "(default: training.algorithm.name)."
    ),
]
Folds = Annotated[
    int | None,
    typer.Option(
        "--folds", min=1, help="Walk-forward folds (default: training.split.walk_forward_folds)."
    ),
]
Seeds = Annotated[
    int | None,
    typer.Option("--seeds", min=1, help="Trainings per fold (default: training.seeds)."),
]
Window = Annotated[
    WindowKind | None,
    typer.Option(
        "--window",
        help="Each fold's training window: expanding from the range's start, or rolling, as "
        "long in every fold (default: training.split.window).",
    ),
]
TrainLength = Annotated[
    str | None,
    typer.Option(
        "--train-length",
        help="With --window rolling: each fold's training length, e.g. 30d, 12h, 1d12h or P30D "
        "(default: training.split.train_length, else as long as fold 0's expanding window).",
    ),
]


def train(
    ctx: typer.Context,
    symbols: Annotated[str, typer.Option("--symbols", "-s", help="Comma-separated.")],
    start: Start,
    end: End,
    timesteps: Timesteps = None,
    algorithm: Algorithm = None,
    folds: Folds = None,
    seeds: Seeds = None,
    window: Window = None,
    train_length: TrainLength = None,
) -> None:
    """Train on stored features, register the model, gate it, and backtest it on the test split."""
    try:
        settings = _settings_with(state(ctx).settings(), timesteps, algorithm)
        settings = _with_protocol(settings, folds, seeds, window, train_length)
        syms = parse_symbols(symbols)
        rng = TimeRange.parse(start, end)
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    with OfflineWorkflow.open(settings, training=True) as workflow, progress_bar() as bar:
        on_progress = train_bar(bar, settings.training.total_timesteps)
        try:
            result = workflow.train(syms, rng, on_progress=on_progress)
        except WorkflowError as exc:
            raise fail(str(exc)) from None
    print_training_result(result)


def backtest(
    ctx: typer.Context,
    model: Annotated[
        str, typer.Option("--model", "-m", help="NAME, NAME@alias, NAME/version or models:/...")
    ],
    symbols: Annotated[str, typer.Option("--symbols", "-s", help="Comma-separated.")],
    start: Start,
    end: End,
    fee_bps: FeeBps = None,
    slippage_bps: SlippageBps = None,
) -> None:
    """Backtest a registered model on any stored range; writes JSON + HTML, logs an MLflow run.
    Warns when the range overlaps the model's training or validation range."""
    from drl_trading.app.model_backtest import BacktestError, backtest_model

    settings = state(ctx).settings()
    syms, rng = symbols_and_range(symbols, start, end)
    try:
        done = backtest_model(
            settings, model, syms, rng, fee_bps=fee_bps, slippage_bps=slippage_bps
        )
    except BacktestError as exc:
        raise fail(str(exc)) from None
    result = done.result
    for line in done.warnings:
        err_console.print(f"[yellow]warning:[/yellow] {line}")
    print_backtest(result, f"backtest {done.version.uri}")
    console.print(f"{result.bars:,} bars in {result.seconds:.2f} s")
    console.print(f"report:        {done.html_path}")
    console.print(f"metrics:       {done.json_path}")
    console.print(f"MLflow run id: {done.run_id}")


def quickstart(
    ctx: typer.Context,
    symbols: Annotated[str, typer.Option("--symbols", "-s", help="Comma-separated.")] = (
        "BTCUSDT,ETHUSDT"
    ),
    start: Annotated[
        str | None,
        typer.Option(
            help=f"Start (inclusive), UTC; default {QUICKSTART_RANGE[0]}, for --source file "
            "the file's first bar."
        ),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option(
            help=f"End (exclusive), UTC; default {QUICKSTART_RANGE[1]}, for --source file the "
            "file's last bar + 1 bar."
        ),
    ] = None,
    source: HistorySource = "synthetic",
    path: SourcePath = None,
    timeframe: DataTimeframe = Timeframe.M1,
    timesteps: Timesteps = None,
    algorithm: Algorithm = None,
    folds: Folds = None,
    seeds: Seeds = None,
    window: Window = None,
    train_length: TrainLength = None,
    edge: Annotated[
        float | None,
        typer.Option(
            "--edge",
            min=0.0,
            help="Synthetic source only: the planted edge, an AR(1) coefficient in [0, 1) of the "
            f"returns of ingest.synthetic.edge_timeframe's bars (default {QUICKSTART_EDGE:g} "
            "unless ingest.synthetic.edge is set; 0: a pure random walk, nothing to learn).",
        ),
    ] = None,
) -> None:
    """The whole offline workflow through the bus: ingest → preprocess → train → register →
    backtest, on synthetic data with a planted edge unless told otherwise; prints what was
    planted beside what the agent recovered."""
    started = time.perf_counter()
    try:
        settings = _settings_with(state(ctx).settings(), timesteps, algorithm)
        settings = _with_protocol(settings, folds, seeds, window, train_length)
        settings = _with_edge(settings, source, edge)
        syms = parse_symbols(symbols)
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    if source != "file":  # a file has a range of its own; the other sources get the default one
        start = QUICKSTART_RANGE[0] if start is None else start
        end = QUICKSTART_RANGE[1] if end is None else end
    rng = resolve_range(settings, source, path, syms, start, end, timeframe)
    request = TrainingDataRequest(tuple(syms), rng, timeframe=timeframe)
    cid = request.request_id
    with OfflineWorkflow.open(settings, training=True) as workflow:
        # the training service asks ingest for its data; the correlation id ties the events
        workflow.expect_training(syms, rng, cid)
        report = ingest_with_progress(
            lambda on_progress: workflow.ingest(
                source, path, request, request_preprocessing=True, on_progress=on_progress
            )
        )
        print_ingest_report(report)
        outcome = run_preprocess(workflow, cid)
        preprocessed = print_preprocess_outcome(outcome)
        result = workflow.training_result(cid)
        if not preprocessed or result is None:
            if not outcome.errors:
                err_console.print("[red]the workflow ended without a trained model[/red]")
            raise typer.Exit(1)
    print_training_result(result)
    if source == "synthetic":
        print_planted(result, settings)
    console.print(f"quickstart finished in {time.perf_counter() - started:.0f} s")
