"""A registered model backtested on any stored range: what `drl-trading backtest` runs.

The model is resolved in the registry and its package loaded; its feature set must hash to the
version it recorded, and that feature set's matrix is read from the stores (preprocessed with
it beforehand). The backtest applies the configured strategy's signal check, as paper trading
does, and the model's own costs unless overridden (``fee_bps``/``slippage_bps``: a cost stress
test, recorded in the report and the run's params); the report is written as HTML + JSON under
``reports/`` and an MLflow run (kind ``backtest``) logs its per-symbol metrics and both files.

The symbols' market calendar (``markets``) decides which bars are consecutive and the
annualisation (`drl_trading.common.bar_windows.bars_per_year`, shown in the report); a model
trained on another calendar (its manifest's ``training["calendar"]``, 24/7 when absent) is
refused.

A range that overlaps the model's train or validation range is in-sample: the result carries a
warning naming both ranges and the overlap (`drl_trading.evaluation.training_overlap`), as do
the reports; a model that records no ranges gets a warning that the check could not be made.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from drl_trading.app.feature_export import read_stored_features
from drl_trading.app.infrastructure import build_calendars, build_registry, build_strategy
from drl_trading.app.settings import AppSettings
from drl_trading.common.calendar import MarketCalendar
from drl_trading.common.costs import CostModel
from drl_trading.common.domain import Symbol, TimeRange
from drl_trading.common.feature_dataset import DatasetError
from drl_trading.common.model_registry import ModelRegistry, ModelVersion
from drl_trading.evaluation.backtest import BacktestResult
from drl_trading.evaluation.training_overlap import OverlapCheck, check_overlap
from drl_trading.policy.package import ModelManifest
from drl_trading.policy.predictor import Predictor
from drl_trading.strategy.api import Strategy
from drl_trading.strategy.feature_set import FeatureSetSpec


class BacktestError(Exception):
    """The model cannot be backtested: unknown to the registry, a package that does not load,
    a feature set that does not hash to its recorded version, or features not stored."""


@dataclass(frozen=True, slots=True)
class ModelBacktest:
    result: BacktestResult
    version: ModelVersion
    html_path: Path
    json_path: Path
    run_id: str
    """The MLflow run that logged the backtest."""
    overlap: OverlapCheck
    """The range against the model's train and validation ranges."""

    @property
    def warnings(self) -> list[str]:
        """What to tell the user before the figures (also in both reports)."""
        return self.overlap.warnings()


