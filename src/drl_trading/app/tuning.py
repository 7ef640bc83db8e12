"""`drl-trading tune`: an Optuna study over the algorithm's hyperparameters and the strategy's
tunable parameters, each trial judged on the validation folds (`training.core.tuning`).

A study lives in an RDB storage: an SQLite file under the home (embedded), or the deployment's
PostgreSQL, where worker processes on several machines share it (`tuning.storage`). The
process that creates a study records in it what every trial must share: the data (symbols and
range), the evaluation protocol (folds, seeds, timesteps, environment) and the MLflow run the
trials nest under; a later command or another worker loads them from there, so a resumed study
or a worker needs only ``--study``, and one that would judge trials differently is refused.

``tune --best --register`` trains the best trial's configuration through the normal training
path (`OfflineWorkflow.train`): registered, gated and backtested on the test range as ``train``
does, with the study's trials counted by the deflated Sharpe.
"""

from __future__ import annotations

import inspect
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from drl_trading.app.infrastructure import (
    build_feature_store,
    build_market_data,
    build_registry,
    build_strategy,
    feature_set_for,
    model_name_for,
)
from drl_trading.app.offline_workflow import WorkflowError
from drl_trading.app.settings import AppSettings, ConfigError
from drl_trading.common.domain import Symbol, TimeRange, parse_symbols
from drl_trading.common.errors import OperatorError, UsageError
from drl_trading.common.events import new_id
from drl_trading.strategy.tunable import Range
from drl_trading.training.core.search_space import (
    TrialParameters,
    draw,
    search_space,
    split_parameters,
)
from drl_trading.training.core.tuning import STUDY_TAG, mixed_seed

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

    from drl_trading.app.offline_workflow import TrainProgress
    from drl_trading.training.core.service import TrainingResult

__all__ = [
    "BestTrial",
    "StudyStorage",
    "TrialLine",
    "TuneRequest",
    "TuneSummary",
    "TuningError",
    "best_trial",
    "register_best",
    "study_storage",
    "tune",
]

STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
PROTOCOL_ATTR = "protocol"
PARENT_ATTR = "parent_run_id"
JOIN_WAIT_S = 300.0
"""How long a command joining a study that another process has just created waits for it to
record the study's data and run (seconds: an MLflow server's first experiment can be slow)."""


class TuningError(WorkflowError, OperatorError):
    """A tune command cannot run as asked; the message says what to do (exit code 1)."""


class TuningUsageError(TuningError, UsageError):
    """Arguments or configuration that cannot make a study (exit code 2)."""


class NoStudyError(TuningUsageError):
    """The study asked for is not in its storage."""


@dataclass(frozen=True, slots=True)
class StudyStorage:
    url: str
    """SQLAlchemy URL with its secret (never print it: `shown` is the masked form)."""
    shown: str
    kind: str
    schema: str | None = None


def study_storage(settings: AppSettings, study: str) -> StudyStorage:
    """Where ``study`` lives (`tuning.storage`): an SQLite file under the home, the postgres
    section's database (schema ``postgres.schema_name``), or ``tuning.url``."""
    from sqlalchemy.engine import URL, make_url

    kind = settings.tuning.storage
    if kind == "auto":
        kind = "postgres" if settings.market_data.kind == "postgres" else "sqlite"
    if kind == "sqlite":
        path = (settings.home / "tuning" / f"{study}.db").resolve()
        return StudyStorage(f"sqlite:///{path}", str(path), kind)
    if kind == "postgres":
        pg = settings.postgres
        password = (
            pg.password_file.read_text().strip()
            if pg.password_file is not None
            else pg.password.get_secret_value()
        )
        url = URL.create(
            "postgresql+psycopg",
            username=pg.user,
            password=password,
            host=pg.host,
            port=pg.port,
            database=pg.dbname,
            query={"sslmode": pg.sslmode},
        )
        schema = None if pg.schema_name == "public" else pg.schema_name
        shown = url.render_as_string(hide_password=True)
        return StudyStorage(
            url.render_as_string(hide_password=False),
            shown + (f" (schema {schema})" if schema else ""),
            kind,
            schema,
        )
    raw = settings.tuning.storage_url()
    assert raw is not None  # the settings require one for storage url
    try:
        parsed = make_url(raw)
    except Exception:  # the message could quote the secret
        raise TuningUsageError(
            "tuning.url is not an SQLAlchemy URL (e.g. postgresql+psycopg://user:pass@host/db)"
        ) from None
    shown = parsed.render_as_string(hide_password=True)
    return StudyStorage(raw, shown if parsed.password else str(parsed), kind)


