"""The provenance record of a training run: fingerprints stable across processes and sensitive
to every value, a JSON round trip, metric comparison, and every changed input named."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from drl_trading.app.reproduce import (
    SUFFIX,
    ReproduceError,
    UnknownRunError,
    rebuilt_settings,
    reproduce_run,
)
from drl_trading.app.settings import AppSettings, load_settings
from drl_trading.common.adapter.memory_registry import InMemoryRegistry
from drl_trading.training.adapter.memory_recorded_runs import MemoryRecordedRuns
from drl_trading.training.core.provenance import (
    PROVENANCE_ARTIFACT,
    TOLERANCE,
    MetricMatch,
    Provenance,
    compare_metrics,
    frame_fingerprints,
    provenance_differences,
)

FEATURES = ("rsi_7", "ret_1")


def _frame() -> pl.DataFrame:
    times = [datetime(2024, 1, 1, 0, 5 * i, tzinfo=UTC) for i in range(4)]
    return pl.DataFrame(
        {
            "symbol": ["BTCUSDT"] * 4,
            "event_time": times,
            "rsi_7": [50.0, 51.5, 49.25, 48.0],
            "ret_1": pl.Series([0.0, 0.01, -0.02, 0.005], dtype=pl.Float32),
            "bar_open": [100.0, 101.0, 99.0, 98.0],
            "bar_close": [101.0, 99.0, 98.0, 98.5],
            "bar_open_time": times,
        }
    )


def _record(frame: pl.DataFrame | None = None, **changes: Any) -> Provenance:
    settings = load_settings(home=Path("/tmp/unused-home")).masked_dump()
    base = Provenance.of_run(
        settings=settings,
        symbols=["BTCUSDT"],
        start="2024-01-01T00:00:00+00:00",
        end="2024-01-04T00:00:00+00:00",
        data_timeframe="1m",
        total_timesteps=256,
        feature_set_version="abc123",
        frame=_frame() if frame is None else frame,
        feature_columns=FEATURES,
        seed=42,
        n_envs=2,
        random_agent_seeds=1,
        libraries={"python": "3.11.9", "torch": "2.13.0", "numpy": "2.1.0"},
        code_version="deadbeef",
        device="cpu",
        torch_threads=1,
    )
    return Provenance.from_dict(base.to_dict() | changes)


def test_fingerprints_are_the_same_in_another_process() -> None:
    here = frame_fingerprints(_frame(), FEATURES)
    code = textwrap.dedent(
        """
        import json, sys
        sys.path.insert(0, {tests!r})
        from unit.test_provenance import FEATURES, _frame
        from drl_trading.training.core.provenance import frame_fingerprints
        print(json.dumps(frame_fingerprints(_frame(), FEATURES)))
        """
    ).format(tests=str(Path(__file__).parents[1]))
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123", "PATH": ""},
    )
    assert tuple(json.loads(out.stdout)) == here


def test_a_changed_bar_changes_only_the_bars_fingerprint() -> None:
    features, bars = frame_fingerprints(_frame(), FEATURES)
    moved = _frame().with_columns(pl.Series("bar_close", [101.0, 99.0, 98.0, 98.6]))
    features2, bars2 = frame_fingerprints(moved, FEATURES)
    assert features2 == features and bars2 != bars
    changed = _frame().with_columns(pl.Series("rsi_7", [50.0, 51.5, 49.25, 48.000001]))
    assert frame_fingerprints(changed, FEATURES)[0] != features
    retyped = _frame().with_columns(pl.col("ret_1").cast(pl.Float64))
    assert frame_fingerprints(retyped, FEATURES)[0] != features
    assert frame_fingerprints(_frame().head(3), FEATURES) != (features, bars)


def test_record_round_trips_through_json_and_refuses_another_format() -> None:
    record = _record()
    again = Provenance.from_dict(json.loads(json.dumps(record.to_dict())))
    assert again == record
    assert record.seeds["environments"] == [42, 43]
    assert record.torch["use_deterministic_algorithms"] is True
    assert record.torch["threads"] == 1
    with pytest.raises(ValueError, match="format 2"):
        Provenance.from_dict(record.to_dict() | {"format": 2})
    data = record.to_dict()
    del data["bars_fingerprint"]
    with pytest.raises(ValueError, match="lacks bars_fingerprint"):
        Provenance.from_dict(data)


def test_metrics_match_exactly_within_tolerance_or_not() -> None:
    recorded = {"test.sharpe": 1.25, "test.x": 0.1, "test.nan": math.nan, "test.gone": 2.0}
    reproduced = {
        "test.sharpe": 1.25,
        "test.x": 0.1 + TOLERANCE / 2,
        "test.nan": math.nan,
        "test.new": 3.0,
        "train.seconds": 9.0,
        "gate.min_sharpe.passed": 1.0,
    }
    by_name = {m.name: m for m in compare_metrics(recorded, reproduced)}
    assert by_name["test.sharpe"].verdict == "exact"
    assert by_name["test.nan"].verdict == "exact"
    assert by_name["test.x"].match and by_name["test.x"].verdict == "within 1e-12"
    assert not by_name["test.gone"].match and by_name["test.gone"].reproduced is None
    assert not by_name["test.new"].match
    assert not by_name["train.seconds"].compared and by_name["train.seconds"].match
    assert by_name["gate.min_sharpe.passed"].verdict == "not compared"
    far = MetricMatch("test.sharpe", 1.25, 1.25 + 4 * TOLERANCE)
    assert not far.match and far.verdict == "no"
    assert not MetricMatch("a", math.inf, -math.inf).match
    assert MetricMatch("a", math.inf, math.inf).match


def test_the_same_inputs_have_no_differences() -> None:
    assert provenance_differences(_record(), _record()) == []


def test_changed_data_library_and_settings_are_named() -> None:
    recorded = _record()
    moved = _frame().with_columns(pl.Series("bar_close", [101.0, 99.0, 98.0, 90.0]))
    settings = json.loads(json.dumps(recorded.settings))
    settings["training"]["seed"] = 7
    settings["training"]["registry"]["experiment"] = "elsewhere"  # replaced on purpose
    now = _record(
        moved,
        libraries=recorded.libraries | {"torch": "2.14.0"},
        settings=settings,
    )
    lines = provenance_differences(recorded, now)
    assert any(
        line.startswith("data fingerprint changed: the stored bars of BTCUSDT over 2024-01-01")
        for line in lines
    ), lines
    assert "library torch: recorded 2.13.0, now 2.14.0" in lines
    assert "setting training.seed: recorded 42, now 7" in lines
    assert not any("registry" in line for line in lines)
    assert not any("feature fingerprint" in line for line in lines)
    gone = _record(libraries={"python": "3.11.9", "numpy": "2.1.0"})
    assert "library torch: recorded 2.13.0, now not recorded" in provenance_differences(
        recorded, gone
    )


def test_rebuilt_settings_take_the_recorded_sections_and_log_elsewhere(tmp_path: Path) -> None:
    current = load_settings(home=tmp_path, training={"total_timesteps": 99})
    recorded_settings = load_settings(
        home=Path("/somewhere/else"),
        training={"total_timesteps": 256, "seed": 7, "registry": {"model_name": "mine"}},
    ).masked_dump()
    record = _record(settings=recorded_settings)
    rebuilt = rebuilt_settings(current, record)
    assert isinstance(rebuilt, AppSettings)
    assert rebuilt.home == tmp_path
    assert rebuilt.training.total_timesteps == 256 and rebuilt.training.seed == 7
    assert rebuilt.training.registry.experiment == current.training.registry.experiment + SUFFIX
    assert rebuilt.training.registry.model_name == "mine" + SUFFIX
    masked = json.loads(json.dumps(recorded_settings))
    masked["strategy"]["params"] = {"api_key": "***"}
    with pytest.raises(ReproduceError, match=r"strategy\.params\.api_key was masked"):
        rebuilt_settings(current, _record(settings=masked))


def test_an_unknown_run_or_one_without_a_record_is_refused(tmp_path: Path) -> None:
    registry = InMemoryRegistry(tmp_path / "registry")
    runs = MemoryRecordedRuns(registry)
    settings = load_settings(home=tmp_path)
    with pytest.raises(UnknownRunError, match="no run 'nope'"):
        reproduce_run(settings, "nope", runs=runs)
    with registry.start_run("old", {}) as old:
        old.log_metrics({"test.sharpe": 1.0})
    with pytest.raises(ReproduceError, match="has no provenance record"):
        reproduce_run(settings, old.run_id, runs=runs)
    with registry.start_run("recorded", {}) as run:
        run.log_dict(_record().to_dict(), PROVENANCE_ARTIFACT)
    assert runs.recorded(run.run_id).provenance == _record()
