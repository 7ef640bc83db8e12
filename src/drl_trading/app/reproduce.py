"""A logged training run trained again from its record: what `drl-trading reproduce` runs.

The run's provenance record (`drl_trading.training.core.provenance`) gives the settings that
decide its numbers (markets, strategy, preprocess, training), the request and the fingerprints
of the data it read. The re-run takes those sections from the record and everything else (where
the stores, the bus and the tracking server are, and their credentials, which the record holds
masked) from this installation's settings; it reads the same range from the same stores, trains,
gates and backtests as `train` does, and logs its own run, with its own record, to the
experiment ``<experiment>-reproduce`` under the model ``<model>-reproduce``, so that reproducing
neither replaces a champion nor counts as a trial of the model. The two runs are then compared
metric by metric and record by record.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from drl_trading.app.infrastructure import model_name_for
from drl_trading.app.offline_workflow import OfflineWorkflow
from drl_trading.app.settings import AppSettings
from drl_trading.common.domain import Symbol, Timeframe, TimeRange
from drl_trading.common.errors import OperatorError, UsageError
from drl_trading.common.model_registry import flatten_params
from drl_trading.common.redaction import MASK
from drl_trading.training.core.provenance import (
    RESULT_SECTIONS,
    MetricMatch,
    Provenance,
    RecordedRun,
    RecordedRuns,
    compare_metrics,
    provenance_differences,
)

if TYPE_CHECKING:
    from drl_trading.training.core.progress import TrainingProgress

SUFFIX = "-reproduce"
"""Appended to the experiment and the registered model a re-run logs to."""


class ReproduceError(OperatorError):
    """The run cannot be reproduced: unknown, without a provenance record, or its training
    failed now; the message names which and what to do."""


class UnknownRunError(ReproduceError, UsageError):
    """No run of that id in the tracking store."""


@dataclass(frozen=True)
class Reproduction:
    """A recorded run beside its re-run."""

    recorded: RecordedRun
    reproduced: RecordedRun
    metrics: list[MetricMatch]
    differences: list[str]
    """One line per input of the re-run that differs from the record (`provenance_differences`)."""

    @property
    def matches(self) -> bool:
        """Every compared metric matches (differences of inputs are named, not judged)."""
        compared = [m for m in self.metrics if m.compared]
        return bool(compared) and all(m.match for m in compared)


def reproduce_run(
    settings: AppSettings,
    run_id: str,
    *,
    runs: RecordedRuns | None = None,
    on_progress: Callable[[TrainingProgress], None] | None = None,
) -> Reproduction:
    """Train ``run_id`` again from its record and compare; `ReproduceError` with the user's
    message when it cannot. ``runs``: where recorded runs are read (default: the configured
    MLflow tracking store)."""
    from drl_trading.common.events import new_id
    from drl_trading.training.core.service import TrainingRequest

    if runs is None:
        from drl_trading.training.adapter.mlflow_recorded_runs import MlflowRecordedRuns

        runs = MlflowRecordedRuns(settings.mlflow_tracking_uri)
    recorded = _read(runs, run_id)
    record = recorded.provenance
    if record is None:
        raise ReproduceError(
            f"run {run_id} has no provenance record (it was trained before runs recorded one, "
            "or is not a training run); train it again with `drl-trading train` to get a run "
            "that can be reproduced"
        )
    rebuilt = rebuilt_settings(settings, record)
    request = TrainingRequest(
        tuple(Symbol(s) for s in record.symbols),
        TimeRange.parse(record.start, record.end),
        correlation_id=new_id(),
        total_timesteps=record.total_timesteps,
        data_timeframe=Timeframe(record.data_timeframe),
    )
    with OfflineWorkflow.open(rebuilt, training=True) as workflow:
        service = workflow.runtime.enable_training().service
        service.on_progress = on_progress
        try:
            result = service.train(request)
        except (LookupError, ValueError, RuntimeError) as exc:
            raise ReproduceError(
                f"re-running {run_id} failed: {type(exc).__name__}: {exc}"
            ) from None
    again = _read(runs, result.run_id)
    assert again.provenance is not None  # every training run logs its record
    return Reproduction(
        recorded=recorded,
        reproduced=again,
        metrics=compare_metrics(recorded.metrics, again.metrics),
        differences=provenance_differences(record, again.provenance),
    )


RETIRED_SETTINGS: dict[str, tuple[tuple[str, ...], ...]] = {
    "training": (("gate", "max_seed_sharpe_std"),),
}
"""Settings earlier versions recorded that this one no longer has, per section (their paths in
it). A record that holds one is rebuilt without it (this version's setting in its place), and
`provenance_differences` names both, so the re-run's changed gate threshold is reported rather
than the run refused: ``gate.max_seed_sharpe_std`` (absolute annualised Sharpe) became
``gate.max_seed_sharpe_spread`` (in standard errors), which cannot be converted."""


def _without_retired(name: str, section: dict[str, Any]) -> dict[str, Any]:
    """A copy of the recorded ``section`` without the `RETIRED_SETTINGS` of ``name``."""
    out = copy.deepcopy(section)
    for path in RETIRED_SETTINGS.get(name, ()):
        node: Any = out
        for key in path[:-1]:
            node = node.get(key)
            if not isinstance(node, dict):
                break
        else:
            node.pop(path[-1], None)
    return out


def rebuilt_settings(current: AppSettings, record: Provenance) -> AppSettings:
    """``current`` with the recorded `RESULT_SECTIONS`, logging to ``<experiment>-reproduce``
    and registering ``<model>-reproduce``; its reports go where ``current``'s do.
    `ReproduceError` for a section the record cannot rebuild (missing, masked or invalid)."""
    from pydantic import ValidationError

    update: dict[str, Any] = {}
    for name in RESULT_SECTIONS:
        section = record.settings.get(name)
        if not isinstance(section, dict):
            raise ReproduceError(f"the run's recorded settings lack the {name!r} section")
        masked = [k for k, v in flatten_params(section).items() if MASK in v]
        if masked:
            raise ReproduceError(
                f"the run's recorded setting {name}.{masked[0]} was masked as a secret, so the "
                "run cannot be rebuilt from its record"
            )
        model = type(getattr(current, name))
        try:
            update[name] = model.model_validate(_without_retired(name, section))
        except ValidationError as exc:
            raise ReproduceError(
                f"the run's recorded {name!r} settings are not valid in this version: "
                f"{exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}"
            ) from None
    registry = current.training.registry
    training = update["training"].model_copy(
        update={
            "registry": registry.model_copy(
                update={
                    "experiment": registry.experiment + SUFFIX,
                    "model_name": model_name_for(current.model_copy(update=update)) + SUFFIX,
                }
            ),
            "reports_dir": current.training.reports_dir,
        }
    )
    return current.model_copy(update={**update, "training": training})


def _read(runs: RecordedRuns, run_id: str) -> RecordedRun:
    try:
        return runs.recorded(run_id)
    except LookupError as exc:
        raise UnknownRunError(str(exc)) from None
    except ValueError as exc:
        raise ReproduceError(f"run {run_id}: {exc}") from None