@dataclass(frozen=True)
class TuneRequest:
    study: str | None = None
    """None: the model's name (``drl-<strategy>``)."""
    symbols: tuple[Symbol, ...] | None = None
    range: TimeRange | None = None
    """Both None: the study's own (it must exist)."""
    trials: int = 20
    timeout_s: float | None = None
    worker: bool = False
    """``trials`` is the study's total (every worker's finished trials), not this command's."""
    seed: int | None = None
    protocol_flags: bool = False
    """The command set protocol flags (--folds, --seeds, ...): a stored protocol that differs
    is then an error rather than taken."""


@dataclass(frozen=True, slots=True)
class TrialLine:
    number: int
    state: str  # complete, pruned, fail
    value: float | None
    params: dict[str, Any]
    folds: int | None
    error: str | None = None
    run_id: str | None = None


@dataclass
class TuneSummary:
    study: str
    storage: str
    parent_run_id: str
    created: bool
    trials: list[TrialLine] = field(default_factory=list)
    """This command's trials, in the order they finished."""
    study_counts: Mapping[str, int] = field(default_factory=dict)
    best: BestTrial | None = None
    seconds: float = 0.0

    def count(self, state: str) -> int:
        return sum(1 for t in self.trials if t.state == state)


@dataclass(frozen=True, slots=True)
class BestTrial:
    number: int
    value: float
    params: dict[str, Any]


def _protocol(settings: AppSettings) -> dict[str, Any]:
    """What every trial of a study must share to be comparable (JSON-safe)."""
    t = settings.training.model_dump(mode="json")
    return {
        "training": {
            k: t[k]
            for k in (
                "total_timesteps",
                "seed",
                "seeds",
                "split",
                "env",
                "algorithm",
                "normalize_observations",
                "normalize_reward",
                "random_agent_seeds",
            )
        },
        "strategy": settings.strategy.model_dump(mode="json"),
        "model_name": model_name_for(settings),
    }


def _with_protocol(settings: AppSettings, protocol: Mapping[str, Any]) -> AppSettings:
    from drl_trading.training.core.config import TrainingSettings

    training = TrainingSettings.model_validate(
        {**settings.training.model_dump(), **protocol["training"]}
    )
    strategy = settings.strategy.model_validate(protocol["strategy"])
    return settings.model_copy(update={"training": training, "strategy": strategy})


def _differences(a: Mapping[str, Any], b: Mapping[str, Any], prefix: str = "") -> list[str]:
    out: list[str] = []
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if isinstance(x, Mapping) and isinstance(y, Mapping):
            out += _differences(x, y, f"{prefix}{key}.")
        elif x != y:
            out.append(f"{prefix}{key} {y!r} (the study: {x!r})")
    return out


def trial_settings(settings: AppSettings, parameters: TrialParameters) -> AppSettings:
    """``settings`` with one trial's values laid over the configured hyperparameters and
    strategy parameters."""
    algorithm = settings.training.algorithm
    hyper = {**algorithm.hyperparameters, **parameters.hyperparameters}
    training = settings.training.model_copy(
        update={"algorithm": algorithm.model_copy(update={"hyperparameters": hyper})}
    )
    strategy = settings.strategy.model_copy(
        update={"params": {**settings.strategy.params, **parameters.strategy_params}}
    )
    return settings.model_copy(update={"training": training, "strategy": strategy})


