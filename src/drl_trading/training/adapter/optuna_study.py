"""Optuna: the study a tune command runs trials of, in an RDB storage (SQLite or PostgreSQL).

Optuna's relational storage is what lets several worker processes share one study: each asks
the database for its next trial, so trial numbers are unique across workers and no trial runs
twice. A worker that dies mid-trial stops its heartbeat; another worker then marks that trial
failed (`HEARTBEAT_S`, `GRACE_S`) instead of leaving it running forever.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from drl_trading.strategy.tunable import Choice, FloatRange, IntRange, ParamValue, Range
from drl_trading.training.core.tuning import TrialPrunedError, mixed_seed
from drl_trading.training.core.tuning_config import PrunerSettings

__all__ = [
    "FINISHED_STATES",
    "MissingStudyError",
    "OptunaTrial",
    "StudyAttributeTimeoutError",
    "build_pruner",
    "open_storage",
    "open_study",
    "optimize",
    "wait_for_attribute",
]

HEARTBEAT_S = 60
"""Seconds between a running trial's heartbeats in the storage."""
GRACE_S = 300
"""Seconds without a heartbeat after which a running trial counts as failed (its worker died)."""
FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
SCHEMA_LOCK_KEY = 0x6472_6C74  # "drlt": the advisory lock held while tables are created

optuna.logging.set_verbosity(optuna.logging.WARNING)  # the CLI prints one line per trial
# heartbeats are marked experimental in Optuna 5; they are what detects a dead worker
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning, module="optuna")


class OptunaTrial:
    """An `optuna.Trial` as the core's `TuningTrial`."""

    def __init__(self, trial: optuna.Trial) -> None:
        self._trial = trial

    @property
    def number(self) -> int:
        return self._trial.number

    def suggest(self, name: str, space: Range) -> ParamValue:
        if isinstance(space, FloatRange):
            return self._trial.suggest_float(name, space.low, space.high, log=space.log)
        if isinstance(space, IntRange):
            return self._trial.suggest_int(name, space.low, space.high, log=space.log)
        assert isinstance(space, Choice)
        value = self._trial.suggest_categorical(name, list(space.options))
        assert value is not None  # the options hold no None
        return value

    def report(self, value: float, step: int) -> None:
        self._trial.report(value, step)

    def should_prune(self) -> bool:
        return self._trial.should_prune()

    def set_attribute(self, key: str, value: Any) -> None:
        self._trial.set_user_attr(key, value)


