"""Two registered models side by side on the same range: what `drl-trading compare` runs.

Each model is backtested as `drl-trading backtest` backtests it (`model_backtest`'s pieces:
resolved in the registry, its feature set checked against its recorded version, its own feature
set's stored matrix, the configured strategy's signal check, baselines), on the same symbols and
range. Both pay their own costs unless ``fee_bps`` / ``slippage_bps`` override them, for both.
The two must have learnt on the same bars: the same market calendar, data timeframe and base
(decision) timeframe, else their steps do not line up and the comparison is refused naming both.
A ref pair that resolves to one version is refused too (a model compared with itself).

The figures and the paired bootstrap of the Sharpe difference are `evaluation.comparison`'s;
the report is written as HTML + JSON under ``reports/`` and an MLflow run (kind ``compare``)
logs both refs, the figures and both files. Each model's overlap with its own train and
validation ranges is warned about, named.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from drl_trading.app.infrastructure import build_calendars, build_registry, build_strategy
from drl_trading.app.model_backtest import (
    BacktestCosts,
    BacktestRun,
    LoadedModel,
    check_bps,
    check_calendar,
    free_stem,
    load_model,
    model_costs,
    run_backtest,
)
from drl_trading.app.settings import AppSettings
from drl_trading.common.domain import Symbol, TimeRange
from drl_trading.common.errors import UsageError
from drl_trading.common.model_registry import ModelRegistry
from drl_trading.evaluation.comparison import Comparison, compare_backtests
from drl_trading.evaluation.training_overlap import OverlapCheck, check_overlap

DEFAULT_CONFIDENCE = 0.90
"""Two-sided coverage of the intervals: a 90% interval leaves 5% on either side."""
DEFAULT_DATA_TIMEFRAME = "1m"
"""What a package that records no data timeframe was trained on (every one before issue 12)."""


class CompareError(UsageError):
    """The two models cannot be compared as given: one version twice, or models trained on
    different bars (calendar, data or base timeframe); exit 2."""


@dataclass(frozen=True, slots=True)
class ModelComparison:
    comparison: Comparison
    models: tuple[LoadedModel, LoadedModel]
    runs: tuple[BacktestRun, BacktestRun]
    html_path: Path
    json_path: Path
    run_id: str
    """The MLflow run that logged the comparison."""
    overlaps: tuple[OverlapCheck, OverlapCheck]
    costs_line: str
    """``costs: ...`` as the table states them."""
    annualisation: str

    @property
    def warnings(self) -> list[str]:
        """Each model's overlap warnings, prefixed ``A (models:/...)``."""
        return [
            f"{label} ({m.version.uri}): {line}"
            for label, m, o in zip("AB", self.models, self.overlaps, strict=True)
            for line in o.warnings()
        ]


