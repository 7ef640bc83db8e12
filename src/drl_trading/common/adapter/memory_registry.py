"""Model-registry fake for unit tests.

The fake keeps runs and versions in memory and copies files under a root folder, so tests see
the same folder round trip as with MLflow without its start-up cost. The reference grammar, the
name/alias rules and the parameter flattening are the port's (`drl_trading.common.model_registry`),
shared with the MLflow adapter, so the fake cannot drift from it.
"""

from __future__ import annotations

import itertools
import json
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from drl_trading.common.model_registry import (
    PACKAGE_ARTIFACT,
    ExperimentRun,
    ModelVersion,
    RunInfo,
    check_package_dir,
    flatten_params,
    missing_version_error,
    parse_model_ref,
    safe_relative,
    select_version,
    unknown_model_error,
    validate_alias,
    validate_model_name,
)


@dataclass
class MemoryRun:
    run_id: str
    name: str
    artifact_dir: Path
    seq: int
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    dicts: dict[str, dict[str, Any]] = field(default_factory=dict)
    status: str = "RUNNING"

    def log_params(self, params: dict[str, Any]) -> None:
        flat = flatten_params(params)
        for key, value in flat.items():
            old = self.params.get(key)
            if old is not None and old != value:
                raise ValueError(f"param {key!r} already logged as {old!r}; params are immutable")
        self.params.update(flat)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        for key, value in metrics.items():
            self.metrics.setdefault(key, []).append((step or 0, float(value)))

    def set_tags(self, tags: dict[str, str]) -> None:
        self.tags.update({k: str(v) for k, v in tags.items()})

    def log_dict(self, data: dict[str, Any], artifact_file: str) -> None:
        rel = safe_relative(artifact_file)
        target = self.artifact_dir.joinpath(*rel.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        if rel.suffix in (".yaml", ".yml"):
            target.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        else:
            target.write_text(json.dumps(data, indent=2), encoding="utf-8")
        self.dicts[str(rel)] = json.loads(json.dumps(data))

    def log_artifact(self, path: Path, artifact_dir: str | None = None) -> None:
        base = self.artifact_dir
        if artifact_dir:
            base = base.joinpath(*safe_relative(artifact_dir).parts)
        base.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            shutil.copytree(path, base / path.name, dirs_exist_ok=True)
        else:
            shutil.copy2(path, base / path.name)

    def latest_metrics(self) -> dict[str, float]:
        """MLflow's notion of "latest": highest step, and the last value logged at that step."""
        latest: dict[str, float] = {}
        for key, history in self.metrics.items():
            top = max(step for step, _ in history)
            latest[key] = [value for step, value in history if step == top][-1]
        return latest

    def info(self) -> RunInfo:
        return RunInfo(
            run_id=self.run_id,
            name=self.name,
            status=self.status,
            tags=dict(self.tags),
            metrics=self.latest_metrics(),
            artifact_uri=self.artifact_dir.as_uri(),
        )


@dataclass
class _MemoryModel:
    versions: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)


class InMemoryRegistry:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.runs: dict[str, MemoryRun] = {}
        self._models: dict[str, _MemoryModel] = {}
        self._seq = itertools.count()

    @contextmanager
    def start_run(self, run_name: str, tags: dict[str, str]) -> Iterator[MemoryRun]:
        run_id = uuid.uuid4().hex
        run = MemoryRun(
            run_id=run_id,
            name=run_name,
            artifact_dir=self.root / "runs" / run_id,
            seq=next(self._seq),
            tags={k: str(v) for k, v in tags.items()},
        )
        run.artifact_dir.mkdir(parents=True, exist_ok=True)
        self.runs[run_id] = run
        try:
            yield run
        except BaseException:
            run.status = "FAILED"
            raise
        run.status = "FINISHED"

    def register_model(self, run: ExperimentRun, name: str, package_dir: Path) -> ModelVersion:
        validate_model_name(name)
        run_id = run.run_id
        if run_id not in self.runs:
            raise LookupError(f"unknown run {run_id!r}")
        check_package_dir(package_dir)
        model = self._models.setdefault(name, _MemoryModel())
        version = str(len(model.versions) + 1)
        shutil.copytree(package_dir, self._package_path(name, version))
        model.versions[version] = run_id
        return ModelVersion(name=name, version=version, run_id=run_id)

    def set_alias(self, name: str, alias: str, version: str) -> None:
        validate_alias(alias)
        model = self._model(name)
        if version not in model.versions:
            raise missing_version_error(name, version, model.versions)
        model.aliases[alias] = version

    def alias_version(self, name: str, alias: str) -> str | None:
        validate_alias(alias)
        model = self._models.get(name)
        return None if model is None else model.aliases.get(alias)

    def resolve(self, model_ref: str) -> ModelVersion:
        ref = parse_model_ref(model_ref)
        model = self._model(ref.name)
        return select_version(ref, model.versions, model.aliases)

    def download_package(self, version: ModelVersion, dst: Path) -> Path:
        model = self._model(version.name)
        if version.version not in model.versions:
            raise missing_version_error(version.name, version.version, model.versions)
        target = dst / PACKAGE_ARTIFACT
        shutil.copytree(self._package_path(version.name, version.version), target)
        return target

    def find_runs(self, tags: dict[str, str]) -> list[RunInfo]:
        matching = [
            run
            for run in self.runs.values()
            if all(run.tags.get(k) == str(v) for k, v in tags.items())
        ]
        return [run.info() for run in sorted(matching, key=lambda r: r.seq, reverse=True)]

    def _model(self, name: str) -> _MemoryModel:
        model = self._models.get(name)
        if model is None:
            raise unknown_model_error(name, list(self._models))
        return model

    def _package_path(self, name: str, version: str) -> Path:
        return self.root / "models" / name / version / PACKAGE_ARTIFACT
