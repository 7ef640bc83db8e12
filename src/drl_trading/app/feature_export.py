"""The stored feature matrix as training sees it, read through the embedded runtime's stores.

`read_stored_features` is what `drl-trading backtest` reads a model's features with;
`export_features` is `drl-trading features export`: the matrix of the configured feature set
written as Parquet or CSV.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from drl_trading.app.infrastructure import build_calendars, feature_set_for
from drl_trading.app.offline_workflow import WorkflowError
from drl_trading.app.runtime import EmbeddedRuntime
from drl_trading.app.settings import AppSettings
from drl_trading.common.calendar import MarketCalendar
from drl_trading.common.domain import Symbol, TimeRange
from drl_trading.common.feature_dataset import DatasetError, FeatureDataset, load_feature_matrix
from drl_trading.strategy.feature_set import FeatureSetSpec
from drl_trading.strategy.feature_view import view_for


@dataclass(frozen=True, slots=True)
class FeatureExport:
    path: Path
    rows: int
    columns: int
    """Columns of the file: keys, features and the base bar's OHLCV."""
    features: int
    view: str
    missing_rows: dict[Symbol, int]
    """Base bars per symbol without a feature row yet (warm-up), left out of the file."""


def read_stored_features(
    settings: AppSettings,
    spec: FeatureSetSpec,
    symbols: Sequence[Symbol],
    rng: TimeRange,
    calendar: MarketCalendar | None = None,
) -> FeatureDataset:
    """The feature matrix of ``spec`` over ``rng``, read at the base bars' closes on the
    symbols' market ``calendar`` (default: theirs in ``markets``; `MixedCalendarsError` for a
    mix); raises `DatasetError` or `LookupError` when bars or features are not stored."""
    if calendar is None:
        calendar = build_calendars(settings).for_symbols(symbols)
    with EmbeddedRuntime.open(settings) as runtime:
        return load_feature_matrix(
            runtime.market_data, runtime.feature_store, view_for(spec), list(symbols), rng, calendar
        )


def export_features(
    settings: AppSettings, symbols: Sequence[Symbol], rng: TimeRange, out: Path
) -> FeatureExport:
    """Write the configured feature set's matrix to ``out`` (``.csv``: CSV, else Parquet).
    `WorkflowError` says what is not stored."""
    spec = feature_set_for(settings)
    try:
        data = read_stored_features(settings, spec, symbols, rng)
    except (DatasetError, LookupError) as exc:
        raise WorkflowError(str(exc)) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    frame = data.frame
    if out.suffix == ".csv":
        frame.write_csv(out)
    else:
        frame.write_parquet(out)
    return FeatureExport(
        path=out,
        rows=frame.height,
        columns=len(frame.columns),
        features=len(spec.columns),
        view=spec.view_name,
        missing_rows=data.missing_rows,
    )
