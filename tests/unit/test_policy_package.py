"""The numpy layers of a model package (``policy.npz``) without any trained model: their storage,
their checks at load, the lazy loading of the SB3 model, and that a process which loads such a
package and decides imports neither torch, Stable-Baselines3, gymnasium nor the training package.

The comparison of stored layers with real torch policies of every algorithm is in
``test_predictor.py``; here the layers are drawn at random so that the tests need no training.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from drl_trading.common.agent_state import agent_state
from drl_trading.policy.numpy_policy import NumpyPolicy
from drl_trading.policy.package import (
    MANIFEST_FILE,
    NUMPY_POLICY_FILE,
    NUMPY_POLICY_FORMAT,
    POLICY_FILE,
    ModelManifest,
    ModelPackageError,
    ObsNormalization,
    numpy_policy_arrays,
    numpy_policy_from_arrays,
    write_normalization,
    write_numpy_policy,
)
from drl_trading.policy.predictor import Predictor

WINDOW = 3
N_FEATURES = 4
OBS = WINDOW * N_FEATURES + 3
HEAVY = ("torch", "stable_baselines3", "sb3_contrib", "gymnasium")


def _manifest(algorithm: str, action_mode: str) -> ModelManifest:
    return ModelManifest(
        algorithm=algorithm,
        policy="MlpPolicy",
        action_mode=action_mode,
        window=WINDOW,
        feature_columns=[f"f{i}" for i in range(N_FEATURES)],
        feature_set={},
        feature_set_version="test",
        feature_view="test_view",
        base_timeframe="5m",
        strategy={"name": "test", "version": "0", "ref": "test"},
        max_position=0.8,
        allow_short=True,
        fee_bps=5.0,
        slippage_bps=2.0,
    )


def _layer(rng: np.random.Generator, n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    return rng.normal(0.0, 0.5, (n_out, n_in)), rng.normal(0.0, 0.1, n_out)


def _policy(kind: str, hidden: tuple[int, ...], seed: int = 0) -> NumpyPolicy:
    rng = np.random.default_rng(seed)
    layers: list[tuple[np.ndarray, np.ndarray, str | None]] = []
    width = OBS
    for i, n in enumerate(hidden):
        layers.append((*_layer(rng, width, n), "tanh" if i % 2 == 0 else "relu"))
        width = n
    outputs = 3 if kind in ("logits", "q") else 1
    head_act = "tanh" if kind == "deterministic" else None
    head = (*_layer(rng, width, outputs), head_act)
    log_std = rng.normal(0.0, 0.3, 1) if kind == "gaussian" else None
    log_std_head = _layer(rng, width, 1) if kind == "squashed" else None
    return NumpyPolicy(kind, layers, head, log_std=log_std, log_std_head=log_std_head)


CASES = [
    ("PPO", "discrete", _policy("logits", (16, 8))),
    ("DQN", "discrete", _policy("q", (16,))),
    ("PPO", "continuous", _policy("gaussian", (8, 8))),
    ("SAC", "continuous", _policy("squashed", (8,))),
    ("TD3", "continuous", _policy("deterministic", ())),
]
IDS = [f"{c[0]}-{c[2].kind}" for c in CASES]


def _normalization(seed: int = 1) -> ObsNormalization:
    rng = np.random.default_rng(seed)
    return ObsNormalization(rng.normal(0.0, 2.0, OBS), rng.uniform(0.5, 4.0, OBS), clip=10.0)


def stand_in_policy_zip(entries: dict[str, bytes] | None = None) -> bytes:
    """A ``policy.zip`` with the entries of an SB3 save (so it passes the check at load) but no
    model in them, so any attempt to take the torch path fails; ``entries`` replaces them.
    Stored uncompressed, so that a test can damage a known byte."""
    if entries is None:
        entries = {
            "data": json.dumps({"policy_class": "a stand-in: no model"}).encode(),
            "policy.pth": b"not a state dict: the torch path must not be taken",
        }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, payload in entries.items():
            archive.writestr(name, payload)
    return buffer.getvalue()


def _package(dst: Path, manifest: ModelManifest, fast: NumpyPolicy | None) -> Path:
    """A package as `write_package` lays it out; ``policy.zip`` is a stand-in, not a real SB3
    model, so any attempt to load it fails the test. ``fast`` None: no numpy layers."""
    dst.mkdir(parents=True)
    (dst / POLICY_FILE).write_bytes(stand_in_policy_zip())
    write_normalization(dst, _normalization())
    if fast is not None:
        write_numpy_policy(dst, fast)
    (dst / MANIFEST_FILE).write_text(manifest.to_json())
    return dst


def _inputs(n: int = 25, seed: int = 2) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    windows = rng.normal(0.0, 2.0, (n, WINDOW, N_FEATURES)).astype(np.float32)
    states = np.array(
        [
            agent_state(float(rng.choice([-0.5, 0.0, 1.0])), 100.0, float(rng.uniform(90, 110)), k)
            for k in range(n)
        ]
    )
    return windows, states


def _reference(
    fast: NumpyPolicy, manifest: ModelManifest, window: np.ndarray, state: np.ndarray
) -> tuple[float, int, float]:
    """What a decision is: normalise as VecNormalize does (in float64), then the layers."""
    norm = _normalization()
    obs = np.concatenate([window.reshape(-1).astype(np.float64), state])
    x = np.clip((obs - norm.mean) * norm.scale, -norm.clip, norm.clip)
    out, hidden = fast.forward(x)
    return fast.decide(out, hidden, manifest, confidence=True)


@pytest.mark.parametrize(("algorithm", "mode", "fast"), CASES, ids=IDS)
def test_stored_layers_round_trip(algorithm: str, mode: str, fast: NumpyPolicy) -> None:
    back = numpy_policy_from_arrays(numpy_policy_arrays(fast))
    assert back.kind == fast.kind
    assert len(back.layers) == len(fast.layers)
    for (w1, b1, a1), (w2, b2, a2) in zip(
        [*back.layers, back.head], [*fast.layers, fast.head], strict=True
    ):
        np.testing.assert_array_equal(w1, w2)
        np.testing.assert_array_equal(b1, b2)
        assert a1 == a2
    for got, want in ((back.log_std, fast.log_std), (back.log_std_head, fast.log_std_head)):
        assert (got is None) == (want is None)
    if fast.log_std is not None:
        np.testing.assert_array_equal(back.log_std, fast.log_std)
    if fast.log_std_head is not None:
        assert back.log_std_head is not None
        np.testing.assert_array_equal(back.log_std_head[0], fast.log_std_head[0])
        np.testing.assert_array_equal(back.log_std_head[1], fast.log_std_head[1])


@pytest.mark.parametrize(("algorithm", "mode", "fast"), CASES, ids=IDS)
def test_package_decides_on_its_layers_without_the_model(
    algorithm: str, mode: str, fast: NumpyPolicy, tmp_path: Path
) -> None:
    manifest = _manifest(algorithm, mode)
    predictor = Predictor.load(_package(tmp_path / "pkg", manifest, fast))
    windows, states = _inputs()
    pairs = list(zip(windows, states, strict=True))
    decisions = [predictor.decide(w, s[None]) for w, s in pairs]
    assert decisions == [_reference(fast, manifest, w, s) for w, s in pairs]
    assert any(target != 0.0 for target, _, _ in decisions)
    assert not predictor.model_loaded


def test_a_fresh_process_loads_and_decides_without_the_training_stack(tmp_path: Path) -> None:
    """What an inference process does with a package: import the predictor, load, decide."""
    algorithm, mode, fast = CASES[2]
    manifest = _manifest(algorithm, mode)
    package = _package(tmp_path / "pkg", manifest, fast)
    windows, states = _inputs()
    np.savez(tmp_path / "inputs.npz", windows=windows, states=states)
    script = f"""
