"""Training's splits are cut over the data stored inside the requested range, not over the
requested range; too little data is an error that gives the stored range and what the splits
need; ranges read as ranges in every message."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from drl_trading.app.infrastructure import feature_set_for
from drl_trading.app.offline_workflow import OfflineWorkflow
from drl_trading.app.settings import AppSettings, load_settings
from drl_trading.common.adapter.memory_registry import InMemoryRegistry
from drl_trading.common.domain import Symbol, Timeframe, TimeRange
from drl_trading.ingest.core.service import TrainingDataRequest
from drl_trading.strategy import BaseStrategy
from drl_trading.testing.pandas_csv import write_pandas_csv
from drl_trading.testing.tiny_training import tiny_quickstart_config
from drl_trading.training.adapter.fixed_revision import FixedRevision
from drl_trading.training.adapter.fixed_versions import FixedVersions
from drl_trading.training.adapter.registry_packages import RegistryPackages
from drl_trading.training.adapter.report_files import ReportFiles
from drl_trading.training.adapter.sb3_trainer import SB3Trainer
from drl_trading.training.core.dataset import (
    SplitError,
    length,
    make_splits,
    split_length_needed,
    stored_range,
)
from drl_trading.training.core.service import TrainingRequest, TrainingService

SYM = Symbol("TESTUSDT")
DAY = timedelta(days=1)
T0 = datetime(2024, 1, 10, tzinfo=UTC)
WIDE = TimeRange.parse("2024-01-01", "2024-03-01")
"""The range a user asks for (quickstart's default), wider than the file."""
EMBARGO = timedelta(hours=12)


@pytest.mark.parametrize(
    ("span", "text"),
    [
        (timedelta(0), "0 min"),
        (timedelta(hours=12), "12 h"),
        (timedelta(days=1, hours=16, minutes=25), "1 day 16 h 25 min"),
        (timedelta(days=3, seconds=5), "3 days 5 s"),
    ],
)
def test_lengths_read_as_days_hours_and_minutes(span: timedelta, text: str) -> None:
    assert length(span) == text


def test_a_range_reads_as_a_range() -> None:
    assert str(TimeRange.parse("2024-01-10", "2024-01-30")) == (
        "2024-01-10 00:00..2024-01-30 00:00 UTC"
    )
    assert str(TimeRange.parse("2024-01-10T00:00:30", "2024-01-11")) == (
        "2024-01-10 00:00:30..2024-01-11 00:00:00 UTC"
    )
    assert f"{WIDE}" == "2024-01-01 00:00..2024-03-01 00:00 UTC"


def test_the_stored_range_is_first_row_to_last_row_plus_a_bar_inside_the_request() -> None:
    times = [T0 + timedelta(minutes=5 * i) for i in range(10)]
    frame = pl.DataFrame({"bar_open_time": times}).with_columns(
        pl.col("bar_open_time").dt.cast_time_unit("us")
    )
    assert stored_range(frame, Timeframe.M5, WIDE) == TimeRange(T0, T0 + timedelta(minutes=50))
    inner = TimeRange(T0 + timedelta(minutes=10), T0 + timedelta(minutes=20))
    assert stored_range(frame, Timeframe.M5, inner) == inner


SETTINGS = list(
    itertools.product(
        [Timeframe.M1, Timeframe.M5, Timeframe.H1],
        [0.05, 0.15, 0.25],  # validation fraction
        [0.1, 0.3],  # test fraction
        [timedelta(0), EMBARGO, 2 * DAY],
        [1, 2],  # folds
        [2, 33],  # least bars per part
    )
)


@pytest.mark.parametrize(("base", "val", "test", "embargo", "folds", "bars"), SETTINGS)
def test_the_length_the_splits_need_is_enough_and_a_quarter_less_is_not(
    base: Timeframe, val: float, test: float, embargo: timedelta, folds: int, bars: int
) -> None:
    """Flooring to the grid moves each boundary by up to a bar, so the least length is exact
    to a few bars only: a quarter less must fail where that is more than a few bars."""
    need = split_length_needed(base, val, test, embargo, folds, bars)
    for start in (T0, T0 + 7 * base.duration):
        splits = make_splits(
            TimeRange(start, start + need), base, val, test, embargo, folds, min_bars=bars
        )
        parts = [p for f in splits.folds for p in (f.train, f.validation)] + [splits.test]
        assert all(p.end - p.start >= bars * base.duration for p in parts)
        assert splits.folds[0].train.start == start
        assert splits.test.end == start + need
        if need < 100 * base.duration:
            continue
        short = TimeRange(start, start + need * 0.75)
        with pytest.raises(SplitError, match="too little data for the splits"):
            make_splits(short, base, val, test, embargo, folds, min_bars=bars)


def test_too_little_data_says_how_long_it_is_and_what_the_splits_need() -> None:
    rng = TimeRange(T0, T0 + DAY)
    with pytest.raises(SplitError) as err:
        make_splits(rng, Timeframe.M5, 0.15, 0.15, EMBARGO, min_bars=2)
    assert str(err.value) == (
        "too little data for the splits: the range 2024-01-10 00:00..2024-01-11 00:00 UTC, "
        "1 day; the splits (training.split) need at least 1 day 16 h 25 min: validation 15% and "
        "test 15% of it, an embargo of 12 h between the parts, and training at least 10% of it; "
        "every part at least 2 5m bars. Ingest a longer range, or lower "
        "training.split.validation_fraction, test_fraction or embargo"
    )
    assert "TimeRange(" not in str(err.value)


# -- the training service over a file shorter than the requested range ----------------------


@pytest.fixture
def settings(tmp_path: Path) -> AppSettings:
    return load_settings(
        home=tmp_path / "home",
        market_data={"kind": "memory"},
        feature_store={"kind": "memory"},
        **tiny_quickstart_config(),
    )


def write_file(path: Path, days: float) -> Path:
    """``days`` of 1m bars from `T0` as pandas writes them (a random walk, seed 3)."""
    return write_pandas_csv(path, T0, days, seed=3)


@contextmanager
def service_over_file(
    settings: AppSettings, path: Path, rng: TimeRange
) -> Iterator[TrainingService]:
    """Ingest and preprocess ``path`` over ``rng`` (in-memory stores); the training service on
    those stores, with an in-memory registry."""
    with OfflineWorkflow.open(settings) as workflow:
        request = TrainingDataRequest((SYM,), rng)
        workflow.ingest("file", path, request, request_preprocessing=True)
        assert workflow.run(request.request_id).succeeded
        runtime = workflow.runtime
        registry = InMemoryRegistry(settings.home / "registry")
        yield TrainingService(
            runtime.market_data,
            runtime.feature_store,
            registry,
            BaseStrategy(),
            feature_set_for(settings),
            settings.training,
            model_name="tiny",
            trainer=SB3Trainer(),
            revision=FixedRevision(None),
            reports=ReportFiles(settings.home / "reports"),
            packages=RegistryPackages(registry),
            libraries=FixedVersions({"drl-trading": "0"}),
        )


def test_splits_lie_inside_the_stored_data_of_a_wider_request(
    settings: AppSettings, tmp_path: Path
) -> None:
    held = TimeRange(T0, T0 + 3 * DAY)
    with service_over_file(settings, write_file(tmp_path / "f.csv", 3), WIDE) as service:
        result = service.train(TrainingRequest((SYM,), WIDE, "c1"))
    parts = [result.splits.final.train, result.splits.final.validation, result.splits.test]
    for part in parts:
        assert held.start <= part.start < part.end <= held.end, part
    assert result.splits.test.end == held.end
    assert result.test.bars > 0


def test_a_file_too_short_for_the_splits_is_an_error_giving_its_stored_range(
    settings: AppSettings, tmp_path: Path
) -> None:
    with (
        service_over_file(settings, write_file(tmp_path / "f.csv", 1), WIDE) as service,
        pytest.raises(SplitError) as err,
    ):
        service.train(TrainingRequest((SYM,), WIDE, "c1"))
    message = str(err.value)
    assert message.startswith(
        "too little data for the splits: the feature rows stored in the requested range "
        "2024-01-01 00:00..2024-03-01 00:00 UTC (1m bars stored: TESTUSDT 2024-01-10 "
        "00:00..2024-01-11 00:00 UTC) cover 2024-01-10 00:"
    )
    assert "..2024-01-11 00:00 UTC, 23 h " in message
    assert "need at least 1 day 16 h 25 min" in message
    assert "TimeRange(" not in message
