"""`export_features`: the configured feature set's stored matrix written as CSV or Parquet, and
what is not stored as a `WorkflowError`."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from drl_trading.app.feature_export import export_features
from drl_trading.app.infrastructure import feature_set_for
from drl_trading.app.offline_workflow import OfflineWorkflow, WorkflowError
from drl_trading.app.settings import AppSettings, load_settings
from drl_trading.common.domain import Symbol, TimeRange
from drl_trading.ingest.core.service import TrainingDataRequest

SYM = Symbol("ETHUSDT")
RANGE = TimeRange.parse("2024-01-01", "2024-01-09")


@pytest.fixture
def settings(tmp_path: Path) -> AppSettings:
    return load_settings(home=tmp_path / "home")


def test_the_stored_matrix_is_written_with_its_warm_up_counted(
    settings: AppSettings, tmp_path: Path
) -> None:
    request = TrainingDataRequest((SYM,), RANGE)
    with OfflineWorkflow.open(settings) as workflow:
        workflow.ingest("synthetic", None, request, request_preprocessing=True)
        assert workflow.run(request.request_id).succeeded
    spec = feature_set_for(settings)
    for out in (tmp_path / "out" / "f.csv", tmp_path / "out" / "f.parquet"):
        written = export_features(settings, [SYM], RANGE, out)
        frame = pl.read_csv(out) if out.suffix == ".csv" else pl.read_parquet(out)
        assert (written.rows, written.columns) == (frame.height, len(frame.columns))
        assert set(spec.columns) <= set(frame.columns)
        assert (written.features, written.view) == (len(spec.columns), spec.view_name)
        base_bars = int((RANGE.end - RANGE.start) / spec.base_timeframe.duration)
        assert written.rows + written.missing_rows[SYM] == base_bars
        # ingest fetched the feature set's warm-up before the range: no requested row lost to it
        assert written.missing_rows[SYM] == 0


def test_nothing_stored_is_a_workflow_error(settings: AppSettings, tmp_path: Path) -> None:
    out = tmp_path / "f.parquet"
    with pytest.raises(WorkflowError, match=r"ETHUSDT: no 5m bars stored"):
        export_features(settings, [SYM], RANGE, out)
    assert not out.exists()
