"""`backtest_model` on an in-memory registry: a package drawn at random (its numpy layers; no
training) backtested on stored synthetic features, and each user error as one `BacktestError`
with the message the CLI prints."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from drl_trading.app.infrastructure import feature_set_for
from drl_trading.app.model_backtest import BacktestError, backtest_model
from drl_trading.app.offline_workflow import OfflineWorkflow
from drl_trading.app.runtime import EmbeddedRuntime
from drl_trading.app.settings import AppSettings, load_settings
from drl_trading.common.adapter.fx_calendar import FxCalendar
from drl_trading.common.adapter.memory_registry import InMemoryRegistry
from drl_trading.common.bar_windows import bar_slots
from drl_trading.common.domain import Symbol, Timeframe, TimeRange
from drl_trading.common.model_registry import ModelRegistry
from drl_trading.ingest.core.service import TrainingDataRequest
from drl_trading.policy.numpy_policy import NumpyPolicy
from drl_trading.policy.package import (
    MANIFEST_FILE,
    POLICY_FILE,
    ModelManifest,
    ObsNormalization,
    write_normalization,
    write_numpy_policy,
)
from drl_trading.strategy.feature_view import view_for
from tests.unit.test_policy_package import stand_in_policy_zip

SYM = Symbol("BTCUSDT")
RANGE = TimeRange.parse("2024-01-01", "2024-01-16")
TEST_RANGE = TimeRange.parse("2024-01-08", "2024-01-16")
WINDOW = 4


@pytest.fixture
def settings(tmp_path: Path) -> AppSettings:
    return load_settings(home=tmp_path / "home")


@pytest.fixture
def registry(tmp_path: Path) -> InMemoryRegistry:
    return InMemoryRegistry(tmp_path / "registry")


def _manifest(settings: AppSettings) -> ModelManifest:
    spec = feature_set_for(settings)
    return ModelManifest(
        algorithm="PPO",
        policy="MlpPolicy",
        action_mode="discrete",
        window=WINDOW,
        feature_columns=list(spec.columns),
        feature_set=spec.model_dump(mode="json"),
        feature_set_version=spec.version,
        feature_view=spec.view_name,
        base_timeframe=spec.base_timeframe.value,
        strategy={"name": "example", "version": "1", "ref": settings.strategy.ref},
        max_position=1.0,
        allow_short=True,
        fee_bps=5.0,
        slippage_bps=2.0,
    )


def _register(
    registry: ModelRegistry,
    tmp: Path,
    manifest: ModelManifest,
    seed: int = 7,
    name: str = "drl-test",
) -> str:
    """A package as `write_package` lays it out, with random layers drawn from ``seed``;
    ``policy.zip`` is no SB3 model (a backtest decides on the numpy layers). Returns its
    ``NAME/version``."""
    obs = manifest.obs_size
    rng = np.random.default_rng(seed)
    head = (rng.normal(0.0, 1.0, (3, obs)), rng.normal(0.0, 0.1, 3), None)
    dst = tmp / f"package-{seed}-{manifest.feature_set_version[:8]}"
    dst.mkdir(parents=True)
    (dst / POLICY_FILE).write_bytes(stand_in_policy_zip())
    write_normalization(dst, ObsNormalization.identity(obs))
    write_numpy_policy(dst, NumpyPolicy("logits", [], head))
    (dst / MANIFEST_FILE).write_text(manifest.to_json())
    with registry.start_run("train", {"kind": "training"}) as run:
        version = registry.register_model(run, name, dst)
    return f"{version.name}/{version.version}"


def test_a_registered_model_is_backtested_reported_and_logged(
    settings: AppSettings, registry: InMemoryRegistry, tmp_path: Path
) -> None:
    ref = _register(registry, tmp_path, _manifest(settings))
    request = TrainingDataRequest((SYM,), RANGE)
    with OfflineWorkflow.open(settings) as workflow:
        workflow.ingest("synthetic", None, request, request_preprocessing=True)
        assert workflow.run(request.request_id).succeeded

    done = backtest_model(settings, ref, [SYM], TEST_RANGE, registry=registry)

    assert done.version.uri == "models:/drl-test/1"
    (sym,) = done.result.symbols
    assert sym.symbol == SYM
    assert sym.model.n_steps > 0
    assert "buy-and-hold" in sym.baselines
    assert done.html_path.parent == done.json_path.parent == settings.reports_dir
    assert done.html_path.name.startswith("drl-test-v1-backtest-")
    assert "<svg" in done.html_path.read_text()
    assert json.loads(done.json_path.read_text())["model"] == "models:/drl-test/1"
    (run,) = registry.find_runs({"kind": "backtest"})
    assert run.run_id == done.run_id
    logged = registry.runs[done.run_id]
    assert logged.tags["model_uri"] == "models:/drl-test/1"
    assert logged.tags["symbols"] == "BTCUSDT"
    assert logged.latest_metrics()["BTCUSDT.total_return"] == pytest.approx(sym.model.total_return)
    momentum = sym.baselines["momentum (20 bars)"]
    assert logged.latest_metrics()["BTCUSDT.momentum.sharpe"] == pytest.approx(momentum.sharpe)


def test_an_unknown_model_is_a_backtest_error(
    settings: AppSettings, registry: InMemoryRegistry
) -> None:
    with pytest.raises(BacktestError) as info:
        backtest_model(settings, "drl-test@nope", [SYM], TEST_RANGE, registry=registry)
    with pytest.raises(LookupError) as expected:
        registry.resolve("drl-test@nope")
    assert str(info.value) == str(expected.value)


def test_a_package_that_does_not_load_is_a_backtest_error(
    settings: AppSettings, registry: InMemoryRegistry, tmp_path: Path
) -> None:
    ref = _register(registry, tmp_path, replace(_manifest(settings), format_version=999))
    with pytest.raises(BacktestError, match=r"model package format 999 is newer"):
        backtest_model(settings, ref, [SYM], TEST_RANGE, registry=registry)


def test_a_feature_set_that_does_not_hash_to_its_version_is_a_backtest_error(
    settings: AppSettings, registry: InMemoryRegistry, tmp_path: Path
) -> None:
    ref = _register(registry, tmp_path, replace(_manifest(settings), feature_set_version="0bad"))
    with pytest.raises(BacktestError) as info:
        backtest_model(settings, ref, [SYM], TEST_RANGE, registry=registry)
    assert str(info.value) == (
        "models:/drl-test/1: feature set definition does not hash to its recorded version"
    )


def test_features_not_stored_are_a_backtest_error_naming_the_feature_set(
    settings: AppSettings, registry: InMemoryRegistry, tmp_path: Path
) -> None:
    spec = feature_set_for(settings)
    ref = _register(registry, tmp_path, _manifest(settings))
    with pytest.raises(BacktestError) as info:
        backtest_model(settings, ref, [SYM], TEST_RANGE, registry=registry)
    text = str(info.value)
    assert text.startswith("BTCUSDT: no 5m bars stored")
    assert text.endswith(
        f"(the model needs feature set {spec.name} v{spec.version}; preprocess the range with "
        "that feature set first)"
    )


# -- on a market calendar that closes -----------------------------------------------------------

EURUSD = Symbol("EURUSD")
FX_WEEKS = TimeRange.parse("2024-01-01", "2024-01-20")
"""Three FX weeks of hourly bars: two weekends inside."""


@pytest.fixture
def fx_settings(tmp_path: Path) -> AppSettings:
    return load_settings(
        home=tmp_path / "fx-home", markets={"symbols": {"EURUSD": {"calendar": "fx"}}}
    )


def _fx_manifest(settings: AppSettings, training: dict[str, object]) -> ModelManifest:
    from tests.unit.test_dataset_calendar import base_spec

    spec = base_spec(Timeframe.H1)
    return replace(
        _manifest(settings),
        feature_columns=list(spec.columns),
        feature_set=spec.model_dump(mode="json"),
        feature_set_version=spec.version,
        feature_view=spec.view_name,
        base_timeframe="1h",
        training=training,
    )


def _store_fx_features(settings: AppSettings) -> None:
    """FX hourly bars and a feature row at each bar's calendar close, in the home's stores."""
    from tests.unit.test_dataset_calendar import base_spec, feature_rows_at_closes, synthetic_bars

    view = view_for(base_spec(Timeframe.H1))
    bars = synthetic_bars(FxCalendar(), Timeframe.H1, FX_WEEKS)
    with EmbeddedRuntime.open(settings) as runtime:
        runtime.market_data.upsert_bars(EURUSD, Timeframe.H1, bars)
        runtime.feature_store.register(view)
        rows = feature_rows_at_closes(FxCalendar(), Timeframe.H1, bars, view.columns)
        runtime.feature_store.write_offline(view, EURUSD, rows)


def test_a_backtest_on_fx_bars_runs_over_weekends_and_annualises_by_the_calendar(
    fx_settings: AppSettings, registry: InMemoryRegistry, tmp_path: Path
) -> None:
    manifest = _fx_manifest(fx_settings, {"calendar": "fx", "data_timeframe": "1h"})
    ref = _register(registry, tmp_path, manifest)
    _store_fx_features(fx_settings)

    done = backtest_model(fx_settings, ref, [EURUSD], FX_WEEKS, registry=registry)

    (sym,) = done.result.symbols
    bars = bar_slots(FxCalendar(), Timeframe.H1, FX_WEEKS.start, FX_WEEKS.end).size
    assert sym.skipped_bars == 0  # one series across both weekends
    assert done.result.bars == bars
    report = json.loads(done.json_path.read_text())
    assert report["metadata"]["annualisation"] == "6,288 1h bars a year (market calendar fx)"
    assert "6,288 1h bars a year" in done.html_path.read_text()


def test_a_model_of_another_calendar_is_not_backtested(
    fx_settings: AppSettings, registry: InMemoryRegistry, tmp_path: Path
) -> None:
    ref = _register(registry, tmp_path, _fx_manifest(fx_settings, {}))  # no calendar: 24/7
    with pytest.raises(BacktestError) as info:
        backtest_model(fx_settings, ref, [EURUSD], FX_WEEKS, registry=registry)
    assert str(info.value) == (
        "models:/drl-test/1 was trained on market calendar 24/7, but EURUSD trade on fx; "
        "backtest it on symbols of calendar 24/7, or set markets.symbols.<SYMBOL>.calendar to "
        "24/7 if that is their market"
    )