import json, sys
import numpy as np

HEAVY = {HEAVY!r}

def heavy():
    return sorted(
        m for m in sys.modules
        if m.split(".")[0] in HEAVY or m.startswith("drl_trading.training")
    )

import drl_trading.policy.predictor, drl_trading.policy.run, drl_trading.policy.package
after_import = heavy()
from drl_trading.policy.predictor import Predictor
predictor = Predictor.load(sys.argv[1])
with np.load(sys.argv[2]) as z:
    windows, states = z["windows"], z["states"]
decisions = [predictor.decide(w, s[None]) for w, s in zip(windows, states)]
print(json.dumps({{"after_import": after_import, "after_decide": heavy(), "decisions": decisions}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", script, str(package), str(tmp_path / "inputs.npz")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    assert result["after_import"] == []
    assert result["after_decide"] == []
    got = [tuple(d) for d in result["decisions"]]
    assert got == [_reference(fast, manifest, w, s) for w, s in zip(windows, states, strict=True)]


def test_the_model_is_loaded_once_when_the_torch_path_needs_it() -> None:
    algorithm, mode, fast = CASES[0]

    class _Policy:
        training = True

        def set_training_mode(self, mode: bool) -> None:
            self.training = mode

    class _Model:
        policy = _Policy()

    loads: list[_Model] = []

    def load_model() -> _Model:
        loads.append(_Model())
        return loads[-1]

    predictor = Predictor(
        _manifest(algorithm, mode), _normalization(), fast=fast, load_model=load_model
    )
    assert predictor.numpy_policy() is fast
    assert not predictor.model_loaded and not loads
    assert predictor.policy is loads[0].policy
    assert predictor.model is loads[0]
    assert predictor.model_loaded and len(loads) == 1
    assert predictor.policy.training is False
    with pytest.raises(
        ModelPackageError,
        match="needs the SB3 model, or numpy layers and load_model: got model=none, "
        "fast=given, load_model=none for a PPO package",
    ):
        Predictor(_manifest(algorithm, mode), _normalization(), fast=fast)
    with pytest.raises(ValueError, match="needs the SB3 model"):  # callers catching ValueError
        Predictor(_manifest(algorithm, mode), _normalization(), load_model=load_model)


def test_layers_that_do_not_fit_the_manifest_are_refused(tmp_path: Path) -> None:
    algorithm, mode, fast = CASES[0]
    wider = replace(_manifest(algorithm, mode), window=WINDOW + 1)
    with pytest.raises(ModelPackageError, match="the layers take 15 inputs"):
        Predictor.load(_package(tmp_path / "window", wider, fast))
    continuous = _manifest(algorithm, "continuous")
    with pytest.raises(ModelPackageError, match="give 3 outputs; the manifest's continuous policy"):
        Predictor.load(_package(tmp_path / "mode", continuous, fast))


def test_damaged_or_newer_layer_files_are_refused(tmp_path: Path) -> None:
    _, _, fast = CASES[0]
    arrays = numpy_policy_arrays(fast)
    with pytest.raises(ModelPackageError, match="newer than this build"):
        numpy_policy_from_arrays({**arrays, "format": np.array(NUMPY_POLICY_FORMAT + 1)})
    with pytest.raises(ModelPackageError, match="unknown kind 'rbf'"):
        numpy_policy_from_arrays({**arrays, "kind": np.array("rbf")})
    with pytest.raises(ModelPackageError, match="unknown activation 'gelu'"):
        numpy_policy_from_arrays({**arrays, "layer0_act": np.array("gelu")})
    with pytest.raises(ModelPackageError, match="layer1 has weights"):
        numpy_policy_from_arrays({**arrays, "layer1_w": arrays["layer1_w"][:, 1:]})
    gaussian = CASES[2]
    package = _package(tmp_path / "pkg", _manifest(*gaussian[:2]), gaussian[2])
    stored = numpy_policy_arrays(gaussian[2])
    del stored["log_std"]
    np.savez(package / NUMPY_POLICY_FILE, **stored)
    with pytest.raises(ModelPackageError, match="'log_std' is missing"):
        Predictor.load(package)


def _damaged_policy_zips() -> dict[str, tuple[bytes | None, str]]:
    """``policy.zip`` contents (None: no file) and the message each is refused with."""
    good = stand_in_policy_zip()
    payload = b"not a state dict: the torch path must not be taken"
    flipped = bytearray(good)
    at = good.index(payload)
    flipped[at] ^= 0xFF
    return {
        "truncated": (good[: len(good) // 2], r"policy\.zip is not a readable zip"),
        "not-a-zip": (b"not a zip", r"policy\.zip is not a readable zip"),
        "no-policy-pth": (
            stand_in_policy_zip({"data": b"{}"}),
            r"policy\.zip is not an SB3 save: it lacks policy\.pth \(has: data\)",
        ),
        "foreign": (
            stand_in_policy_zip({"notes.txt": b"hello"}),
            r"it lacks data, policy\.pth \(has: notes\.txt\)",
        ),
        "bad-checksum": (bytes(flipped), r"policy\.zip is damaged: entry policy\.pth fails"),
        "data-not-json": (
            stand_in_policy_zip({"data": b"\x80 pickle?", "policy.pth": payload}),
            r"policy\.zip: entry data is not JSON",
        ),
        "missing": (None, r"policy\.zip: the SB3 policy file is missing"),
    }


DAMAGED = _damaged_policy_zips()


def _damaged_package(dst: Path, case: str, *, layers: bool) -> Path:
    algorithm, mode, fast = CASES[0]
    package = _package(dst, _manifest(algorithm, mode), fast if layers else None)
    content = DAMAGED[case][0]
    if content is None:
        (package / POLICY_FILE).unlink()
    else:
        (package / POLICY_FILE).write_bytes(content)
    return package


@pytest.mark.parametrize("layers", [True, False], ids=["with-layers", "without-layers"])
@pytest.mark.parametrize("case", list(DAMAGED))
def test_a_damaged_or_foreign_policy_zip_fails_at_load(
    case: str, layers: bool, tmp_path: Path
) -> None:
    """With the numpy layers the SB3 model is loaded only for the torch path, so ``policy.zip``
    is checked at load: a package that cannot act through torch fails now, not on first use."""
    package = _damaged_package(tmp_path / "pkg", case, layers=layers)
    with pytest.raises(ModelPackageError, match=DAMAGED[case][1]):
        Predictor.load(package)


def test_a_damaged_policy_zip_is_refused_without_importing_torch(tmp_path: Path) -> None:
    packages = {
        f"{case}-{'layers' if layers else 'zip-only'}": str(
            _damaged_package(tmp_path / f"{case}-{layers}", case, layers=layers)
        )
        for case in ("truncated", "no-policy-pth")
        for layers in (True, False)
    }
    script = f"""
import json, sys
from drl_trading.policy.package import ModelPackageError
from drl_trading.policy.predictor import Predictor

errors = {{}}
for name, path in json.loads(sys.argv[1]).items():
    try:
        Predictor.load(path)
    except ModelPackageError as exc:
        errors[name] = str(exc)
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r})
print(json.dumps({{"errors": errors, "heavy": heavy}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(packages)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    assert result["heavy"] == []
    assert sorted(result["errors"]) == sorted(packages)
    for name, message in result["errors"].items():
        assert packages[name] in message
        assert ("not a readable zip" if name.startswith("truncated") else "lacks policy.pth") in (
            message
        )