def backtest_model(
    settings: AppSettings,
    model_ref: str,
    symbols: Sequence[Symbol],
    rng: TimeRange,
    *,
    registry: ModelRegistry | None = None,
    fee_bps: float | None = None,
    slippage_bps: float | None = None,
) -> ModelBacktest:
    """Backtest ``model_ref`` (``NAME``, ``NAME@alias``, ``NAME/version`` or ``models:/...``) on
    ``symbols`` over ``rng``; raises `BacktestError` with the message for the user.
    ``registry``: the configured one unless given. ``fee_bps`` / ``slippage_bps`` (basis points
    of the filled notional, >= 0) replace the model's own for this backtest only."""
    check_bps("--fee-bps", fee_bps)
    check_bps("--slippage-bps", slippage_bps)
    from drl_trading.training.adapter.report_files import ReportFiles
    from drl_trading.training.core.backtest_report import backtest_documents

    # the signal check paper trading applies: the configured strategy's (as `paper` uses it)
    strategy = build_strategy(settings)
    registry = build_registry(settings) if registry is None else registry
    model = load_model(registry, model_ref)
    version, m = model.version, model.manifest
    calendar = build_calendars(settings).for_symbols(symbols)
    check_calendar(version, m.training, calendar.name, symbols)
    costs = model_costs(m, fee_bps, slippage_bps)
    run = run_backtest(settings, model, symbols, rng, calendar, strategy, costs)
    result = run.result
    overlap = check_overlap(m.training, [str(s) for s in symbols], rng)
    names = ",".join(symbols)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    extra = {"symbols": names, "annualisation": run.annualisation}
    if costs.overridden:
        extra["costs"] = costs.note(m)
    documents = backtest_documents(
        result,
        version,
        title=f"Backtest of {version.uri}",
        extra=extra,
        stem=free_stem(settings.reports_dir, f"{version.name}-v{version.version}-backtest-{stamp}"),
        manifest=m,
        warnings=overlap.warnings(),
        details={"range_overlap": overlap.to_dict()},
    )
    html, js = ReportFiles(settings.reports_dir).write(documents)
    run_id = _log_run(registry, version, result, names, rng, html, js, overlap)
    return ModelBacktest(result, version, html, js, run_id, overlap)


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A registered model's version, its loaded package and the feature set it was trained on
    (checked to hash to the version it recorded)."""

    version: ModelVersion
    predictor: Predictor
    spec: FeatureSetSpec

    @property
    def manifest(self) -> ModelManifest:
        return self.predictor.manifest


@dataclass(frozen=True, slots=True)
class BacktestCosts:
    """The costs a backtest charges: the model's own, or ``--fee-bps``/``--slippage-bps``."""

    model: CostModel
    overridden: bool
    """True when either figure replaces the model's own (a cost stress test)."""

    def note(self, manifest: ModelManifest) -> str:
        """The report's costs line for overridden costs, with the model's own beside them."""
        return (
            f"fee {self.model.fee_bps:g} bps + slippage {self.model.slippage_bps:g} bps per unit "
            f"(overridden; the model's: fee {manifest.fee_bps:g} bps + slippage "
            f"{manifest.slippage_bps:g} bps)"
        )


@dataclass(frozen=True, slots=True)
class BacktestRun:
    """A model's backtest and how its figures were annualised."""

    result: BacktestResult
    periods_per_year: float
    annualisation: str
    """``6,288 1h bars a year (market calendar fx)``: `annualisation_line`."""


def load_model(registry: ModelRegistry, model_ref: str) -> LoadedModel:
    """Resolve ``model_ref`` and load its package; `BacktestError` for an unknown model, a
    package that does not load, or a feature set that does not hash to its recorded version."""
    version, predictor = _load_model(registry, model_ref)
    m = predictor.manifest
    spec = FeatureSetSpec.model_validate(m.feature_set)
    if spec.version != m.feature_set_version:
        raise BacktestError(
            f"{version.uri}: feature set definition does not hash to its recorded version"
        )
    return LoadedModel(version, predictor, spec)


def model_costs(
    manifest: ModelManifest, fee_bps: float | None, slippage_bps: float | None
) -> BacktestCosts:
    """The model's costs, each replaced by ``fee_bps`` / ``slippage_bps`` where given."""
    return BacktestCosts(
        CostModel(
            manifest.fee_bps if fee_bps is None else fee_bps,
            manifest.slippage_bps if slippage_bps is None else slippage_bps,
        ),
        fee_bps is not None or slippage_bps is not None,
    )


def run_backtest(
    settings: AppSettings,
    model: LoadedModel,
    symbols: Sequence[Symbol],
    rng: TimeRange,
    calendar: MarketCalendar,
    strategy: Strategy,
    costs: BacktestCosts,
) -> BacktestRun:
    """Backtest ``model`` with its baselines on its own feature set's stored matrix of
    ``symbols`` over ``rng`` (`BacktestError` when it is not stored), annualised by
    ``calendar``'s bars a year over the stored range."""
    from drl_trading.common.bar_windows import bars_per_year
    from drl_trading.evaluation.backtest import backtest
    from drl_trading.training.core.backtest_report import annualisation_line
    from drl_trading.training.core.dataset import series_from_frame, stored_range

    spec = model.spec
    try:
        data = read_stored_features(settings, spec, symbols, rng, calendar)
    except (DatasetError, LookupError) as exc:
        raise BacktestError(
            f"{exc} (the model needs feature set {spec.name} v{spec.version}; preprocess "
            "the range with that feature set first)"
        ) from None
    base = spec.base_timeframe
    stored = stored_range(data.frame, base, rng, calendar)
    ppy = bars_per_year(calendar, base, stored.start, stored.end)
    line = annualisation_line(ppy, calendar.name, base)
    result = backtest(
        model.predictor,
        series_from_frame(data.frame, spec.columns, base, calendar=calendar),
        costs=costs.model,
        periods_per_year=ppy,
        random_seeds=settings.training.random_agent_seeds,
        strategy=strategy,
        costs_overridden=costs.overridden,
        lookbacks=settings.training.baselines.lookbacks,
        annualisation=line,
    )
    return BacktestRun(result, ppy, line)


