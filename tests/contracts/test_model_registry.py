"""Contract of the model-registry port over the in-memory fake and MLflow (embedded SQLite)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import types
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from drl_trading.common.adapter.memory_registry import InMemoryRegistry
from drl_trading.common.adapter.mlflow_registry import MlflowRegistry
from drl_trading.common.model_registry import ModelRegistry
from drl_trading.policy.mlflow_pyfunc import MODEL_CODE
from tests.conftest import require_server

MANIFEST = {
    "window": 4,
    "feature_columns": ["a", "b", "c"],
    "state_names": ["position", "unrealised_return", "time_in_position"],
    "algorithm": "PPO",
    "feature_set_version": "fsv-000000000001",
}


def make_package(parent: Path, name: str = "pkg", payload: bytes = b"weights") -> Path:
    pkg = parent / name
    (pkg / "sub").mkdir(parents=True)
    (pkg / "manifest.json").write_text(json.dumps(MANIFEST), encoding="utf-8")
    (pkg / "policy.zip").write_bytes(payload)
    (pkg / "sub" / "notes.txt").write_text("nested file", encoding="utf-8")
    return pkg


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Creating MLflow's SQLite schema takes seconds: migrate once, copy the file per test."""
    root = tmp_path_factory.mktemp("mlflow-template")
    template = MlflowRegistry(
        f"sqlite:///{root}/mlflow.db",
        experiment="template",
        artifact_location=(root / "artifacts").as_uri(),
        model_code=MODEL_CODE,
    )
    assert template.experiment_id
    return root / "mlflow.db"


MLFLOW_SERVER = os.environ.get("DRL_TEST_MLFLOW", "http://127.0.0.1:5000")


@pytest.fixture(
    params=[
        "memory",
        pytest.param("mlflow", marks=pytest.mark.integration),
        pytest.param("mlflow-server", marks=pytest.mark.integration),
    ]
)
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> ModelRegistry:
    if request.param == "memory":
        return InMemoryRegistry(tmp_path / "registry")
    if request.param == "mlflow-server":  # the distributed tracking server of the local stack
        import mlflow

        host, port = MLFLOW_SERVER.rsplit("/", 1)[-1].rsplit(":", 1)
        require_server("MLflow server", host, int(port))
        client = mlflow.MlflowClient(MLFLOW_SERVER)
        for model in client.search_registered_models(filter_string="name = 'policy'"):
            client.delete_registered_model(model.name)  # versions restart at 1 for each test
        return MlflowRegistry(
            MLFLOW_SERVER, experiment=f"test-{uuid.uuid4().hex[:10]}", model_code=MODEL_CODE
        )
    db = tmp_path / "mlflow.db"
    shutil.copy(request.getfixturevalue("migrated_db"), db)
    return MlflowRegistry(
        f"sqlite:///{db}",
        artifact_location=(tmp_path / "artifacts").as_uri(),
        model_code=MODEL_CODE,
    )


@dataclass
class Logged:
    status: str
    params: dict[str, str]
    metrics: dict[str, list[tuple[int, float]]]
    tags: dict[str, str]
    artifacts: Path


def read_back(registry: ModelRegistry, run_id: str, scratch: Path) -> Logged:
    """What the backend actually stored, read without going through the adapter under test."""
    if isinstance(registry, InMemoryRegistry):
        run = registry.runs[run_id]
        return Logged(run.status, run.params, run.metrics, run.tags, run.artifact_dir)
    assert isinstance(registry, MlflowRegistry)
    import mlflow

    client = mlflow.MlflowClient(registry.tracking_uri)
    got = client.get_run(run_id)
    history = {
        key: [(m.step, m.value) for m in client.get_metric_history(run_id, key)]
        for key in got.data.metrics
    }
    dst = scratch / f"readback-{run_id}"
    dst.mkdir()
    local = Path(client.download_artifacts(run_id, "", str(dst)))
    tags = {k: v for k, v in got.data.tags.items() if not k.startswith("mlflow.")}
    return Logged(got.info.status, dict(got.data.params), history, tags, local)


