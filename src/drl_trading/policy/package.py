"""A model package: the folder the framework writes and every registry stores as one version.

It holds the SB3 policy (``policy.zip``), the observation normalisation statistics
(``normalization.npz``, applied by `Predictor` rather than by SB3's VecNormalize wrapper so that
no environment is needed to act), ``manifest.json`` (algorithm, feature set definition and
version, window, spaces, strategy, training data and costs) and, for MLP policies, their forward
pass as numpy arrays (``policy.npz``): a process that only acts reads that file and never
imports torch, Stable-Baselines3 or gymnasium (about a second and most of a gigabyte of memory).
Recurrent policies, policies numpy cannot represent and packages written before ``policy.npz``
existed have no such file and act through ``policy.zip``.

``policy.npz`` is optional, so a build that does not know it still loads the package from
``policy.zip``: adding it left the package format at 1.
"""

from __future__ import annotations

import io
import json
import zipfile
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from drl_trading.common.agent_state import STATE_NAMES, STATE_SIZE
from drl_trading.policy.numpy_policy import ACTIVATIONS, KINDS, NumpyPolicy

MANIFEST_FILE = "manifest.json"


POLICY_FILE = "policy.zip"
POLICY_ZIP_ENTRIES = ("data", "policy.pth")
"""What every SB3 save holds and loading needs: the class parameters (JSON) and the policy's
state dict; optimiser states and system information vary by algorithm and are not required."""


NORMALIZATION_FILE = "normalization.npz"


NUMPY_POLICY_FILE = "policy.npz"
NUMPY_POLICY_FORMAT = 1
"""Version of the layout of ``policy.npz``; a newer one than this build knows is refused (the
package then has to be read by a newer build, as for `PACKAGE_FORMAT`)."""


PACKAGE_FORMAT = 1


class ModelPackageError(ValueError):
    pass


@dataclass(frozen=True)
class ModelManifest:
    algorithm: str
    policy: str
    action_mode: str
    window: int
    feature_columns: list[str]
    feature_set: dict[str, Any]
    feature_set_version: str
    feature_view: str
    base_timeframe: str
    strategy: dict[str, str]
    max_position: float
    allow_short: bool
    fee_bps: float
    slippage_bps: float
    training: dict[str, Any] = field(default_factory=dict)
    state_names: list[str] = field(default_factory=lambda: list(STATE_NAMES))
    format_version: int = PACKAGE_FORMAT

    @property
    def n_features(self) -> int:
        return len(self.feature_columns)

    @property
    def obs_size(self) -> int:
        return self.window * self.n_features + STATE_SIZE

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True, default=str)

    @classmethod
    def from_json(cls, text: str) -> ModelManifest:
        data = json.loads(text)
        if data.get("format_version", 0) > PACKAGE_FORMAT:
            raise ModelPackageError(
                f"model package format {data['format_version']} is newer than this build "
                f"({PACKAGE_FORMAT}); upgrade drl-trading"
            )
        return cls(**data)


@dataclass(frozen=True)
class ObsNormalization:
    """SB3 VecNormalize's observation transform: clip((obs - mean) / sqrt(var + eps), ±clip)."""

    mean: np.ndarray
    var: np.ndarray
    clip: float = 10.0
    epsilon: float = 1e-8

    @property
    def scale(self) -> np.ndarray:
        return np.asarray(1.0 / np.sqrt(self.var + self.epsilon))

    def apply(self, obs: np.ndarray) -> np.ndarray:
        out = (obs.astype(np.float64) - self.mean) * self.scale
        return np.asarray(np.clip(out, -self.clip, self.clip), dtype=np.float32)

    @classmethod
    def identity(cls, size: int) -> ObsNormalization:
        return cls(np.zeros(size), np.ones(size) - 1e-8, clip=np.inf, epsilon=1e-8)


def write_package(
    dst: Path, model: Any, normalization: ObsNormalization, manifest: ModelManifest
) -> Path:
    """Write ``model`` (an SB3 model), its normalisation and manifest as a package in ``dst``,
    with the numpy forward pass where `NumpyPolicy` can represent the policy."""
    dst.mkdir(parents=True, exist_ok=True)
    model.save(dst / POLICY_FILE)
    write_normalization(dst, normalization)
    fast = NumpyPolicy.from_sb3(model.policy, manifest)
    if fast is None:
        (dst / NUMPY_POLICY_FILE).unlink(missing_ok=True)
    else:
        write_numpy_policy(dst, fast)
    (dst / MANIFEST_FILE).write_text(manifest.to_json())
    return dst


def write_normalization(dst: Path, normalization: ObsNormalization) -> None:
    np.savez(
        dst / NORMALIZATION_FILE,
        mean=normalization.mean,
        var=normalization.var,
        clip=np.array(normalization.clip),
        epsilon=np.array(normalization.epsilon),
    )


def write_numpy_policy(dst: Path, fast: NumpyPolicy) -> None:
    np.savez(dst / NUMPY_POLICY_FILE, allow_pickle=False, **numpy_policy_arrays(fast))


def read_manifest(package_dir: Path) -> ModelManifest:
    path = package_dir / MANIFEST_FILE
    if not path.exists():
        raise ModelPackageError(f"{package_dir} is not a model package (no {MANIFEST_FILE})")
    return ModelManifest.from_json(path.read_text())