def free_stem(folder: Path, stem: str) -> str:
    """``stem``, or ``stem-2``, ``stem-3`` ... when a report of that name exists (two backtests of
    one model in the same second must not overwrite each other's report)."""
    candidate, k = stem, 1
    while (folder / f"{candidate}.json").exists() or (folder / f"{candidate}.html").exists():
        k += 1
        candidate = f"{stem}-{k}"
    return candidate


def check_calendar(
    version: ModelVersion, training: Mapping[str, Any], calendar: str, symbols: Sequence[Symbol]
) -> None:
    """A model learnt on one market calendar's bars (a package that records none: 24/7) is not
    backtested on another's: its observations count bars, and its figures would be annualised
    by another clock."""
    trained = str(training.get("calendar", "24/7"))
    if trained != calendar:
        names = ", ".join(symbols)
        raise BacktestError(
            f"{version.uri} was trained on market calendar {trained}, but {names} trade on "
            f"{calendar}; backtest it on symbols of calendar {trained}, or set "
            f"markets.symbols.<SYMBOL>.calendar to {trained} if that is their market"
        )


def check_bps(option: str, value: float | None, error: type[Exception] = BacktestError) -> None:
    """``value`` of ``option`` is a finite number of basis points >= 0, or ``error``."""
    if value is not None and not (math.isfinite(value) and value >= 0):
        raise error(
            f"{option} must be a finite number of basis points >= 0, got {value} "
            "(e.g. 10 for 0.1% of the traded notional)"
        )


def _load_model(registry: ModelRegistry, model_ref: str) -> tuple[ModelVersion, Predictor]:
    from drl_trading.policy.package import ModelPackageError

    try:
        version = registry.resolve(model_ref)
    except LookupError as exc:
        raise BacktestError(str(exc)) from None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            return version, Predictor.load(registry.download_package(version, Path(tmp)))
        except ModelPackageError as exc:
            raise BacktestError(str(exc)) from None


def _log_run(
    registry: ModelRegistry,
    version: ModelVersion,
    result: BacktestResult,
    symbols: str,
    rng: TimeRange,
    html: Path,
    js: Path,
    overlap: OverlapCheck,
) -> str:
    """Log the backtest as an MLflow run; returns its id. Params record the costs paid
    (``fee_bps``, ``slippage_bps``, ``costs_overridden``) and ``range_overlap`` (the model's
    parts the range overlaps, ``none`` or ``unchecked``)."""
    with registry.start_run(
        f"backtest-{version.name}-v{version.version}",
        {"kind": "backtest", "model_uri": version.uri, "symbols": symbols},
    ) as run:
        costs = result.costs
        run.log_params(
            {
                "model": version.uri,
                "range": f"{rng.start}..{rng.end}",
                **(
                    {"fee_bps": costs.fee_bps, "slippage_bps": costs.slippage_bps}
                    if costs is not None
                    else {}
                ),
                "costs_overridden": str(result.costs_overridden).lower(),
                "range_overlap": overlap.summary,
            }
        )
        run.log_metrics(
            {
                f"{s.symbol}.{k}": float(v)
                for s in result.symbols
                for k, v in s.model.to_dict().items()
                if isinstance(v, int | float) and not isinstance(v, bool)
            }
            | result.baseline_metrics(per_symbol=True)
        )
        run.log_artifact(html, "backtest")
        run.log_artifact(js, "backtest")
        return run.run_id