# --- runs ---------------------------------------------------------------------------------------


def test_run_logs_everything_and_finishes(registry: ModelRegistry, tmp_path: Path) -> None:
    artifact = tmp_path / "report.txt"
    artifact.write_text("backtest report", encoding="utf-8")
    folder = make_package(tmp_path)
    with registry.start_run("train-1", {"purpose": "contract"}) as run:
        run.log_params({"algorithm": "PPO", "net": {"layers": [64, 64], "act": {"fn": "tanh"}}})
        run.log_params({"long": "x" * 7000, "algorithm": "PPO"})  # re-logging the same is fine
        run.log_metrics({"reward": 1.0, "loss": 0.5}, step=1)
        run.log_metrics({"reward": 2.0}, step=2)
        run.log_metrics({"sharpe": 0.3})
        run.set_tags({"feature_set_version": "fsv1"})
        run.log_dict({"a": 1, "b": [1, 2]}, "configs/run.json")
        run.log_dict({"c": "d"}, "configs/run.yaml")
        run.log_artifact(artifact)
        run.log_artifact(artifact, "reports")
        run.log_artifact(folder, "packages")
        run_id = run.run_id

    got = read_back(registry, run_id, tmp_path)
    assert got.status == "FINISHED"
    assert got.params == {
        "algorithm": "PPO",
        "net.layers": "[64, 64]",
        "net.act.fn": "tanh",
        "long": "x" * 6000,
    }
    assert sorted(got.metrics["reward"]) == [(1, 1.0), (2, 2.0)]
    assert got.metrics["loss"] == [(1, 0.5)]
    assert got.metrics["sharpe"] == [(0, 0.3)]
    assert got.tags == {"purpose": "contract", "feature_set_version": "fsv1"}
    assert json.loads((got.artifacts / "configs" / "run.json").read_text()) == {"a": 1, "b": [1, 2]}
    assert yaml.safe_load((got.artifacts / "configs" / "run.yaml").read_text()) == {"c": "d"}
    assert (got.artifacts / "report.txt").read_text() == "backtest report"
    assert (got.artifacts / "reports" / "report.txt").read_text() == "backtest report"
    assert tree(got.artifacts / "packages" / "pkg") == tree(folder)


def test_run_fails_on_exception(registry: ModelRegistry, tmp_path: Path) -> None:
    run_ids: list[str] = []

    def train() -> None:
        with registry.start_run("bad", {}) as run:
            run_ids.append(run.run_id)
            run.log_metrics({"loss": float("inf")}, step=3)
            raise RuntimeError("diverged")

    with pytest.raises(RuntimeError, match="diverged"):
        train()
    assert read_back(registry, run_ids[0], tmp_path).status == "FAILED"


def test_params_are_immutable(registry: ModelRegistry) -> None:
    with registry.start_run("p", {}) as run:
        run.log_params({"lr": 0.001})
        with pytest.raises(ValueError, match="lr"):
            run.log_params({"lr": 0.01})


def test_invalid_artifact_paths_are_refused(registry: ModelRegistry) -> None:
    with registry.start_run("p", {}) as run:
        with pytest.raises(ValueError, match="artifact path"):
            run.log_dict({}, "../escape.json")
        with pytest.raises(ValueError, match="artifact path"):
            run.log_dict({}, "/abs.json")