def read_normalization(package_dir: Path) -> ObsNormalization:
    with np.load(package_dir / NORMALIZATION_FILE) as z:
        return ObsNormalization(z["mean"], z["var"], float(z["clip"]), float(z["epsilon"]))


def read_policy_zip(package_dir: Path) -> bytes:
    """The bytes of ``policy.zip``, checked without torch to be an SB3 save: a readable zip
    (every entry's checksum) with `POLICY_ZIP_ENTRIES` and JSON class parameters. A package that
    acts on its numpy layers loads the SB3 model from these bytes only when the torch path is
    asked for, so a damaged or foreign file must fail here, at load."""
    path = package_dir / POLICY_FILE
    if not path.is_file():
        raise ModelPackageError(f"{path}: the SB3 policy file is missing")
    raw = path.read_bytes()
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            names = archive.namelist()
            missing = [entry for entry in POLICY_ZIP_ENTRIES if entry not in names]
            if missing:
                raise ModelPackageError(
                    f"{path} is not an SB3 save: it lacks {', '.join(missing)} "
                    f"(has: {', '.join(names[:10]) or 'nothing'})"
                )
            damaged = archive.testzip()
            if damaged is not None:
                raise ModelPackageError(f"{path} is damaged: entry {damaged} fails its checksum")
            data = json.loads(archive.read("data"))
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise ModelPackageError(f"{path} is not a readable zip ({exc})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelPackageError(f"{path}: entry data is not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ModelPackageError(f"{path}: entry data is not a JSON object")
    return raw


def read_numpy_policy(package_dir: Path, manifest: ModelManifest) -> NumpyPolicy | None:
    """The stored numpy forward pass, or None where the package has none; checked against the
    manifest's observation size and action mode so that a mismatched file fails at load."""
    path = package_dir / NUMPY_POLICY_FILE
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as z:
        arrays = {key: z[key] for key in z.files}
    try:
        fast = numpy_policy_from_arrays(arrays)
    except KeyError as exc:
        raise ModelPackageError(f"{path}: array {exc} is missing") from None
    outputs = 3 if manifest.action_mode == "discrete" else 1
    if fast.obs_size != manifest.obs_size or fast.head[0].shape[0] != outputs:
        raise ModelPackageError(
            f"{path}: the layers take {fast.obs_size} inputs and give {fast.head[0].shape[0]} "
            f"outputs; the manifest's {manifest.action_mode} policy takes {manifest.obs_size} "
            f"and gives {outputs}"
        )
    return fast


def numpy_policy_arrays(fast: NumpyPolicy) -> dict[str, np.ndarray]:
    """``policy.npz``'s arrays: per layer its weights (out, in), biases (out,) and activation
    name ("" for none), float64 as `NumpyPolicy` computes."""
    arrays: dict[str, np.ndarray] = {
        "format": np.array(NUMPY_POLICY_FORMAT),
        "kind": np.array(fast.kind),
        "n_layers": np.array(len(fast.layers)),
    }
    for i, (w, b, act) in enumerate([*fast.layers, fast.head]):
        name = "head" if i == len(fast.layers) else f"layer{i}"
        arrays[f"{name}_w"] = w
        arrays[f"{name}_b"] = b
        arrays[f"{name}_act"] = np.array(act or "")
    if fast.log_std is not None:
        arrays["log_std"] = fast.log_std
    if fast.log_std_head is not None:
        arrays["log_std_w"], arrays["log_std_b"] = fast.log_std_head
    return arrays


def numpy_policy_from_arrays(arrays: dict[str, np.ndarray]) -> NumpyPolicy:
    version = int(arrays["format"])
    if version > NUMPY_POLICY_FORMAT:
        raise ModelPackageError(
            f"{NUMPY_POLICY_FILE} format {version} is newer than this build "
            f"({NUMPY_POLICY_FORMAT}); upgrade drl-trading"
        )
    kind = str(arrays["kind"])
    if kind not in KINDS:
        raise ModelPackageError(f"{NUMPY_POLICY_FILE}: unknown kind {kind!r}")
    layers: list[tuple[np.ndarray, np.ndarray, str | None]] = []
    names = [f"layer{i}" for i in range(int(arrays["n_layers"]))] + ["head"]
    for name in names:
        w = np.asarray(arrays[f"{name}_w"], dtype=np.float64)
        b = np.asarray(arrays[f"{name}_b"], dtype=np.float64)
        act = str(arrays[f"{name}_act"]) or None
        if act is not None and act not in ACTIVATIONS:
            raise ModelPackageError(f"{NUMPY_POLICY_FILE}: {name} has unknown activation {act!r}")
        inputs = layers[-1][0].shape[0] if layers else None
        if w.ndim != 2 or b.shape != w.shape[:1] or inputs not in (None, w.shape[1]):
            raise ModelPackageError(
                f"{NUMPY_POLICY_FILE}: {name} has weights {w.shape} and biases {b.shape} "
                f"after a layer of width {inputs}"
            )
        layers.append((w, b, act))
    log_std = np.asarray(arrays["log_std"], dtype=np.float64) if kind == "gaussian" else None
    log_std_head = None
    if kind == "squashed":
        log_std_head = (
            np.asarray(arrays["log_std_w"], dtype=np.float64),
            np.asarray(arrays["log_std_b"], dtype=np.float64),
        )
    return NumpyPolicy(kind, layers[:-1], layers[-1], log_std=log_std, log_std_head=log_std_head)