def _space(settings: AppSettings) -> dict[str, Range]:
    strategy = build_strategy(settings)
    ask = getattr(strategy, "tunable_parameters", None)
    tunables: Mapping[str, Range] = ask() if callable(ask) else {}
    if tunables:
        cls = type(strategy)
        accepted = inspect.signature(cls).parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
        unknown = [n for n in tunables if n not in accepted and not takes_any]
        if unknown:
            raise TuningUsageError(
                f"strategy {strategy.name}: tunable parameters {', '.join(unknown)} are not "
                f"keywords of {cls.__name__}(); a tunable parameter must be a constructor "
                "keyword (what strategy.params sets)"
            )
    try:
        return search_space(
            settings.training.algorithm.name, tunables, settings.tuning.space_overrides()
        )
    except ValueError as exc:
        raise TuningUsageError(str(exc)) from None


def _open(
    settings: AppSettings,
    name: str,
    *,
    create: bool = True,
    seed: int | None = None,
    worker: bool = False,
) -> tuple[optuna.Study, bool, StudyStorage]:
    """Study ``name`` (created when missing unless ``create`` is false: then a
    `TuningUsageError`), whether this call created it, and its storage. ``seed`` (else
    ``tuning.sampler_seed``, else ``training.seed``) seeds the sampler, mixed with the process
    id for a ``worker`` (`worker_seed`)."""
    from drl_trading.training.adapter.optuna_study import (
        MissingStudyError,
        build_pruner,
        open_storage,
        open_study,
    )

    if not STUDY_NAME.match(name):
        raise TuningUsageError(
            f"invalid study name {name!r}: use letters, digits, '_', '.' and '-' (up to 100)"
        )
    where = study_storage(settings, name)
    if seed is None:
        seed = settings.tuning.sampler_seed
    seed = settings.training.seed if seed is None else seed
    try:
        storage = open_storage(where.url, where.schema)
        study, created = open_study(
            storage,
            name,
            sampler_seed=worker_seed(seed) if worker else seed,
            pruner=build_pruner(settings.tuning.pruner),
            create=create,
        )
    except MissingStudyError:
        raise NoStudyError(
            f"no study {name!r} in {where.shown}: create it with --symbols, --start and --end "
            "(tune runs the first trials, then others can join or resume it)"
        ) from None
    except Exception as exc:
        from drl_trading.common.redaction import mask_secrets

        text = mask_secrets(str(exc)).replace(where.url, where.shown).splitlines()[0]
        raise TuningError(
            f"cannot open the study storage {where.shown}: {type(exc).__name__}: {text}"
        ) from None
    return study, created, where