def compare_models(
    settings: AppSettings,
    ref_a: str,
    ref_b: str,
    symbols: Sequence[Symbol],
    rng: TimeRange,
    *,
    registry: ModelRegistry | None = None,
    fee_bps: float | None = None,
    slippage_bps: float | None = None,
    confidence: float = DEFAULT_CONFIDENCE,
) -> ModelComparison:
    """Compare model ``ref_a`` (A) with ``ref_b`` (B), each ``NAME``, ``NAME@alias``,
    ``NAME/version`` or ``models:/...``, on ``symbols`` over ``rng``. `BacktestError` for what
    `backtest` refuses (an unknown model, features not stored, ...), `CompareError` for a
    pair that cannot be compared or a bad option. ``confidence``: of every interval, in (0, 1).
    """
    check_bps("--fee-bps", fee_bps, CompareError)
    check_bps("--slippage-bps", slippage_bps, CompareError)
    if not (math.isfinite(confidence) and 0.0 < confidence < 1.0):
        raise CompareError(
            f"--confidence must be a fraction in (0, 1), got {confidence} (e.g. 0.9 for 90% "
            "intervals)"
        )
    from drl_trading.common.bar_windows import bars_per_year
    from drl_trading.training.adapter.report_files import ReportFiles
    from drl_trading.training.core.backtest_report import annualisation_line
    from drl_trading.training.core.ports import ReportDocuments

    strategy = build_strategy(settings)
    registry = build_registry(settings) if registry is None else registry
    models = (load_model(registry, ref_a), load_model(registry, ref_b))
    a, b = models
    if a.version.uri == b.version.uri:
        raise CompareError(
            f"{ref_a} and {ref_b} both resolve to {a.version.uri}: a model compared with itself "
            "differs by nothing; give two versions (e.g. NAME/1 NAME@champion)"
        )
    _check_same_bars(a, b)
    calendar = build_calendars(settings).for_symbols(symbols)
    for m in models:
        check_calendar(m.version, m.manifest.training, calendar.name, symbols)
    costs = (
        model_costs(a.manifest, fee_bps, slippage_bps),
        model_costs(b.manifest, fee_bps, slippage_bps),
    )
    runs = (
        run_backtest(settings, a, symbols, rng, calendar, strategy, costs[0]),
        run_backtest(settings, b, symbols, rng, calendar, strategy, costs[1]),
    )
    base = a.spec.base_timeframe
    ppy = runs[0].periods_per_year
    if ppy != runs[1].periods_per_year:  # stored ranges in different years: the asked range's
        ppy = bars_per_year(calendar, base, rng.start, rng.end)
    line = annualisation_line(ppy, calendar.name, base)
    names = (a.version.uri, b.version.uri)
    try:
        comparison = compare_backtests(
            runs[0].result, runs[1].result, names, ppy, confidence=confidence
        )
    except ValueError as exc:
        raise CompareError(
            f"{names[0]} and {names[1]} cannot be compared on {', '.join(symbols)} over "
            f"{rng.start:%Y-%m-%d %H:%M}..{rng.end:%Y-%m-%d %H:%M}: {exc}"
        ) from None
    overlap_a, overlap_b = (
        check_overlap(m.manifest.training, [str(s) for s in symbols], rng) for m in models
    )
    draft = ModelComparison(
        comparison=comparison,
        models=models,
        runs=runs,
        html_path=Path(),
        json_path=Path(),
        run_id="",
        overlaps=(overlap_a, overlap_b),
        costs_line=_costs_line(costs),
        annualisation=line,
    )
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    stem = free_stem(
        settings.reports_dir,
        f"{a.version.name}-v{a.version.version}-vs-{b.version.name}-v{b.version.version}"
        f"-compare-{stamp}",
    )
    html, js = ReportFiles(settings.reports_dir).write(
        ReportDocuments(stem, _html(draft, symbols), _json(draft, symbols, rng))
    )
    run_id = _log_run(registry, draft, symbols, rng, html, js)
    return replace(draft, html_path=html, json_path=js, run_id=run_id)


def _check_same_bars(a: LoadedModel, b: LoadedModel) -> None:
    """Both models decide on the same bars: same market calendar, data and base timeframe."""
    for what, key in (("market calendar", "calendar"), ("data timeframe", "data_timeframe")):
        default = "24/7" if key == "calendar" else DEFAULT_DATA_TIMEFRAME
        va = str(a.manifest.training.get(key, default))
        vb = str(b.manifest.training.get(key, default))
        if va != vb:
            raise CompareError(
                f"{a.version.uri} was trained on {what} {va}, {b.version.uri} on {vb}: their "
                f"bars differ, so their returns do not line up; compare models of one {what}"
            )
    ta, tb = a.spec.base_timeframe.value, b.spec.base_timeframe.value
    if ta != tb:
        raise CompareError(
            f"{a.version.uri} decides on {ta} bars, {b.version.uri} on {tb} bars: their steps "
            "do not line up; compare models of one base timeframe"
        )


def _costs_line(costs: tuple[BacktestCosts, BacktestCosts]) -> str:
    """The costs both models paid, as the table states them."""
    a, b = costs
    if a.overridden:
        m = a.model
        return (
            f"costs: fee {m.fee_bps:g} bps, slippage {m.slippage_bps:g} bps for both (overridden)"
        )
    if a.model == b.model:
        return f"costs: fee {a.model.fee_bps:g} bps, slippage {a.model.slippage_bps:g} bps"
    return (
        f"costs: each model's own: A fee {a.model.fee_bps:g} bps, slippage "
        f"{a.model.slippage_bps:g} bps; B fee {b.model.fee_bps:g} bps, slippage "
        f"{b.model.slippage_bps:g} bps"
    )