def test_find_runs_by_tags_newest_first(registry: ModelRegistry) -> None:
    ids = []
    for i, kind in enumerate(["a", "b", "a", "a"]):
        with registry.start_run(f"r{i}", {"kind": kind, "i": str(i)}) as run:
            run.log_metrics({"score": float(i)}, step=0)
            run.log_metrics({"score": float(i) + 0.5}, step=1)
            ids.append(run.run_id)
        time.sleep(0.005)  # MLflow orders by start time in milliseconds
    found = registry.find_runs({"kind": "a"})
    assert [r.run_id for r in found] == [ids[3], ids[2], ids[0]]
    assert found[0].name == "r3"
    assert found[0].status == "FINISHED"
    assert found[0].tags == {"kind": "a", "i": "3"}
    assert found[0].metrics == {"score": 3.5}
    assert found[0].artifact_uri
    assert [r.run_id for r in registry.find_runs({"kind": "a", "i": "2"})] == [ids[2]]
    assert registry.find_runs({"kind": "nope"}) == []
    assert registry.find_runs({"quote": "it's"}) == []
    assert len(registry.find_runs({})) == 4


# --- models -------------------------------------------------------------------------------------


def _register_two(registry: ModelRegistry, tmp_path: Path) -> str:
    pkg = make_package(tmp_path)
    with registry.start_run("train", {}) as run:
        first = registry.register_model(run, "policy", pkg)
        second = registry.register_model(run, "policy", pkg)
    assert (first.name, first.version, first.run_id) == ("policy", "1", run.run_id)
    assert (second.version, second.uri) == ("2", "models:/policy/2")
    return run.run_id


def test_versions_and_aliases(registry: ModelRegistry, tmp_path: Path) -> None:
    _register_two(registry, tmp_path)
    assert registry.alias_version("policy", "champion") is None
    assert registry.alias_version("ghost", "champion") is None
    registry.set_alias("policy", "champion", "1")
    registry.set_alias("policy", "challenger", "2")
    assert registry.alias_version("policy", "champion") == "1"
    registry.set_alias("policy", "champion", "2")  # moves
    assert registry.alias_version("policy", "champion") == "2"
    assert registry.alias_version("policy", "challenger") == "2"
    with pytest.raises(LookupError, match=r"no version '7' \(versions: 1, 2\)"):
        registry.set_alias("policy", "champion", "7")
    with pytest.raises(LookupError, match="ghost"):
        registry.set_alias("ghost", "champion", "1")
    for reserved in ("latest", "v2", "bad alias"):
        with pytest.raises(ValueError, match="alias"):
            registry.set_alias("policy", reserved, "1")


def test_resolve_grammar(registry: ModelRegistry, tmp_path: Path) -> None:
    run_id = _register_two(registry, tmp_path)
    assert registry.resolve("policy").version == "2"  # no champion yet: latest
    registry.set_alias("policy", "champion", "1")
    registry.set_alias("policy", "staging", "2")
    expected = {
        "policy": "1",
        "policy@champion": "1",
        "models:/policy@champion": "1",
        "policy@staging": "2",
        "policy/2": "2",
        "models:/policy/1": "1",
        " models:/policy/2 ": "2",
    }
    for ref, version in expected.items():
        resolved = registry.resolve(ref)
        assert (resolved.name, resolved.version, resolved.run_id) == ("policy", version, run_id)


def test_resolve_errors(registry: ModelRegistry, tmp_path: Path) -> None:
    _register_two(registry, tmp_path)
    registry.set_alias("policy", "champion", "1")
    with pytest.raises(
        LookupError,
        match=r"model 'policy' has no alias 'prod' \(aliases: champion; versions: 1, 2\)",
    ):
        registry.resolve("policy@prod")
    with pytest.raises(LookupError, match=r"model 'policy' has no version '9'"):
        registry.resolve("models:/policy/9")
    # the message lists the models there are (on a shared tracking server: others too, the
    # first 20 of them)
    with pytest.raises(LookupError, match=r"no registered model 'ghost' \(models: \S"):
        registry.resolve("ghost")
    for malformed in ("", "models:/", "policy/abc", "policy@latest", "a:b"):
        with pytest.raises(ValueError, match=r"model|alias"):
            registry.resolve(malformed)


