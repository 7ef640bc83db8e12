"""A model package: the folder the framework writes and every registry stores as one version.

It holds the SB3 policy (``policy.zip``), the observation normalisation statistics
(``normalization.npz``, applied by `Predictor` rather than by SB3's VecNormalize wrapper so that
no environment is needed to act) and ``manifest.json`` (algorithm, feature set definition and
version, window, spaces, strategy, training data and costs)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from drl_trading.common.agent_state import STATE_NAMES, STATE_SIZE

MANIFEST_FILE = "manifest.json"


POLICY_FILE = "policy.zip"


NORMALIZATION_FILE = "normalization.npz"


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
    dst.mkdir(parents=True, exist_ok=True)
    model.save(dst / POLICY_FILE)
    np.savez(
        dst / NORMALIZATION_FILE,
        mean=normalization.mean,
        var=normalization.var,
        clip=np.array(normalization.clip),
        epsilon=np.array(normalization.epsilon),
    )
    (dst / MANIFEST_FILE).write_text(manifest.to_json())
    return dst