def tune(
    settings: AppSettings,
    request: TuneRequest,
    on_trial: Callable[[TrialLine], None] | None = None,
) -> TuneSummary:
    """Run ``request``'s trials in this process; what happened to each and the study's best.
    `TuningUsageError` for arguments that cannot make or join the study, `TuningError` for a
    storage that does not answer or data that cannot be trained on."""
    from drl_trading.app.training import build_training_service
    from drl_trading.training.adapter.optuna_study import (
        OptunaTrial,
        counts,
        optimize,
        wait_for_attribute,
    )
    from drl_trading.training.core.service import TrainingRequest
    from drl_trading.training.core.tuning import evaluate_trial

    started = time.perf_counter()
    name = request.study or model_name_for(settings)
    # what a new study records is ready before it exists: workers joining it wait for it
    registry = build_registry(settings)
    protocol = _protocol(settings)
    space = _space(settings)
    study, created, where = _join_or_create(settings, name, request)
    if created:
        assert request.symbols is not None
        assert request.range is not None
        symbols, rng = request.symbols, request.range
        tags = {STUDY_TAG: name, "tuning.role": "study", "model_name_tuned": protocol["model_name"]}
        with registry.start_run(f"{name}-study", tags) as parent:
            parent.log_params(
                {
                    "study": name,
                    "storage": where.shown,
                    "objective": "out-of-sample Sharpe of the validation folds x seeds",
                    "pruner": settings.tuning.pruner.model_dump(mode="json"),
                    "space": {k: v.describe() for k, v in space.items()},
                    "symbols": ",".join(symbols),
                    "range": f"{rng.start.isoformat()}..{rng.end.isoformat()}",
                    "protocol": protocol,
                }
            )
        study.set_user_attr("symbols", list(symbols))
        study.set_user_attr("start", rng.start.isoformat())
        study.set_user_attr("end", rng.end.isoformat())
        study.set_user_attr(PROTOCOL_ATTR, protocol)
        study.set_user_attr(PARENT_ATTR, parent.run_id)  # last: a joining worker waits on it
        parent_id = parent.run_id
    else:
        try:
            parent_id = str(wait_for_attribute(study, PARENT_ATTR, JOIN_WAIT_S))
        except TimeoutError as exc:
            raise TuningError(str(exc)) from None
        settings, symbols, rng = _joined(settings, study, request)
        space = _space(settings)
    base_features = feature_set_for(settings)
    market_data = build_market_data(settings, write_behind=False)
    feature_store = build_feature_store(settings)
    summary = TuneSummary(name, where.shown, parent_id, created)
    n_envs = settings.training.n_envs
    try:
        base = build_training_service(settings, market_data, feature_store, registry)
        correlation = new_id()
        data_request = TrainingRequest(tuple(symbols), rng, correlation)
        try:  # what no trial could train on fails once, here, not once per trial
            base.prepare(data_request)
        except (LookupError, ValueError, RuntimeError) as exc:
            raise TuningError(f"{type(exc).__name__}: {exc}") from None

        def objective(trial: OptunaTrial) -> float:
            parameters = draw(space, trial, n_envs)
            chosen = trial_settings(settings, parameters)
            if feature_set_for(chosen) != base_features:
                raise ValueError(
                    "the strategy's feature set changed with its tunable parameters "
                    f"{sorted(parameters.strategy_params)}: tune searches parameters over the "
                    "stored features only; preprocess the features of each value and tune "
                    "them as separate studies, or set the parameter null in tuning.space"
                )
            service = build_training_service(chosen, market_data, feature_store, registry)
            outcome = evaluate_trial(
                service, data_request, trial, parameters, study=name, parent_run_id=parent_id
            )
            trial.set_attribute("folds", outcome.folds)
            trial.set_attribute("run_id", outcome.run_id)
            return outcome.value

        def finished(t: FrozenTrial) -> None:
            line = _line(t)
            summary.trials.append(line)
            if on_trial is not None:
                on_trial(line)

        optimize(
            study,
            objective,
            trials=request.trials,
            timeout_s=request.timeout_s,
            study_total=request.worker,
            on_trial=finished,
        )
    finally:
        market_data.close()
    summary.study_counts = counts(study)
    summary.best = _best(study)
    summary.seconds = time.perf_counter() - started
    return summary


def _join_or_create(
    settings: AppSettings, name: str, request: TuneRequest
) -> tuple[optuna.Study, bool, StudyStorage]:
    """Study ``name``: created only by a command that gives its data; a worker without the data
    waits (up to `JOIN_WAIT_S`) for the worker that has it to create it, since workers started
    together reach the storage in any order."""
    with_data = request.symbols is not None and request.range is not None
    deadline = time.monotonic() + JOIN_WAIT_S
    while True:
        try:
            return _open(settings, name, create=with_data, seed=request.seed, worker=request.worker)
        except NoStudyError:
            if not request.worker or time.monotonic() > deadline:
                raise
            time.sleep(1.0)