def test_download_round_trips_the_package(registry: ModelRegistry, tmp_path: Path) -> None:
    first_pkg = make_package(tmp_path / "one", payload=b"first")
    second_pkg = make_package(tmp_path / "two", name="package", payload=b"second")
    with registry.start_run("train", {}) as run:
        first = registry.register_model(run, "policy", first_pkg)
        registry.register_model(run, "policy", second_pkg)
    got_first = registry.download_package(first, tmp_path / "dl1")
    got_second = registry.download_package(registry.resolve("policy"), tmp_path / "dl2")
    assert got_first.is_relative_to(tmp_path / "dl1")
    assert tree(got_first) == tree(first_pkg)
    assert tree(got_second) == tree(second_pkg)
    with pytest.raises(LookupError, match="no version '5'"):
        registry.download_package(type(first)("policy", "5", run.run_id), tmp_path / "dl3")


def test_register_refuses_a_folder_without_manifest(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with registry.start_run("train", {}) as run, pytest.raises(FileNotFoundError):
        registry.register_model(run, "policy", empty)
    with registry.start_run("train", {}) as run, pytest.raises(ValueError, match="name"):
        registry.register_model(run, "bad/name", make_package(tmp_path))


# --- MLflow specifics ---------------------------------------------------------------------------


class _FakePredictor:
    """Stands in for the SB3-backed Predictor so the pyfunc is exercised without torch."""

    loaded_from: Path | None = None

    @classmethod
    def load(cls, package_dir: Path) -> _FakePredictor:
        cls.loaded_from = package_dir
        return cls()

    def predict(self, features: np.ndarray, agent_state: np.ndarray) -> Any:
        assert features.dtype == np.float32 and agent_state.dtype == np.float32
        n = len(features)
        return types.SimpleNamespace(
            target_position=features[:, -1, 0].astype(np.float64),
            action=np.full(n, 2, dtype=np.int64),
            confidence=np.full(n, 0.75),
        )


@pytest.fixture
def mlflow_registry(migrated_db: Path, tmp_path: Path) -> MlflowRegistry:
    db = tmp_path / "mlflow.db"
    shutil.copy(migrated_db, db)
    return MlflowRegistry(
        f"sqlite:///{db}",
        artifact_location=(tmp_path / "artifacts").as_uri(),
        model_code=MODEL_CODE,
    )


@pytest.mark.integration
def test_mlflow_version_is_a_pyfunc_model(
    mlflow_registry: MlflowRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    with mlflow_registry.start_run("train", {}) as run:
        mv = mlflow_registry.register_model(run, "policy", make_package(tmp_path))
    stored = mlflow_registry.client.get_model_version("policy", mv.version)
    assert stored.tags["run_id"] == run.run_id
    assert stored.tags["feature_set_version"] == MANIFEST["feature_set_version"]
    assert json.loads(stored.description or "")["window"] == 4

    package = mlflow_registry.download_package(mv, tmp_path / "dl")
    model_dir = tmp_path / "dl" / "model"
    assert package == model_dir / "artifacts" / "package"
    requirements = (model_dir / "requirements.txt").read_text()
    for dist in ("torch==", "stable-baselines3==", "mlflow==", "drl-trading=="):
        assert dist in requirements

    fake = types.ModuleType("drl_trading.policy.predictor")
    fake.Predictor = _FakePredictor  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "drl_trading.policy.predictor", fake)
    loaded = mlflow.pyfunc.load_model(str(model_dir))
    inputs = {s.name: s.shape for s in loaded.metadata.get_input_schema().inputs}
    assert inputs == {"features": (-1, 4, 3), "agent_state": (-1, 3)}
    features = np.arange(2 * 4 * 3, dtype=np.float32).reshape(2, 4, 3)
    out = loaded.predict({"features": features, "agent_state": np.zeros((2, 3), np.float32)})
    assert list(out.columns) == ["target_position", "action", "confidence"]
    assert out["target_position"].tolist() == [9.0, 21.0]
    assert out["action"].dtype == np.int64
    assert _FakePredictor.loaded_from is not None
    assert _FakePredictor.loaded_from.name == "package"
    with pytest.raises(mlflow.exceptions.MlflowException):  # the signature is enforced
        loaded.predict({"features": features[:, :3], "agent_state": np.zeros((2, 3), np.float32)})


@pytest.mark.integration
def test_mlflow_adapter_ignores_process_global_uris(
    mlflow_registry: MlflowRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLflow falls back to MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI in several code paths
    (model-version creation, models:/ downloads); none of them may be reached."""
    decoy = tmp_path / "decoy.db"
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{decoy}")
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", f"sqlite:///{decoy}")
    with mlflow_registry.start_run("train", {}) as run:
        mv = mlflow_registry.register_model(run, "policy", make_package(tmp_path))
    mlflow_registry.set_alias("policy", "champion", mv.version)
    resolved = mlflow_registry.resolve("policy")
    assert tree(mlflow_registry.download_package(resolved, tmp_path / "dl"))
    assert not decoy.exists()
    assert list(cwd.iterdir()) == []


def test_pyfunc_module_imports_without_torch() -> None:
    code = "import sys, drl_trading.policy.mlflow_pyfunc; sys.exit('torch' in sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_mlflow_registry_needs_model_code_that_compiles() -> None:
    """Refused when the registry is built, not when a training run registers its model."""
    with pytest.raises(ValueError, match="model_code is empty"):
        MlflowRegistry("sqlite:///unused.db", model_code=" \n")
    with pytest.raises(ValueError, match="model_code is not valid Python"):
        MlflowRegistry("sqlite:///unused.db", model_code="import (")


@pytest.mark.integration
def test_mlflow_version_runs_the_model_code_it_was_given(
    mlflow_registry: MlflowRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The adapter logs the code it is handed (the composition hands it the policy package's);
    it names no model class of its own."""
    import mlflow

    marker = tmp_path / "built"
    code = (
        "import pathlib\n"
        "import mlflow.models\n"
        "from drl_trading.policy.mlflow_pyfunc import DrlPolicyModel\n"
        f"pathlib.Path({str(marker)!r}).write_text('yes')\n"
        "mlflow.models.set_model(DrlPolicyModel())\n"
    )
    registry = MlflowRegistry(
        mlflow_registry.tracking_uri,
        artifact_location=mlflow_registry.artifact_location,
        model_code=code,
    )
    with registry.start_run("train", {}) as run:
        mv = registry.register_model(run, "policy", make_package(tmp_path))
    registry.download_package(mv, tmp_path / "dl")
    fake = types.ModuleType("drl_trading.policy.predictor")
    fake.Predictor = _FakePredictor  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "drl_trading.policy.predictor", fake)
    marker.unlink(missing_ok=True)  # saving may have run the code too
    mlflow.pyfunc.load_model(str(tmp_path / "dl" / "model"))
    assert marker.read_text() == "yes"


def test_build_registry_hands_the_adapter_the_policy_pyfunc(tmp_path: Path) -> None:
    from drl_trading.app.infrastructure import build_registry
    from drl_trading.app.settings import load_settings

    registry = build_registry(load_settings(home=tmp_path / "home"))
    assert isinstance(registry, MlflowRegistry)
    assert registry.model_code == MODEL_CODE
    assert "from drl_trading.policy.mlflow_pyfunc import DrlPolicyModel" in MODEL_CODE


def test_registered_models_pin_this_source_trees_version() -> None:
    """A model pins the drl-trading it was registered with; the module paths its code imports
    exist from that version on, so the pin must be the version of this tree (pyproject.toml),
    which ``drl-trading --version`` prints too (an environment installed from an older tree
    fails here: reinstall it)."""
    import tomllib

    import drl_trading
    from drl_trading.common.adapter.mlflow_registry import pip_requirements

    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    project_version = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["version"]
    assert drl_trading.__version__ == project_version
    assert f"drl-trading=={project_version}" in pip_requirements()
