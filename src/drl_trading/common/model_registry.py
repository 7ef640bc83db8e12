"""Kernel ports of experiment tracking and the model registry (training writes, inference reads),
and the rules every registry adapter applies.

MLflow implements both (embedded SQLite or a tracking server, the URI is configuration); the
in-memory fake serves unit tests. A registered model is a *package*: a folder the framework writes
(policy weights, normalisation statistics, manifest with feature set and spaces) that the
registry stores as one model version and hands back as a folder again, so that loading a model
never depends on which registry holds it.

The model-reference grammar (``NAME``, ``NAME@alias``, ``NAME/3``, optionally ``models:/``), the
name and alias rules, the version selection and its error messages, the parameter flattening and
the artifact-path rule are part of this port's contract, so they live here beside it: every
adapter (and the in-memory model source of inference) imports them, and code that passes against
the fake fails the same way, with the same messages, against MLflow.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from drl_trading.common.errors import UsageError

MODELS_SCHEME = "models:/"
CHAMPION = "champion"
"""The alias of the version inference serves; a bare model name resolves to it."""
PACKAGE_ARTIFACT = "package"
"""The name of the package folder inside a stored version (MLflow: the pyfunc's artifact), and
of the folder `ModelRegistry.download_package` returns."""
MANIFEST_FILE = "manifest.json"
"""The file that makes a folder a model package (written by `drl_trading.policy.package`)."""
MAX_PARAM_VALUE_LENGTH = 6000
"""MLflow rejects longer parameter values; every adapter truncates alike (characters)."""
_ALIAS_RE = re.compile(r"^[\w\-]+$")
_VERSION_ALIAS_RE = re.compile(r"^[vV]\d+$")


@dataclass(frozen=True, slots=True)
class ModelVersion:
    name: str
    version: str
    run_id: str

    @property
    def uri(self) -> str:
        return f"{MODELS_SCHEME}{self.name}/{self.version}"


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
        """The model's package folder, copied under ``dst``; returns that folder (named
        `PACKAGE_ARTIFACT`)."""

    def find_runs(self, tags: dict[str, str]) -> list[RunInfo]:
        """Runs whose tags include all of ``tags``, newest first."""


# --- the rules every adapter applies ------------------------------------------------------------


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested configs become dotted keys because tracking backends only store flat strings."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, prefix=f"{name}."))
        else:
            flat[name] = str(value)[:MAX_PARAM_VALUE_LENGTH]
    return flat


def validate_model_name(name: str) -> None:
    """MLflow's rule: the name is embedded in ``models:/NAME/...`` URIs."""
    if not name.strip():
        raise ValueError("model name must not be empty")
    if "/" in name or ":" in name:
        raise ValueError(f"invalid model name {name!r}: names cannot contain '/' or ':'")


def validate_alias(alias: str) -> None:
    """MLflow's rule: aliases must not be confusable with versions or the ``latest`` keyword."""
    if not _ALIAS_RE.match(alias):
        raise ValueError(f"invalid alias {alias!r}: use letters, digits, '_' and '-' (non-empty)")
    if alias.lower() == "latest" or _VERSION_ALIAS_RE.match(alias):
        raise ValueError(f"alias {alias!r} is reserved")


@dataclass(frozen=True, slots=True)
class ModelRef:
    name: str
    version: str | None = None
    alias: str | None = None


class InvalidModelReferenceError(UsageError, ValueError):
    """A model reference outside the grammar of `parse_model_ref`; names the reference, what
    is wrong and the accepted forms."""

    def __init__(self, model_ref: str, problem: str) -> None:
        self.model_ref = model_ref
        self.problem = problem
        super().__init__(
            f"invalid model reference {model_ref!r}: {problem}; use NAME, NAME@alias, "
            "NAME/<version number> (e.g. drl-example/3) or models:/NAME/<version>"
        )


def parse_model_ref(model_ref: str) -> ModelRef:
    """``NAME``, ``NAME@alias``, ``NAME/3``, each optionally prefixed with ``models:/``;
    `InvalidModelReferenceError` (a ValueError) otherwise."""
    text = model_ref.strip()
    body = text.removeprefix(MODELS_SCHEME)
    try:
        if "@" in body:
            name, _, alias = body.rpartition("@")
            validate_model_name(name)
            validate_alias(alias)
            return ModelRef(name=name, alias=alias)
        if "/" in body:
            name, _, version = body.partition("/")
            validate_model_name(name)
            if not version.isdigit():
                raise ValueError(f"version {version!r} is not a number")
            return ModelRef(name=name, version=str(int(version)))
        validate_model_name(body)
    except ValueError as exc:
        raise InvalidModelReferenceError(model_ref, str(exc)) from None
    return ModelRef(name=body)


def versions_text(versions: Iterable[str]) -> str:
    ordered = sorted(versions, key=int)
    return ", ".join(ordered) if ordered else "none"


def missing_version_error(name: str, version: str, versions: Iterable[str]) -> LookupError:
    return LookupError(
        f"model {name!r} has no version {version!r} (versions: {versions_text(versions)})"
    )


def unknown_model_error(name: str, known: Sequence[str]) -> LookupError:
    shown = ", ".join(sorted(known)[:20]) or "none"
    more = f" and {len(known) - 20} more" if len(known) > 20 else ""
    return LookupError(f"no registered model {name!r} (models: {shown}{more})")


def select_version(
    ref: ModelRef, versions: Mapping[str, str], aliases: Mapping[str, str]
) -> ModelVersion:
    """Resolves ``ref`` against one model's ``versions`` (version → run id) and ``aliases``
    (alias → version); a bare name means the champion, else the latest version."""
    if ref.alias is not None:
        version = aliases.get(ref.alias)
        if version is None:
            alias_list = ", ".join(sorted(aliases)) or "none"
            raise LookupError(
                f"model {ref.name!r} has no alias {ref.alias!r} "
                f"(aliases: {alias_list}; versions: {versions_text(versions)})"
            )
    elif ref.version is not None:
        version = ref.version
    elif CHAMPION in aliases:
        version = aliases[CHAMPION]
    elif versions:
        version = max(versions, key=int)
    else:
        raise LookupError(f"model {ref.name!r} has no versions")
    if version not in versions:
        raise missing_version_error(ref.name, version, versions)
    return ModelVersion(name=ref.name, version=version, run_id=versions[version])


def check_package_dir(package_dir: Path) -> dict[str, Any]:
    """A package without its manifest cannot be loaded later, so refuse it at registration;
    returns the manifest (adapters describe the version with it)."""
    manifest_path = package_dir / MANIFEST_FILE
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{package_dir} is not a model package: no {MANIFEST_FILE}")
    manifest: dict[str, Any] = json.loads(manifest_path.read_text(encoding="utf-8"))
    return manifest


def safe_relative(artifact_path: str) -> PurePosixPath:
    """Artifact names are relative paths inside the run; escaping the run folder is a bug."""
    rel = PurePosixPath(artifact_path)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise ValueError(f"invalid artifact path {artifact_path!r}: must be relative, no '..'")
    return rel
