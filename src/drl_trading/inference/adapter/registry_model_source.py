"""`ModelSource` over the training service's model registry (MLflow or the in-memory fake).

The package is downloaded into a temporary folder that is deleted once the predictor is built:
`Predictor.load` reads the policy, normalisation and manifest into memory, so nothing on disk
has to outlive the load, and a long-running service does not accumulate one folder per reload.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Protocol

from drl_trading.common.model_registry import ModelVersion
from drl_trading.inference.core.ports import LoadedModel
from drl_trading.policy.predictor import Predictor


class PackageRegistry(Protocol):
    """The two calls of `common.model_registry.ModelRegistry` that serving needs; any registry
    adapter satisfies it, and inference never starts runs or registers models."""

    def resolve(self, model_ref: str) -> ModelVersion: ...

    def download_package(self, version: ModelVersion, dst: Path) -> Path: ...


class RegistryModelSource:
    def __init__(self, registry: PackageRegistry, work_dir: Path | None = None) -> None:
        self._registry = registry
        self._work_dir = work_dir

    def resolve(self, ref: str) -> str:
        return self._registry.resolve(ref).version

    def load(self, ref: str) -> LoadedModel:
        version = self._registry.resolve(ref)
        if self._work_dir is not None:
            self._work_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="drl-model-", dir=self._work_dir) as tmp:
            package = self._registry.download_package(version, Path(tmp))
            predictor = Predictor.load(package)
        return LoadedModel(name=version.name, version=version.version, predictor=predictor)
