"""Contract of the model-source port, over the in-memory fake and the registry-backed source on
the in-memory registry, MLflow embedded (SQLite) and the MLflow tracking server of the stack.

Two packages of one model are built through the public package API (an untrained PPO policy
each, with different weights and feature-set versions), so a loaded predictor shows which
version it is.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from drl_trading.common.adapter.memory_registry import InMemoryRegistry
from drl_trading.common.adapter.mlflow_registry import MlflowRegistry
from drl_trading.common.agent_state import STATE_SIZE
from drl_trading.common.model_registry import ModelRegistry
from drl_trading.inference.adapter.memory_model_source import InMemoryModelSource
from drl_trading.inference.adapter.registry_model_source import RegistryModelSource
from drl_trading.inference.core.ports import ModelSource
from drl_trading.policy.mlflow_pyfunc import MODEL_CODE
from drl_trading.policy.package import ModelManifest, ObsNormalization, write_package
from drl_trading.policy.predictor import Predictor
from tests.conftest import require_server
from tests.contracts.test_model_registry import (
    MLFLOW_SERVER,
    migrated_db,  # noqa: F401  (the fixture)
)

WINDOW = 2
COLUMNS = ["f0", "f1", "f2"]
OBS_SIZE = WINDOW * len(COLUMNS) + STATE_SIZE
FEATURES = np.linspace(-1.0, 1.0, WINDOW * len(COLUMNS), dtype=np.float32).reshape(WINDOW, -1)
STATE = np.array([1.0, 0.02, 0.1], dtype=np.float32)


class _Spaces(gym.Env[np.ndarray, np.int64]):
    """The trading environment's spaces, which is all building (not training) a policy needs."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (OBS_SIZE,), np.float32)
    action_space = gym.spaces.Discrete(3)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        return np.zeros(OBS_SIZE, np.float32), {}

    def step(self, action: np.int64) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        return np.zeros(OBS_SIZE, np.float32), 0.0, True, False, {}


def _package(dst: Path, seed: int, feature_set_version: str) -> Path:
    from stable_baselines3 import PPO

    model = PPO(
        "MlpPolicy",
        _Spaces(),
        n_steps=16,
        batch_size=16,
        policy_kwargs={"net_arch": [8]},
        seed=seed,
        device="cpu",
    )
    manifest = ModelManifest(
        algorithm="PPO",
        policy="MlpPolicy",
        action_mode="discrete",
        window=WINDOW,
        feature_columns=COLUMNS,
        feature_set={},
        feature_set_version=feature_set_version,
        feature_view="contract_view",
        base_timeframe="1m",
        strategy={"name": "contract", "version": "0", "ref": "contract"},
        max_position=1.0,
        allow_short=True,
        fee_bps=5.0,
        slippage_bps=2.0,
    )
    return write_package(dst, model, ObsNormalization.identity(OBS_SIZE), manifest)


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("model-source-packages")
    return _package(root / "first", 1, "fsv-first"), _package(root / "second", 2, "fsv-second")


@dataclass(frozen=True)
class Shelf:
    """A model source and how its backend gets new versions and moves aliases."""

    source: ModelSource
    model: str
    publish: Callable[[Path], str]
    """Stores a package as the model's next version; returns the version."""
    set_alias: Callable[[str, str], None]


def _registry_shelf(registry: ModelRegistry, model: str, work: Path) -> Shelf:
    def publish(package: Path) -> str:
        with registry.start_run("train", {}) as run:
            return registry.register_model(run, model, package).version

    return Shelf(
        RegistryModelSource(registry, work),
        model,
        publish,
        lambda alias, version: registry.set_alias(model, alias, version),
    )


@pytest.fixture(
    params=[
        "memory",
        "registry-memory",
        pytest.param("registry-mlflow", marks=pytest.mark.integration),
        pytest.param("registry-mlflow-server", marks=pytest.mark.integration),
    ]
)
def shelf(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Shelf]:
    model = f"contract-{uuid.uuid4().hex[:10]}"  # the tracking server is shared: a fresh model
    work = tmp_path / "work"
    if request.param == "memory":
        fake = InMemoryModelSource()
        yield Shelf(
            fake,
            model,
            lambda package: fake.add(model, Predictor.load(package)),
            lambda alias, version: fake.set_alias(model, alias, version),
        )
    elif request.param == "registry-memory":
        yield _registry_shelf(InMemoryRegistry(tmp_path / "registry"), model, work)
    elif request.param == "registry-mlflow":
        db = tmp_path / "mlflow.db"
        shutil.copy(request.getfixturevalue("migrated_db"), db)
        registry = MlflowRegistry(
            f"sqlite:///{db}",
            artifact_location=(tmp_path / "artifacts").as_uri(),
            model_code=MODEL_CODE,
        )
        yield _registry_shelf(registry, model, work)
    else:
        import mlflow

        host, port = MLFLOW_SERVER.rsplit("/", 1)[-1].rsplit(":", 1)
        require_server("MLflow server", host, int(port))
        server = MlflowRegistry(
            MLFLOW_SERVER, experiment=f"test-{uuid.uuid4().hex[:10]}", model_code=MODEL_CODE
        )
        yield _registry_shelf(server, model, work)
        client = mlflow.MlflowClient(MLFLOW_SERVER)
        if client.search_registered_models(filter_string=f"name = '{model}'"):
            client.delete_registered_model(model)
    if work.exists():  # a load leaves nothing behind in the work folder
        assert list(work.iterdir()) == []


def test_resolve_returns_the_concrete_version(shelf: Shelf, packages: tuple[Path, Path]) -> None:
    first, second = (shelf.publish(p) for p in packages)
    assert first != second
    shelf.set_alias("champion", first)
    shelf.set_alias("challenger", second)
    m = shelf.model
    for ref, version in {
        f"{m}@champion": first,
        f"models:/{m}@challenger": second,
        f"{m}/{second}": second,
        f"models:/{m}/{first}": first,
        m: first,  # a bare name is its champion
    }.items():
        assert shelf.source.resolve(ref) == version, ref


def test_resolve_sees_an_alias_move(shelf: Shelf, packages: tuple[Path, Path]) -> None:
    first, second = (shelf.publish(p) for p in packages)
    shelf.set_alias("champion", first)
    assert shelf.source.resolve(f"{shelf.model}@champion") == first
    shelf.set_alias("champion", second)
    assert shelf.source.resolve(f"{shelf.model}@champion") == second


def test_load_returns_the_resolved_version_and_a_working_predictor(
    shelf: Shelf, packages: tuple[Path, Path]
) -> None:
    versions = [shelf.publish(p) for p in packages]
    ref = f"{shelf.model}@champion"
    for version, package in zip(versions, packages, strict=True):
        shelf.set_alias("champion", version)
        loaded = shelf.source.load(ref)
        assert (loaded.name, loaded.version) == (shelf.model, version)
        reference = Predictor.load(package)
        assert loaded.predictor.manifest == reference.manifest
        target, action, confidence = loaded.predictor.decide(FEATURES, STATE)
        assert (target, action, confidence) == reference.decide(FEATURES, STATE)
        assert action in (0, 1, 2) and 0.0 <= confidence <= 1.0


def test_unknown_references_are_lookup_errors(shelf: Shelf, packages: tuple[Path, Path]) -> None:
    version = shelf.publish(packages[0])
    m = shelf.model
    for ref in (f"{m}@champion", f"{m}/{int(version) + 5}", f"ghost-{m}", f"ghost-{m}@champion"):
        with pytest.raises(LookupError):
            shelf.source.resolve(ref)
        with pytest.raises(LookupError):
            shelf.source.load(ref)
