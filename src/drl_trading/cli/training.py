"""`drl-trading train`, `backtest` and `quickstart`: the offline workflow's second half."""

from __future__ import annotations

import math
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from drl_trading.app.runtime import EmbeddedRuntime
from drl_trading.app.settings import AppSettings
from drl_trading.cli.context import console, err_console, fail, state
from drl_trading.cli.ingest import print_ingest_report, run_ingest
from drl_trading.cli.options import End, HistorySource, SourcePath, Start
from drl_trading.cli.pipeline import WorkflowObserver, print_preprocess_outcome, run_preprocess
from drl_trading.cli.progress import progress_bar
from drl_trading.common.domain import TimeRange, parse_symbols
from drl_trading.ingest.core.service import TrainingDataRequest

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


def _fmt(value: Any, kind: str) -> str:
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


def print_backtest(result: Any, title: str) -> None:
    for sym in result.symbols:
        table = Table(title=f"{title}: {sym.symbol} ({sym.model.n_steps} bars)")
        table.add_column("metric")
        table.add_column("model", style="bold")
        for name in sym.baselines:
            table.add_column(name, justify="right")
        for attr, label, kind in METRIC_ROWS:
            row = [label, _fmt(getattr(sym.model, attr), kind)]
            row += [_fmt(getattr(b, attr), kind) for b in sym.baselines.values()]
            table.add_row(*row)
        console.print(table)
        if sym.skipped_bars:
            err_console.print(
                f"[yellow]{sym.symbol}: {sym.skipped_bars} bars outside the longest gap-free "
                "run were not backtested[/yellow]"
            )


def print_training_result(result: Any) -> None:
    print_backtest(result.test, "test backtest")
    console.print(
        f"training: {result.timesteps:,} steps in {result.train_seconds:.1f} s "
        f"({result.steps_per_second:,.0f} env steps/s); backtest {result.test.bars:,} bars in "
        f"{result.test.seconds:.2f} s ({result.test.bars_per_second:,.0f} bars/s)"
    )
    console.print(f"report:        {result.report_path}")
    console.print(f"metrics:       {result.metrics_path}")
    console.print(f"MLflow run id: {result.run_id}")
    console.print(f"model:         {result.model.uri}")
    verdict = "[green]yes[/green]" if result.champion else "[yellow]no[/yellow]"
    console.print(f"champion:      {verdict}: {result.gate_reason}")
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


def _settings_with(
    settings: AppSettings, timesteps: int | None, algorithm: str | None
) -> AppSettings:
    training = settings.training
    update: dict[str, Any] = {}
    if timesteps is not None:
        update["total_timesteps"] = timesteps
    if algorithm is not None:
        update["algorithm"] = training.algorithm.model_copy(update={"name": algorithm})
    if not update:
        return settings
    from drl_trading.app.settings import ConfigError
    from drl_trading.training.core.config import TrainingSettings

    try:
        new_training = TrainingSettings.model_validate({**training.model_dump(), **update})
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return settings.model_copy(update={"training": new_training})


Timesteps = Annotated[
    int | None, typer.Option("--timesteps", "-t", min=1, help="Environment steps to train for.")
]
Algorithm = Annotated[
    str | None,
    typer.Option(help="PPO, A2C, DQN, SAC, TD3, RecurrentPPO or MaskablePPO (default: config)."),
]


def train(
    ctx: typer.Context,
    symbols: Annotated[str, typer.Option("--symbols", "-s", help="Comma-separated.")],
    start: Start,
    end: End,
    timesteps: Timesteps = None,
    algorithm: Algorithm = None,
) -> None:
    """Train on stored features, register the model, gate it, and backtest it on the test split."""
    from drl_trading.common.events import new_id
    from drl_trading.training.core.service import TrainingRequest

    try:
        settings = _settings_with(state(ctx).settings(), timesteps, algorithm)
        syms = parse_symbols(symbols)
        rng = TimeRange.parse(start, end)
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    with EmbeddedRuntime.open(settings) as runtime:
        training = runtime.enable_training()
        request = TrainingRequest(tuple(syms), rng, correlation_id=new_id())
        with progress_bar() as bar:
            task = bar.add_task("train", total=settings.training.total_timesteps)

            def on_progress(p: Any) -> None:
                reward = "-" if p.mean_episode_reward is None else f"{p.mean_episode_reward:.2f}"
                bar.update(
                    task,
                    completed=p.timesteps,
                    description=f"train: reward {reward}, {p.steps_per_second:,.0f} steps/s",
                )

            training.service.on_progress = on_progress
            try:
                result = training.service.train(request)
            except (LookupError, ValueError, RuntimeError) as exc:
                raise fail(f"{type(exc).__name__}: {exc}") from None
    print_training_result(result)


