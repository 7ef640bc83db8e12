"""`ModelPackages` over a model registry: the package is written to a temporary folder, handed
to the registry, and read back from a download (each folder is deleted once used: `Predictor`
keeps what it needs in memory)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from drl_trading.common.model_registry import ExperimentRun, ModelRegistry, ModelVersion
from drl_trading.policy.package import ModelManifest, write_package
from drl_trading.policy.predictor import Predictor
from drl_trading.training.core.ports import FittedModel


class RegistryPackages:
    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry

    def register(
        self, run: ExperimentRun, name: str, fitted: FittedModel, manifest: ModelManifest
    ) -> ModelVersion:
        with tempfile.TemporaryDirectory(prefix="drl-package-") as tmp:
            package = write_package(
                Path(tmp) / "package", fitted.model, fitted.normalization, manifest
            )
            return self.registry.register_model(run, name, package)

    def load(self, version: ModelVersion) -> Predictor:
        with tempfile.TemporaryDirectory(prefix="drl-model-") as tmp:
            return Predictor.load(self.registry.download_package(version, Path(tmp)))
