"""Contract of the model-packages port (a fitted policy becomes a registered version and comes
back as a predictor) over the registry adapter, on the in-memory registry and on MLflow with its
embedded SQLite store: what is loaded back decides as the fitted model does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from drl_trading.common.model_registry import ModelRegistry
from drl_trading.training.adapter.registry_packages import RegistryPackages
from drl_trading.training.adapter.sb3_trainer import SB3Trainer
from drl_trading.training.core.ports import FittedModel, ModelPackages
from tests.contracts.test_model_registry import migrated_db  # noqa: F401  (the fixture)
from tests.contracts.test_model_registry import registry as registry
from tests.contracts.test_trainer import Envs, inputs, job, manifest


@pytest.fixture(scope="module")
def fitted() -> FittedModel:
    return SB3Trainer(device="cpu", torch_threads=1).fit(job(Envs()), lambda p: None)


@pytest.fixture
def packages(registry: ModelRegistry) -> ModelPackages:
    return RegistryPackages(registry)


def test_a_registered_fit_loads_back_deciding_as_it_did(
    packages: ModelPackages, registry: ModelRegistry, fitted: FittedModel
) -> None:
    from drl_trading.policy.predictor import Predictor

    with registry.start_run("packages", {"kind": "test"}) as run:
        version = packages.register(run, "policy", fitted, manifest())
    assert registry.resolve("policy").version == version.version
    loaded = packages.load(version)
    assert loaded.manifest == manifest()
    np.testing.assert_array_equal(loaded.normalization.mean, fitted.normalization.mean)
    features, state = inputs()
    expected = Predictor(manifest(), fitted.normalization, fitted.model)
    for w, s in zip(features, state, strict=True):
        assert loaded.decide(w, s[None]) == pytest.approx(expected.decide(w, s[None]), abs=1e-9)


def test_versions_count_up_and_each_loads(
    packages: ModelPackages, registry: ModelRegistry, fitted: FittedModel, tmp_path: Path
) -> None:
    with registry.start_run("packages", {"kind": "test"}) as run:
        first = packages.register(run, "policy", fitted, manifest())
        second = packages.register(run, "policy", fitted, manifest())
    assert int(second.version) == int(first.version) + 1
    assert packages.load(first).manifest == packages.load(second).manifest