def open_storage(url: str, schema: str | None = None) -> optuna.storages.RDBStorage:
    """The RDB storage at ``url`` (SQLAlchemy form; an SQLite file's folder is created);
    ``schema``: PostgreSQL schema of the tables (created when missing), else the default.

    On PostgreSQL the schema and Optuna's tables are created under an advisory lock: workers
    that start together would otherwise race on ``CREATE ... IF NOT EXISTS`` (which PostgreSQL
    does not serialise) and all but one fail with a unique violation."""
    engine: dict[str, Any] = {}
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine["connect_args"] = {"timeout": 60}
        return optuna.storages.RDBStorage(
            url, engine_kwargs=engine, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S
        )
    if schema is not None:
        engine["connect_args"] = {"options": f"-csearch_path={schema}"}
    if not url.startswith("postgresql"):
        return optuna.storages.RDBStorage(
            url, engine_kwargs=engine, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S
        )
    from sqlalchemy import create_engine, text

    engine["pool_pre_ping"] = True
    lock = create_engine(url)
    try:
        with lock.connect() as con:
            con.execute(text("SELECT pg_advisory_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
            try:
                if schema is not None:
                    con.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
                    con.commit()
                return optuna.storages.RDBStorage(
                    url,
                    engine_kwargs=engine,
                    heartbeat_interval=HEARTBEAT_S,
                    grace_period=GRACE_S,
                )
            finally:
                con.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": SCHEMA_LOCK_KEY})
                con.commit()
    finally:
        lock.dispose()


def build_pruner(settings: PrunerSettings) -> optuna.pruners.BasePruner:
    if settings.kind == "threshold":
        return optuna.pruners.ThresholdPruner(lower=settings.lower)
    if settings.kind == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(
        n_startup_trials=settings.startup_trials, n_warmup_steps=settings.warmup_folds
    )


class MissingStudyError(LookupError):
    pass


def open_study(
    storage: optuna.storages.BaseStorage,
    name: str,
    *,
    sampler_seed: int,
    pruner: optuna.pruners.BasePruner,
    create: bool = True,
) -> tuple[optuna.Study, bool]:
    """The study ``name`` (maximising) and whether this call created it: of several workers
    starting at once exactly one creates it (the storage's unique study name decides).
    Without ``create`` a missing study is a `MissingStudyError`.

    The TPE sampler is seeded with ``sampler_seed`` mixed with the trials the study already holds: a
    resumed study draws on from where it stood instead of repeating its first draws (its
    random start-up trials would otherwise come out the same)."""
    created = False
    if create:
        try:
            study = optuna.create_study(
                storage=storage, study_name=name, pruner=pruner, direction="maximize"
            )
            created = True
        except optuna.exceptions.DuplicatedStudyError:
            pass
    if not created:
        try:
            study = optuna.load_study(study_name=name, storage=storage, pruner=pruner)
        except KeyError:
            raise MissingStudyError(name) from None
    held = len(study.get_trials(deepcopy=False))
    study.sampler = optuna.samplers.TPESampler(seed=mixed_seed(sampler_seed, held))
    return study, created


class StudyAttributeTimeoutError(TimeoutError):
    pass


def wait_for_attribute(study: optuna.Study, key: str, timeout_s: float = 60.0) -> Any:
    """The study's user attribute ``key``, waiting (polling every 0.5 s) while the worker that
    created the study has not written it yet."""
    deadline = time.monotonic() + timeout_s
    while True:
        attrs = study.user_attrs
        if key in attrs:
            return attrs[key]
        if time.monotonic() > deadline:
            raise StudyAttributeTimeoutError(
                f"study {study.study_name!r} has no {key!r} after {timeout_s:.0f} s: the "
                "process that created it did not finish setting it up; start a new --study"
            )
        time.sleep(0.5)


def optimize(
    study: optuna.Study,
    objective: Callable[[OptunaTrial], float],
    *,
    trials: int,
    timeout_s: float | None,
    study_total: bool,
    on_trial: Callable[[FrozenTrial], None],
) -> None:
    """Run trials of ``objective`` in this process: ``trials`` more, or with ``study_total``
    until the study holds ``trials`` finished ones (every worker's); no new trial starts after
    ``timeout_s``. A trial that raises is recorded failed and the next one starts (its error
    text in the trial's ``error`` attribute); an interrupt stops the loop."""

    def run(trial: optuna.Trial) -> float:
        wrapped = OptunaTrial(trial)
        try:
            return objective(wrapped)
        except TrialPrunedError as exc:
            trial.set_user_attr("folds", exc.folds)
            trial.set_user_attr("run_id", exc.run_id)
            raise optuna.TrialPruned(str(exc)) from None
        except Exception as exc:
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}"[:1000])
            raise

    callbacks: list[Callable[[optuna.Study, FrozenTrial], None]] = [lambda s, t: on_trial(t)]
    if study_total:
        callbacks.append(optuna.study.MaxTrialsCallback(trials, states=FINISHED_STATES))
        if _finished(study) >= trials:
            return
    study.optimize(
        run,
        n_trials=None if study_total else trials,
        timeout=timeout_s,
        catch=(Exception,),
        callbacks=callbacks,
    )


def _finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED_STATES))


def counts(study: optuna.Study) -> Mapping[str, int]:
    """Trials per state name (complete, pruned, fail, running, waiting)."""
    out: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        out[t.state.name.lower()] = out.get(t.state.name.lower(), 0) + 1
    return out