def _metadata(done: ModelComparison, symbols: Sequence[Symbol]) -> dict[str, str]:
    a, b = done.models
    return {
        "A": f"{a.version.uri} (run {a.version.run_id}, feature set {a.spec.name} "
        f"v{a.spec.version})",
        "B": f"{b.version.uri} (run {b.version.run_id}, feature set {b.spec.name} "
        f"v{b.spec.version})",
        "symbols": ",".join(symbols),
        "steps compared": f"{done.comparison.steps:,}",
        "costs": done.costs_line.removeprefix("costs: "),
        "annualisation": done.annualisation,
        "bootstrap": f"paired stationary block bootstrap, mean block "
        f"{done.comparison.sharpe.a.block_length} bars, {done.comparison.sharpe.a.resamples:,} "
        "resamples",
    }


def _html(done: ModelComparison, symbols: Sequence[Symbol]) -> str:
    from drl_trading.evaluation.comparison_report import render_comparison

    c = done.comparison
    a, b = done.models
    first, last = (t.astype(datetime) for t in (c.times[0], c.times[-1]))
    span = f"{first:%Y-%m-%d %H:%M} .. {last:%Y-%m-%d %H:%M} UTC, {c.steps:,} steps"
    return render_comparison(
        c,
        title=f"{a.version.uri} vs {b.version.uri}",
        subtitle=span,
        metadata=_metadata(done, symbols),
        warnings=done.warnings,
    )


def _json(done: ModelComparison, symbols: Sequence[Symbol], rng: TimeRange) -> str:
    a, b = done.models
    payload = {
        "models": {"a": a.version.uri, "b": b.version.uri},
        "run_ids": {"a": a.version.run_id, "b": b.version.run_id},
        "symbols": list(symbols),
        "range": [rng.start.isoformat(), rng.end.isoformat()],
        "metadata": _metadata(done, symbols),
        "warnings": done.warnings,
        "comparison": done.comparison.to_dict(),
        "range_overlap": {"a": done.overlaps[0].to_dict(), "b": done.overlaps[1].to_dict()},
        "backtests": {"a": done.runs[0].result.to_dict(), "b": done.runs[1].result.to_dict()},
    }
    return json.dumps(payload, indent=2, default=str)


def _log_run(
    registry: ModelRegistry,
    done: ModelComparison,
    symbols: Sequence[Symbol],
    rng: TimeRange,
    html: Path,
    js: Path,
) -> str:
    """Log the comparison as an MLflow run; returns its id. Params: both refs, the range, the
    costs and each model's ``range_overlap``; metrics: ``a.*``, ``b.*`` and ``difference.*``."""
    a, b = done.models
    c = done.comparison
    with registry.start_run(
        f"compare-{a.version.name}-v{a.version.version}-{b.version.name}-v{b.version.version}",
        {
            "kind": "compare",
            "model_a": a.version.uri,
            "model_b": b.version.uri,
            "symbols": ",".join(symbols),
        },
    ) as run:
        run.log_params(
            {
                "model_a": a.version.uri,
                "model_b": b.version.uri,
                "range": f"{rng.start}..{rng.end}",
                "costs": done.costs_line.removeprefix("costs: "),
                "confidence": c.sharpe.confidence,
                "range_overlap_a": done.overlaps[0].summary,
                "range_overlap_b": done.overlaps[1].summary,
            }
        )
        metrics = {
            "difference.sharpe": c.sharpe.difference,
            "difference.ci_lower": c.sharpe.lower,
            "difference.ci_upper": c.sharpe.upper,
            "difference.probability_a_better": c.sharpe.probability_a_better,
            "steps": float(c.steps),
        }
        for side in (c.a, c.b):
            key = side.label.lower()
            for name, value in side.to_dict().items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    metrics[f"{key}.{name}"] = float(value)
            metrics[f"{key}.ci_lower"] = side.ci_lower
            metrics[f"{key}.ci_upper"] = side.ci_upper
        run.log_metrics({k: v for k, v in metrics.items() if math.isfinite(v)})
        run.log_artifact(html, "compare")
        run.log_artifact(js, "compare")
        return run.run_id
