"""Ports of the training service: experiment tracking and the model registry.

MLflow implements both (embedded SQLite or a tracking server, the URI is configuration); the
in-memory fake serves unit tests. A registered model is a *package*: a folder the framework writes
(policy weights, normalisation statistics, manifest with feature set and spaces) that the
registry stores as one model version and hands back as a folder again, so that loading a model
never depends on which registry holds it.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class ModelVersion:
    name: str
    version: str
    run_id: str

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


@dataclass(frozen=True, slots=True)
class RunInfo:
    run_id: str
    name: str
    status: str
    tags: dict[str, str]
    metrics: dict[str, float]
    artifact_uri: str


class ExperimentRun(Protocol):
    @property
    def run_id(self) -> str: ...

    def log_params(self, params: dict[str, Any]) -> None:
        """Values are stringified; nested dicts are flattened with dots."""

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None: ...

    def set_tags(self, tags: dict[str, str]) -> None: ...

    def log_dict(self, data: dict[str, Any], artifact_file: str) -> None:
        """Stores ``data`` as JSON (or YAML for a .yaml name) at ``artifact_file`` in the run."""

    def log_artifact(self, path: Path, artifact_dir: str | None = None) -> None: ...


class ModelRegistry(Protocol):
    def start_run(
        self, run_name: str, tags: dict[str, str]
    ) -> AbstractContextManager[ExperimentRun]:
        """A run that ends FINISHED when the block exits normally and FAILED on an exception."""

    def register_model(self, run: ExperimentRun, name: str, package_dir: Path) -> ModelVersion:
        """Logs the package folder to ``run`` and registers it as a new version of ``name``."""

    def set_alias(self, name: str, alias: str, version: str) -> None: ...

    def alias_version(self, name: str, alias: str) -> str | None: ...

    def resolve(self, model_ref: str) -> ModelVersion:
        """``NAME``, ``NAME@alias``, ``NAME/version`` or ``models:/...`` → a concrete version;
        a bare NAME means its champion, else its latest version. LookupError if unknown."""

    def download_package(self, version: ModelVersion, dst: Path) -> Path:
        """The model's package folder, copied under ``dst``; returns the package folder."""

    def find_runs(self, tags: dict[str, str]) -> list[RunInfo]:
        """Runs whose tags include all of ``tags``, newest first."""
