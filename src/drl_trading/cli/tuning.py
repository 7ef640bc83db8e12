"""`drl-trading tune`: run trials of an Optuna study, or register its best configuration."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from drl_trading.app.offline_workflow import WorkflowError
from drl_trading.cli.context import console, err_console, fail, state
from drl_trading.cli.durations import parse_duration
from drl_trading.cli.progress import progress_bar, train_bar
from drl_trading.cli.training import (
    Algorithm,
    Folds,
    Seeds,
    Timesteps,
    TrainLength,
    Window,
    _settings_with,
    _with_protocol,
    print_training_result,
)
from drl_trading.common.domain import TimeRange, parse_symbols

if TYPE_CHECKING:
    from drl_trading.app.tuning import TrialLine, TuneSummary


def _value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def params_text(params: dict[str, Any]) -> str:
    """``learning_rate=0.000312 n_steps=256 strategy.drawdown_penalty=0.0041``."""
    return " ".join(f"{k}={_value(v)}" for k, v in params.items())


def trial_text(t: TrialLine) -> str:
    """One line per finished trial: number, state, value, folds run, parameters."""
    folds = "" if t.folds is None else f" ({t.folds} fold{'' if t.folds == 1 else 's'})"
    if t.state == "fail":
        return f"trial {t.number:>3}  failed    {t.error or 'no error recorded'}"
    value = "n/a" if t.value is None else f"{t.value:+.3f}"
    word = {"complete": "complete", "pruned": "pruned  "}.get(t.state, t.state)
    return f"trial {t.number:>3}  {word}  Sharpe {value}{folds}  {params_text(t.params)}"


def _timeout_seconds(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        seconds = float(text)
    except ValueError:
        return parse_duration(text).total_seconds()
    if seconds <= 0:
        raise ValueError(f"--timeout {text} must be longer than 0")
    return seconds


def print_summary(summary: TuneSummary) -> None:
    n = len(summary.trials)
    counts = summary.study_counts
    held = sum(counts.values())
    held_text = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    console.print(
        f"{n} trial{'' if n == 1 else 's'} in {summary.seconds:.0f} s: "
        f"{summary.count('complete')} complete, {summary.count('pruned')} pruned, "
        f"{summary.count('fail')} failed; study {summary.study} holds {held} ({held_text})"
    )
    console.print(f"storage:       {summary.storage}")
    console.print(f"MLflow run id: {summary.parent_run_id} (the study's; trials nest under it)")
    best = summary.best
    if best is None:
        console.print("best:          none yet (no complete trial)")
        return
    console.print(
        f"best:          trial {best.number}, Sharpe {best.value:+.3f}: {params_text(best.params)}"
    )
    console.print(f"register it:   drl-trading tune --study {summary.study} --best --register")


def tune(
    ctx: typer.Context,
    trials: Annotated[
        int | None,
        typer.Option(
            "--trials",
            "-n",
            min=1,
            help="Trials to run (default tuning.trials); with --worker the study's total, "
            "every worker's trials counted.",
        ),
    ] = None,
    timeout: Annotated[
        str | None,
        typer.Option(
            help="Start no trial after this long: seconds or a duration such as 30m or 2h "
            "(default tuning.timeout: none)."
        ),
    ] = None,
    symbols: Annotated[
        str | None,
        typer.Option(
            "--symbols", "-s", help="Comma-separated (a new study; default: the study's)."
        ),
    ] = None,
    start: Annotated[
        str | None, typer.Option(help="Start (inclusive), UTC (default: the study's).")
    ] = None,
    end: Annotated[
        str | None, typer.Option(help="End (exclusive), UTC (default: the study's).")
    ] = None,
    study: Annotated[
        str | None, typer.Option("--study", help="Study name (default: the model's name).")
    ] = None,
    worker: Annotated[
        bool,
        typer.Option(
            "--worker",
            help="Join the study as one of several workers: run trials until it holds --trials.",
        ),
    ] = False,
    seed: Annotated[
        int | None,
        typer.Option(help="Sampler seed (default tuning.sampler_seed, else training.seed)."),
    ] = None,
    best: Annotated[
        bool, typer.Option("--best", help="Show the study's best trial instead of running trials.")
    ] = False,
    register: Annotated[
        bool,
        typer.Option(
            "--register",
            help="With --best: train that configuration, register it and gate it as train does.",
        ),
    ] = False,
    timesteps: Timesteps = None,
    algorithm: Algorithm = None,
    folds: Folds = None,
    seeds: Seeds = None,
    window: Window = None,
    train_length: TrainLength = None,
) -> None:
    """Search hyperparameters and the strategy's tunable parameters with Optuna, each trial
    judged on the validation folds (never the test range); trials are MLflow runs nested under
    the study's run and counted by the deflated Sharpe."""
    from drl_trading.app.tuning import TuneRequest, best_trial, register_best
    from drl_trading.app.tuning import tune as run_tune

    if register and not best:
        raise fail("--register registers the best trial: add --best", 2)
    flags = any(v is not None for v in (timesteps, algorithm, folds, seeds, window, train_length))
    try:
        settings = _settings_with(state(ctx).settings(), timesteps, algorithm)
        settings = _with_protocol(settings, folds, seeds, window, train_length)
        timeout_s = _timeout_seconds(timeout)
        given = [v is not None for v in (symbols, start, end)]
        if any(given) and not all(given):
            raise ValueError("give --symbols, --start and --end together (or none: the study's)")
        syms = tuple(parse_symbols(symbols)) if symbols is not None else None
        rng = TimeRange.parse(start, end) if start is not None and end is not None else None
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    if best:
        if not register:
            found, where = best_trial(settings, study)
            console.print(
                f"best:          trial {found.number}, Sharpe {found.value:+.3f}: "
                f"{params_text(found.params)}"
            )
            console.print(f"storage:       {where}")
            return
        with progress_bar() as bar:
            on_progress = train_bar(bar, settings.training.total_timesteps)
            try:
                found, result = register_best(settings, study, on_progress=on_progress)
            except WorkflowError as exc:
                raise fail(str(exc)) from None
        console.print(
            f"best trial:    {found.number}, Sharpe {found.value:+.3f}: {params_text(found.params)}"
        )
        print_training_result(result)
        return
    if timeout_s is None and settings.tuning.timeout is not None:
        timeout_s = settings.tuning.timeout.total_seconds()
    request = TuneRequest(
        study=study,
        symbols=syms,
        range=rng,
        trials=trials or settings.tuning.trials,
        timeout_s=timeout_s,
        worker=worker,
        seed=seed,
        protocol_flags=flags,
    )

    def on_trial(line: TrialLine) -> None:
        console.print(trial_text(line))

    summary = run_tune(settings, request, on_trial)
    print_summary(summary)
    if summary.trials and summary.count("fail") == len(summary.trials):
        first = summary.trials[0].error or "no error recorded"
        err_console.print(f"[red]error:[/red] every trial failed; the first: {first}")
        raise typer.Exit(1)