def backtest(
    ctx: typer.Context,
    model: Annotated[
        str, typer.Option("--model", "-m", help="NAME, NAME@alias, NAME/version or models:/...")
    ],
    symbols: Annotated[str, typer.Option("--symbols", "-s", help="Comma-separated.")],
    start: Start,
    end: End,
) -> None:
    """Backtest a registered model on any stored range; writes JSON + HTML, logs an MLflow run."""
    from drl_trading.app.infrastructure import build_registry, build_strategy
    from drl_trading.common.costs import CostModel
    from drl_trading.common.feature_dataset import DatasetError, load_feature_matrix
    from drl_trading.evaluation.backtest import backtest as run_backtest
    from drl_trading.evaluation.metrics import periods_per_year
    from drl_trading.policy.package import ModelPackageError
    from drl_trading.policy.predictor import Predictor
    from drl_trading.strategy.feature_set import FeatureSetSpec
    from drl_trading.strategy.feature_view import view_for
    from drl_trading.training.adapter.report_files import ReportFiles
    from drl_trading.training.core.backtest_report import backtest_documents
    from drl_trading.training.core.dataset import series_from_frame

    settings = state(ctx).settings()
    # the signal check paper trading applies: the configured strategy's (as `paper` uses it)
    strategy = build_strategy(settings)
    try:
        syms = parse_symbols(symbols)
        rng = TimeRange.parse(start, end)
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    registry = build_registry(settings)
    try:
        version = registry.resolve(model)
    except LookupError as exc:
        raise fail(str(exc)) from None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            predictor = Predictor.load(registry.download_package(version, Path(tmp)))
        except ModelPackageError as exc:
            raise fail(str(exc)) from None
    m = predictor.manifest
    spec = FeatureSetSpec.model_validate(m.feature_set)
    if spec.version != m.feature_set_version:
        raise fail(f"{version.uri}: feature set definition does not hash to its recorded version")
    with EmbeddedRuntime.open(settings) as runtime:
        try:
            data = load_feature_matrix(
                runtime.market_data, runtime.feature_store, view_for(spec), syms, rng
            )
        except (DatasetError, LookupError) as exc:
            raise fail(
                f"{exc} (the model needs feature set {spec.name} v{spec.version}; preprocess "
                "the range with that feature set first)"
            ) from None
    series = series_from_frame(data.frame, spec.columns, spec.base_timeframe)
    result = run_backtest(
        predictor,
        series,
        costs=CostModel(m.fee_bps, m.slippage_bps),
        periods_per_year=periods_per_year(spec.base_timeframe.minutes),
        random_seeds=settings.training.random_agent_seeds,
        strategy=strategy,
    )
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    documents = backtest_documents(
        result,
        version,
        title=f"Backtest of {version.uri}",
        extra={"symbols": ",".join(syms)},
        stem=f"{version.name}-v{version.version}-backtest-{stamp}",
        manifest=m,
    )
    html, js = ReportFiles(settings.reports_dir).write(documents)
    with registry.start_run(
        f"backtest-{version.name}-v{version.version}",
        {"kind": "backtest", "model_uri": version.uri, "symbols": ",".join(syms)},
    ) as run:
        run.log_params({"model": version.uri, "range": f"{rng.start}..{rng.end}"})
        run.log_metrics(
            {
                f"{s.symbol}.{k}": float(v)
                for s in result.symbols
                for k, v in s.model.to_dict().items()
                if isinstance(v, int | float) and not isinstance(v, bool)
            }
        )
        run.log_artifact(html, "backtest")
        run.log_artifact(js, "backtest")
        run_id = run.run_id
    print_backtest(result, f"backtest {version.uri}")
    console.print(f"{result.bars:,} bars in {result.seconds:.2f} s")
    console.print(f"report:        {html}")
    console.print(f"metrics:       {js}")
    console.print(f"MLflow run id: {run_id}")


def quickstart(
    ctx: typer.Context,
    symbols: Annotated[str, typer.Option("--symbols", "-s", help="Comma-separated.")] = (
        "BTCUSDT,ETHUSDT"
    ),
    start: Annotated[str, typer.Option(help="Start (inclusive), UTC.")] = "2024-01-01",
    end: Annotated[str, typer.Option(help="End (exclusive), UTC.")] = "2024-03-01",
    source: HistorySource = "synthetic",
    path: SourcePath = None,
    timesteps: Timesteps = 200_000,
    algorithm: Algorithm = None,
) -> None:
    """The whole offline workflow through the bus: ingest → preprocess → train → register →
    backtest, on synthetic data unless told otherwise."""
    from drl_trading.training.core.service import TrainingRequest

    started = time.perf_counter()
    try:
        settings = _settings_with(state(ctx).settings(), timesteps, algorithm)
        syms = parse_symbols(symbols)
        rng = TimeRange.parse(start, end)
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    data_request = TrainingDataRequest(tuple(syms), rng)
    with EmbeddedRuntime.open(settings) as runtime:
        training = runtime.enable_training()
        # the training service asks ingest for its data; the correlation id ties the events
        training.expect(TrainingRequest(tuple(syms), rng, data_request.request_id))
        report = run_ingest(runtime, source, path, data_request, request_preprocessing=True)
        print_ingest_report(report)
        observer: WorkflowObserver = run_preprocess(runtime, data_request.request_id)
        preprocessed = print_preprocess_outcome(observer)
        result = training.results.get(data_request.request_id)
        if not preprocessed or result is None:
            if not observer.errors:
                err_console.print("[red]the workflow ended without a trained model[/red]")
            raise typer.Exit(1)
    print_training_result(result)
    console.print(f"quickstart finished in {time.perf_counter() - started:.0f} s")