def _joined(
    settings: AppSettings, study: optuna.Study, request: TuneRequest
) -> tuple[AppSettings, tuple[Symbol, ...], TimeRange]:
    """The study's data and protocol for a command joining it; a conflicting request is a
    `TuningUsageError` naming the difference."""
    attrs = study.user_attrs
    symbols = tuple(parse_symbols(",".join(attrs["symbols"])))
    rng = TimeRange.parse(attrs["start"], attrs["end"])
    name = study.study_name
    if request.symbols is not None and tuple(request.symbols) != symbols:
        raise TuningUsageError(
            f"study {name!r} tunes on {','.join(symbols)}, not {','.join(request.symbols)}: "
            "leave --symbols out to continue it, or start a new --study"
        )
    if request.range is not None and request.range != rng:
        raise TuningUsageError(
            f"study {name!r} tunes on {rng}, not {request.range}: leave --start/--end out to "
            "continue it, or start a new --study"
        )
    stored = attrs[PROTOCOL_ATTR]
    mine = _protocol(settings)
    differences = _differences(stored, mine)
    if differences and request.protocol_flags:
        raise TuningUsageError(
            f"study {name!r} judges its trials with another protocol: "
            + "; ".join(differences[:5])
            + ". Leave the protocol flags out to continue it, or start a new --study"
        )
    if differences:
        try:
            settings = _with_protocol(settings, stored)
        except ValueError as exc:
            raise ConfigError(
                f"study {name!r}: its stored protocol no longer loads: {exc}"
            ) from None
    return settings, symbols, rng


def _line(t: FrozenTrial) -> TrialLine:
    return TrialLine(
        number=t.number,
        state=t.state.name.lower(),
        value=t.value if t.values else _last(t.intermediate_values),
        params=dict(t.params),
        folds=t.user_attrs.get("folds"),
        error=t.user_attrs.get("error"),
        run_id=t.user_attrs.get("run_id"),
    )


def _last(values: Mapping[int, float]) -> float | None:
    """A pruned trial's value: its last intermediate one (the Sharpe of its folds run)."""
    return values[max(values)] if values else None


def _best(study: optuna.Study) -> BestTrial | None:
    try:
        t = study.best_trial
    except ValueError:  # no complete trial yet
        return None
    assert t.value is not None
    return BestTrial(t.number, t.value, dict(t.params))


def best_trial(settings: AppSettings, name: str | None) -> tuple[BestTrial, str]:
    """The best complete trial of study ``name`` (default: the model's) and its storage."""
    study_name = name or model_name_for(settings)
    study, _, where = _open(settings, study_name, create=False)
    best = _best(study)
    if best is None:
        raise TuningUsageError(
            f"study {study_name!r} has no complete trial yet ({dict(counts_of(study))}): run "
            "more trials"
        )
    return best, where.shown


def counts_of(study: optuna.Study) -> Mapping[str, int]:
    from drl_trading.training.adapter.optuna_study import counts

    return counts(study)


def register_best(
    settings: AppSettings,
    name: str | None,
    on_progress: TrainProgress | None = None,
) -> tuple[BestTrial, TrainingResult]:
    """Train the best trial's configuration on the study's data with the normal training
    path (register, gate, test backtest), the study's protocol applied."""
    from drl_trading.app.offline_workflow import OfflineWorkflow

    study_name = name or model_name_for(settings)
    best, _ = best_trial(settings, study_name)
    study, _, _ = _open(settings, study_name, create=False)
    joined, symbols, rng = _joined(settings, study, TuneRequest(study=study_name))
    chosen = trial_settings(joined, split_parameters(best.params, joined.training.n_envs))
    with OfflineWorkflow.open(chosen, training=True) as workflow:
        result = workflow.train(symbols, rng, on_progress=on_progress)
    return best, result


def worker_seed(seed: int) -> int:
    """A worker's sampler seed: ``seed`` mixed with the process id, so that workers started
    with one configuration do not draw the same values."""
    return mixed_seed(seed, os.getpid())
