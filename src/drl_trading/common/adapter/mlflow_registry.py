"""Experiment tracking and model registry on MLflow: an embedded SQLite file or a tracking server,
whichever URI the configuration names.

Everything goes through one `MlflowClient` bound to the configured URIs rather than through
MLflow's fluent API, whose active run, tracking URI and registry URI are process-global: several
registries (tests, a backtest next to a training run) can then live in one process. Logging the
pyfunc model is done by hand for the same reason (``mlflow.pyfunc.log_model`` needs the global
tracking URI and an active run): create a LoggedModel, save the pyfunc locally, upload it to the
LoggedModel, link it to the run, register it.

A model version is an MLflow pyfunc whose ``package`` artifact (`PACKAGE_ARTIFACT`) is the model
package folder, so that MLflow tooling can load and serve it while this project gets the folder
back unchanged from `download_package`. The pyfunc is logged as code (MLflow's "models from
code"): the composition passes that code in (`drl_trading.policy.mlflow_pyfunc.MODEL_CODE`),
because the class it builds belongs to the policy package, above this kernel adapter.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import mlflow
import mlflow.artifacts
import mlflow.pyfunc
import numpy as np
import structlog
from mlflow.entities import LoggedModelOutput, LoggedModelStatus, Metric, Param, RunStatus, RunTag
from mlflow.entities.view_type import ViewType
from mlflow.exceptions import MlflowException
from mlflow.models import Model, ModelSignature
from mlflow.types.schema import ColSpec, DataType, Schema, TensorSpec

from drl_trading.common.errors import TrackingServerConnectionError
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

log = structlog.get_logger(__name__)

__all__ = ["MlflowRegistry", "MlflowRun", "pip_requirements", "policy_signature"]

# MLflow's request limits (mlflow.utils.validation): entities per LogBatch call.
_MAX_PARAMS_TAGS_PER_BATCH = 100
_MAX_METRICS_PER_BATCH = 1000
_MAX_DESCRIPTION_LENGTH = 5000  # the SQL stores' column width for version descriptions
_PAGE_SIZE = 1000
_NOT_FOUND = "RESOURCE_DOES_NOT_EXIST"
_ALREADY_EXISTS = "RESOURCE_ALREADY_EXISTS"
_SYSTEM_TAG_PREFIX = "mlflow."

# Pinned so that `mlflow models serve` or a fresh environment rebuilds what the policy was
# trained with; listed explicitly because MLflow's inference imports the model in subprocesses.
_RUNTIME_DISTRIBUTIONS = (
    "drl-trading",
    "torch",
    "stable-baselines3",
    "sb3-contrib",
    "gymnasium",
    "numpy",
    "pandas",
    "cloudpickle",
    "mlflow",
)

T = TypeVar("T")


TRACKING_PROBE_TIMEOUT_S = 3.0
"""Connect and read timeout (seconds) of each attempt of the tracking server check."""
TRACKING_PROBE_RETRIES = 2
"""Retries of the check after its first attempt (0.5 s, then 1 s apart)."""
TRACKING_PROBE_BOUND_S = 20.0
"""At most this long (seconds) passes before a tracking server that does not answer is
reported: (1 + retries) attempts of a connect and a read timeout each, plus the pauses. MLflow's
own requests (``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` 7, ``MLFLOW_HTTP_REQUEST_TIMEOUT`` 120 s)
would retry for minutes; they still apply to a server lost after the check."""
_UNREACHABLE_STATUS = (502, 503, 504)
"""Statuses of a proxy whose tracking server behind it does not answer."""
_HTTP_REASONS = (
    re.compile(r"Failed to establish a new connection: (?:\[Errno -?\d+\] )?([^'\"()]+)"),
    re.compile(r"(Read timed out|Connect timeout|timed out)"),
    re.compile(r"(certificate verify failed[^'\"()]*)"),
    re.compile(r"(Connection (?:refused|reset by peer|aborted))"),
)


def check_tracking_server(tracking_uri: str, experiment: str) -> None:
    """Ask the tracking server at ``tracking_uri`` for ``experiment`` (any answer but a refusal
    will do: a missing experiment is created later), with MLflow's credentials (the URI's
    ``user:password@``, ``MLFLOW_TRACKING_USERNAME``...) and bounded retries
    (`TRACKING_PROBE_BOUND_S`). Raises `TrackingServerConnectionError` naming the server (its
    password masked) when it does not answer or refuses the credentials."""
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request

    try:
        response = http_request(  # type: ignore[no-untyped-call]
            get_default_host_creds(tracking_uri),  # type: ignore[no-untyped-call]
            "/api/2.0/mlflow/experiments/get-by-name",
            "GET",
            max_retries=TRACKING_PROBE_RETRIES,
            backoff_factor=0.5,
            backoff_jitter=0.0,
            timeout=TRACKING_PROBE_TIMEOUT_S,
            raise_on_status=False,
            params={"experiment_name": experiment},
        )
    except MlflowException as exc:
        text = str(exc)
        found = (m for pattern in _HTTP_REASONS if (m := pattern.search(text)))
        reason = next((m[1].strip() for m in found), text[:300])
        raise TrackingServerConnectionError(tracking_uri, reason) from exc
    status = int(response.status_code)
    if status in (401, 403):
        raise TrackingServerConnectionError(
            tracking_uri, f"HTTP {status} {response.reason}", "credentials"
        )
    if status in _UNREACHABLE_STATUS:
        raise TrackingServerConnectionError(tracking_uri, f"HTTP {status} {response.reason}")


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _is(exc: MlflowException, code: str) -> bool:
    return str(exc.error_code) == code


def pip_requirements() -> list[str]:
    reqs = []
    for dist in _RUNTIME_DISTRIBUTIONS:
        try:
            version = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
        # A local build tag such as "+cu128" is not installable from an index.
        reqs.append(f"{dist}=={version.split('+')[0]}")
    return reqs


def policy_signature(manifest: dict[str, Any]) -> ModelSignature:
    """Tensor inputs because the policy acts on a window of bars, which a flat table cannot hold;
    a table out because callers want named columns."""
    window = int(manifest["window"])
    n_features = len(manifest["feature_columns"])
    n_state = len(manifest.get("state_names") or ()) or 3
    inputs = Schema(
        [
            TensorSpec(np.dtype(np.float32), (-1, window, n_features), "features"),
            TensorSpec(np.dtype(np.float32), (-1, n_state), "agent_state"),
        ]
    )
    outputs = Schema(
        [
            ColSpec(DataType.double, "target_position"),
            ColSpec(DataType.long, "action"),
            ColSpec(DataType.double, "confidence"),
        ]
    )
    return ModelSignature(inputs=inputs, outputs=outputs)


def _input_example(signature: ModelSignature) -> dict[str, Any]:
    """One all-zero observation: documents the input shapes in the model (and silences MLflow's
    warning about its absence); MLflow only checks it against the signature, never predicts."""
    example: dict[str, Any] = {}
    for spec in signature.inputs.inputs:
        assert isinstance(spec, TensorSpec)
        example[str(spec.name)] = np.zeros((1, *spec.shape[1:]), dtype=spec.type)
    return example


def _description(manifest: dict[str, Any]) -> str:
    """The manifest in the version's description so the UI and `search_model_versions` show
    what a version was trained on without downloading it; cut to what SQL stores accept."""
    text = json.dumps(manifest, sort_keys=True, separators=(",", ":"), default=str)
    if len(text) > _MAX_DESCRIPTION_LENGTH:
        summary: dict[str, Any] = {
            k: manifest.get(k)
            for k in ("algorithm", "feature_set_version", "window", "state_names")
            if k in manifest
        }
        summary["n_features"] = len(manifest.get("feature_columns", ()))
        text = json.dumps(summary, sort_keys=True, separators=(",", ":"), default=str)
    return text[:_MAX_DESCRIPTION_LENGTH]


def _filter_value(value: str) -> str:
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    raise ValueError(f"tag value {value!r} holds both quote kinds; MLflow cannot search it")


class MlflowRun:
    def __init__(self, client: mlflow.MlflowClient, run_id: str) -> None:
        self._client = client
        self._run_id = run_id
        self._params: dict[str, str] = {}

    @property
    def run_id(self) -> str:
        return self._run_id

    def log_params(self, params: dict[str, Any]) -> None:
        flat = flatten_params(params)
        for key, value in flat.items():
            old = self._params.get(key)
            if old is not None and old != value:
                raise ValueError(f"param {key!r} already logged as {old!r}; params are immutable")
        entries = [Param(k, v) for k, v in flat.items() if k not in self._params]
        for chunk in _chunks(entries, _MAX_PARAMS_TAGS_PER_BATCH):
            self._client.log_batch(self._run_id, params=list(chunk))
        self._params.update(flat)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        now = int(time.time() * 1000)
        entries = [Metric(k, float(v), now, step or 0) for k, v in metrics.items()]
        for chunk in _chunks(entries, _MAX_METRICS_PER_BATCH):
            self._client.log_batch(self._run_id, metrics=list(chunk))

    def set_tags(self, tags: dict[str, str]) -> None:
        entries = [RunTag(k, str(v)) for k, v in tags.items()]
        for chunk in _chunks(entries, _MAX_PARAMS_TAGS_PER_BATCH):
            self._client.log_batch(self._run_id, tags=list(chunk))

    def log_dict(self, data: dict[str, Any], artifact_file: str) -> None:
        self._client.log_dict(self._run_id, data, str(safe_relative(artifact_file)))

    def log_artifact(self, path: Path, artifact_dir: str | None = None) -> None:
        target = str(safe_relative(artifact_dir)) if artifact_dir else None
        self._client.log_artifact(self._run_id, str(path), target)


class MlflowRegistry:
    """``model_code`` is the Python source MLflow runs to build the pyfunc whenever a registered
    version is loaded (it must call ``mlflow.models.set_model``). It is required, and compiled
    here, so that a registry unable to register fails when it is built rather than at the end
    of a training run. For the same reason a tracking server (an ``http(s)://`` URI) is checked
    when the registry is built: one that does not answer or refuses the credentials is a
    `TrackingServerConnectionError` within `TRACKING_PROBE_BOUND_S`."""

    def __init__(
        self,
        tracking_uri: str,
        experiment: str = "drl-trading",
        artifact_location: str | None = None,
        registry_uri: str | None = None,
        *,
        model_code: str,
    ) -> None:
        if not model_code.strip():
            raise ValueError("model_code is empty: it must build the pyfunc with set_model")
        try:
            compile(model_code, "<model code>", "exec")
        except SyntaxError as exc:
            raise ValueError(f"model_code is not valid Python: {exc}") from None
        self.model_code = model_code
        self.tracking_uri = tracking_uri
        # Explicit, so MLFLOW_REGISTRY_URI or mlflow.set_registry_uri() elsewhere cannot redirect.
        self.registry_uri = registry_uri or tracking_uri
        self.experiment = experiment
        self.artifact_location = artifact_location
        self.client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=self.registry_uri)
        if tracking_uri.startswith(("http://", "https://")):
            # a server down or refusing the credentials fails here, within a bounded time, not
            # at the first request after MLflow's own retries (minutes)
            check_tracking_server(tracking_uri, experiment)

    @cached_property
    def experiment_id(self) -> str:
        """Created on first use, so that building a registry creates nothing (a tracking
        server is only asked whether it answers, `check_tracking_server`)."""
        exp = self.client.get_experiment_by_name(self.experiment)
        if exp is None:
            try:
                return self.client.create_experiment(
                    self.experiment, artifact_location=self.artifact_location
                )
            except MlflowException as e:  # another process created it meanwhile
                if not _is(e, _ALREADY_EXISTS):
                    raise
                exp = self.client.get_experiment_by_name(self.experiment)
                if exp is None:
                    raise
        if exp.lifecycle_stage == "deleted":
            self.client.restore_experiment(exp.experiment_id)
        return str(exp.experiment_id)

    # --- runs -----------------------------------------------------------------------------------

    @contextmanager
    def start_run(self, run_name: str, tags: dict[str, str]) -> Iterator[MlflowRun]:
        created = self.client.create_run(
            self.experiment_id, run_name=run_name, tags={k: str(v) for k, v in tags.items()}
        )
        run_id = created.info.run_id
        try:
            yield MlflowRun(self.client, run_id)
        except BaseException:
            try:
                self.client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED))
            except Exception:  # the original error matters more than the bookkeeping
                log.warning("mlflow_run_terminate_failed", run_id=run_id, exc_info=True)
            raise
        self.client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))

    def find_runs(self, tags: dict[str, str]) -> list[RunInfo]:
        clauses = []
        for key, value in tags.items():
            if "`" in key:
                raise ValueError(f"tag key {key!r} contains a backtick; MLflow cannot search it")
            clauses.append(f"tags.`{key}` = {_filter_value(str(value))}")
        found: list[RunInfo] = []
        token: str | None = None
        while True:
            page = self.client.search_runs(
                [self.experiment_id],
                filter_string=" AND ".join(clauses),
                run_view_type=ViewType.ACTIVE_ONLY,
                max_results=_PAGE_SIZE,
                order_by=["attributes.start_time DESC"],
                page_token=token,
            )
            for run in page:
                found.append(
                    RunInfo(
                        run_id=run.info.run_id,
                        name=run.info.run_name or "",
                        status=run.info.status,
                        tags={
                            k: v
                            for k, v in run.data.tags.items()
                            if not k.startswith(_SYSTEM_TAG_PREFIX)
                        },
                        metrics=dict(run.data.metrics),
                        artifact_uri=run.info.artifact_uri or "",
                    )
                )
            token = page.token
            if not token:
                return found

    # --- models ---------------------------------------------------------------------------------

    def register_model(self, run: ExperimentRun, name: str, package_dir: Path) -> ModelVersion:
        validate_model_name(name)
        manifest = check_package_dir(package_dir)
        run_id = run.run_id
        experiment_id = self.client.get_run(run_id).info.experiment_id
        feature_set_version = str(manifest.get("feature_set_version", ""))
        logged = self.client.create_logged_model(
            experiment_id=experiment_id,
            name=name,
            source_run_id=run_id,
            tags={"feature_set_version": feature_set_version},
            model_type="drl-policy",
        )
        try:
            with tempfile.TemporaryDirectory(prefix="drl-model-") as tmp:
                local = Path(tmp) / "model"
                code = Path(tmp) / "drl_policy_model.py"
                code.write_text(self.model_code, encoding="utf-8")
                signature = policy_signature(manifest)
                mlflow.pyfunc.save_model(
                    path=str(local),
                    python_model=str(code),
                    artifacts={PACKAGE_ARTIFACT: str(self._staged(package_dir, Path(tmp)))},
                    signature=signature,
                    input_example=_input_example(signature),
                    pip_requirements=pip_requirements(),
                    metadata={"drl_trading_manifest": manifest},
                    mlflow_model=Model(
                        artifact_path=logged.artifact_location,
                        run_id=run_id,
                        model_uuid=logged.model_id,
                        model_id=logged.model_id,
                    ),
                )
                self.client.log_model_artifacts(logged.model_id, str(local))
            self.client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
        except BaseException:
            self.client.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
            raise
        self.client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)

        self._ensure_registered_model(name)
        created = self.client.create_model_version(
            name=name,
            # Not "models:/<model_id>": MLflow's SQL registry store resolves that through a new
            # MlflowClient() on the process-global tracking URI, i.e. possibly another store.
            source=logged.artifact_location,
            run_id=run_id,
            tags={
                "run_id": run_id,
                "feature_set_version": feature_set_version,
                "algorithm": str(manifest.get("algorithm", "")),
            },
            description=_description(manifest),
            model_id=logged.model_id,
        )
        return ModelVersion(name=name, version=str(created.version), run_id=run_id)

    def set_alias(self, name: str, alias: str, version: str) -> None:
        validate_alias(alias)
        versions, _ = self._catalog(name)
        if version not in versions:
            raise missing_version_error(name, version, versions)
        self.client.set_registered_model_alias(name, alias, version)

    def alias_version(self, name: str, alias: str) -> str | None:
        # Read from the registered model rather than get_model_version_by_alias, which reports a
        # missing alias as INVALID_PARAMETER_VALUE, indistinguishable from a malformed request.
        validate_alias(alias)
        try:
            model = self.client.get_registered_model(name)
        except MlflowException as e:
            if _is(e, _NOT_FOUND):
                return None
            raise
        version = (model.aliases or {}).get(alias)
        return None if version is None else str(version)

    def resolve(self, model_ref: str) -> ModelVersion:
        ref = parse_model_ref(model_ref)
        versions, aliases = self._catalog(ref.name)
        return select_version(ref, versions, aliases)

    def download_package(self, version: ModelVersion, dst: Path) -> Path:
        versions, _ = self._catalog(version.name)
        if version.version not in versions:
            raise missing_version_error(version.name, version.version, versions)
        model_dir = dst / "model"
        if model_dir.exists():
            raise FileExistsError(f"{model_dir} exists; download into an empty folder")
        dst.mkdir(parents=True, exist_ok=True)
        # Not "models:/NAME/V": MLflow resolves that through the process-global registry URI,
        # ignoring the one passed in. The storage location is a plain artifact URI.
        source = self.client.get_model_version_download_uri(version.name, version.version)
        with tempfile.TemporaryDirectory(dir=dst, prefix=".download-") as staging:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=source, dst_path=staging, tracking_uri=self.tracking_uri
            )
            # The folder is named after the store's layout (".../<model_id>/artifacts"); a
            # fixed name keeps the returned path the same for every store.
            shutil.move(local, model_dir)
        return _package_in(model_dir)

    # --- helpers --------------------------------------------------------------------------------

    @staticmethod
    def _staged(package_dir: Path, tmp: Path) -> Path:
        """MLflow stores a directory artifact under its own base name; a copy named ``package``
        keeps the layout ``artifacts/package`` whatever the caller's folder is called."""
        if package_dir.name == PACKAGE_ARTIFACT:
            return package_dir
        staged = tmp / "staged" / PACKAGE_ARTIFACT
        shutil.copytree(package_dir, staged)
        return staged

    def _ensure_registered_model(self, name: str) -> None:
        try:
            self.client.get_registered_model(name)
            return
        except MlflowException as e:
            if not _is(e, _NOT_FOUND):
                raise
        try:
            self.client.create_registered_model(name)
        except MlflowException as e:  # created concurrently
            if not _is(e, _ALREADY_EXISTS):
                raise

    def _catalog(self, name: str) -> tuple[dict[str, str], dict[str, str]]:
        """Versions (version → run id) and aliases (alias → version) of ``name``."""
        try:
            model = self.client.get_registered_model(name)
        except MlflowException as e:
            if not _is(e, _NOT_FOUND):
                raise
            known = [m.name for m in self.client.search_registered_models(max_results=100)]
            raise unknown_model_error(name, known) from None
        aliases = {alias: str(v) for alias, v in (model.aliases or {}).items()}
        versions: dict[str, str] = {}
        token: str | None = None
        quoted = _filter_value(name)
        while True:
            page = self.client.search_model_versions(
                f"name = {quoted}", max_results=_PAGE_SIZE, page_token=token
            )
            versions.update({str(mv.version): mv.run_id or "" for mv in page})
            token = page.token
            if not token:
                return versions, aliases


def _package_in(model_dir: Path) -> Path:
    """Where the pyfunc keeps the package: its MLmodel names the ``package`` artifact's path."""
    package = model_dir / "artifacts" / PACKAGE_ARTIFACT
    mlmodel = model_dir / "MLmodel"
    if mlmodel.is_file():
        flavor = Model.load(str(mlmodel)).flavors.get(mlflow.pyfunc.FLAVOR_NAME, {})
        entry = (flavor.get("artifacts") or {}).get(PACKAGE_ARTIFACT) or {}
        if rel := entry.get("path"):
            package = model_dir / rel
    if not package.is_dir():
        raise FileNotFoundError(f"no '{PACKAGE_ARTIFACT}' artifact in the model at {model_dir}")
    return package
