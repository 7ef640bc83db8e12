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
from drl_trading.app.settings import AppSettings, load_settings
from drl_trading.common.adapter.memory_registry import InMemoryRegistry
from drl_trading.common.domain import Symbol, TimeRange
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


def _register(registry: ModelRegistry, tmp: Path, manifest: ModelManifest) -> str:
    """A package as `write_package` lays it out, with random layers; ``policy.zip`` is no SB3
    model (a backtest decides on the numpy layers). Returns its ``NAME/version``."""
    obs = manifest.obs_size
    rng = np.random.default_rng(7)
    head = (rng.normal(0.0, 1.0, (3, obs)), rng.normal(0.0, 0.1, 3), None)
    dst = tmp / f"package-{manifest.feature_set_version[:8]}"
    dst.mkdir(parents=True)
    (dst / POLICY_FILE).write_bytes(stand_in_policy_zip())
    write_normalization(dst, ObsNormalization.identity(obs))
    write_numpy_policy(dst, NumpyPolicy("logits", [], head))
    (dst / MANIFEST_FILE).write_text(manifest.to_json())
    with registry.start_run("train", {"kind": "training"}) as run:
        version = registry.register_model(run, "drl-test", dst)
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
