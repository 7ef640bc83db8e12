"""A registered model backtested on any stored range: what `drl-trading backtest` runs.

The model is resolved in the registry and its package loaded; its feature set must hash to the
version it recorded, and that feature set's matrix is read from the stores (preprocessed with
it beforehand). The backtest applies the configured strategy's signal check, as paper trading
does, and the model's own costs; the report is written as HTML + JSON under ``reports/`` and an
MLflow run (kind ``backtest``) logs its per-symbol metrics and both files.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from drl_trading.app.feature_export import read_stored_features
from drl_trading.app.infrastructure import build_registry, build_strategy
from drl_trading.app.settings import AppSettings
from drl_trading.common.costs import CostModel
from drl_trading.common.domain import Symbol, TimeRange
from drl_trading.common.feature_dataset import DatasetError
from drl_trading.common.model_registry import ModelRegistry, ModelVersion
from drl_trading.evaluation.backtest import BacktestResult
from drl_trading.policy.predictor import Predictor
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


def backtest_model(
    settings: AppSettings,
    model_ref: str,
    symbols: Sequence[Symbol],
    rng: TimeRange,
    *,
    registry: ModelRegistry | None = None,
) -> ModelBacktest:
    """Backtest ``model_ref`` (``NAME``, ``NAME@alias``, ``NAME/version`` or ``models:/...``) on
    ``symbols`` over ``rng``; raises `BacktestError` with the message for the user.
    ``registry``: the configured one unless given."""
    from drl_trading.evaluation.backtest import backtest
    from drl_trading.evaluation.metrics import periods_per_year
    from drl_trading.training.adapter.report_files import ReportFiles
    from drl_trading.training.core.backtest_report import backtest_documents
    from drl_trading.training.core.dataset import series_from_frame

    # the signal check paper trading applies: the configured strategy's (as `paper` uses it)
    strategy = build_strategy(settings)
    registry = build_registry(settings) if registry is None else registry
    version, predictor = _load_model(registry, model_ref)
    m = predictor.manifest
    spec = FeatureSetSpec.model_validate(m.feature_set)
    if spec.version != m.feature_set_version:
        raise BacktestError(
            f"{version.uri}: feature set definition does not hash to its recorded version"
        )
    try:
        data = read_stored_features(settings, spec, symbols, rng)
    except (DatasetError, LookupError) as exc:
        raise BacktestError(
            f"{exc} (the model needs feature set {spec.name} v{spec.version}; preprocess "
            "the range with that feature set first)"
        ) from None
    result = backtest(
        predictor,
        series_from_frame(data.frame, spec.columns, spec.base_timeframe),
        costs=CostModel(m.fee_bps, m.slippage_bps),
        periods_per_year=periods_per_year(spec.base_timeframe.minutes),
        random_seeds=settings.training.random_agent_seeds,
        strategy=strategy,
    )
    names = ",".join(symbols)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    documents = backtest_documents(
        result,
        version,
        title=f"Backtest of {version.uri}",
        extra={"symbols": names},
        stem=f"{version.name}-v{version.version}-backtest-{stamp}",
        manifest=m,
    )
    html, js = ReportFiles(settings.reports_dir).write(documents)
    run_id = _log_run(registry, version, result, names, rng, html, js)
    return ModelBacktest(result, version, html, js, run_id)


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
) -> str:
    """Log the backtest as an MLflow run; returns its id."""
    with registry.start_run(
        f"backtest-{version.name}-v{version.version}",
        {"kind": "backtest", "model_uri": version.uri, "symbols": symbols},
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
        return run.run_id
