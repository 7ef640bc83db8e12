"""The predictor's batched numpy fast path against the torch policy stepped through the real env.

For every algorithm and action mode a tiny model is trained the way the training service trains
(DummyVecEnv + VecNormalize on observations, so the normalisation statistics are not trivial).
The reference is a plain loop over `TradingEnv` itself: each observation, normalised by the
predictor, goes through the torch policy and the resulting action steps the environment, so the
agent state (position, unrealised return, time in position) is the environment's own. The fast
path (`run_policy`) must make exactly the same decisions with the same confidences.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from drl_trading.common.agent_state import agent_state
from drl_trading.common.market_series import MarketSeries
from drl_trading.policy.package import (
    ModelManifest,
    ModelPackageError,
    ObsNormalization,
    write_package,
)
from drl_trading.policy.predictor import Predictor
from drl_trading.policy.run import run_policy
from drl_trading.strategy.api import RewardContext
from drl_trading.strategy.signals import SignalRules
from drl_trading.training.adapter.sb3_trainer import build_model
from drl_trading.training.core.env import EnvConfig, TradingEnv

N_BARS = 300
N_FEATURES = 5
WINDOW = 2
SEED = 7


@dataclass(frozen=True)
class Case:
    algorithm: str
    action_mode: str
    timesteps: int
    hyper: dict[str, Any] = field(default_factory=dict)
    allow_short: bool = True
    fast: bool = True  # whether run_policy has a numpy fast path for it
    net_arch: tuple[int, ...] = (16, 16)
    label: str = ""

    @property
    def id(self) -> str:
        return f"{self.algorithm}-{self.action_mode}{self.label}"


CASES = [
    Case("PPO", "discrete", 256, {"n_steps": 64, "batch_size": 32, "n_epochs": 4}),
    Case("PPO", "continuous", 128, {"n_steps": 64, "batch_size": 32, "n_epochs": 2}),
    Case("A2C", "discrete", 128, {"n_steps": 8}),
    Case("DQN", "discrete", 128, {"learning_starts": 32, "buffer_size": 500, "batch_size": 16}),
    Case("SAC", "continuous", 96, {"learning_starts": 32, "buffer_size": 500, "batch_size": 16}),
    Case("TD3", "continuous", 96, {"learning_starts": 32, "buffer_size": 500, "batch_size": 16}),
    # no hidden layers: the first layer is the head, with its own activation (TD3's tanh)
    Case(
        "TD3",
        "continuous",
        96,
        {"learning_starts": 32, "buffer_size": 500, "batch_size": 16},
        net_arch=(),
        label="-linear",
    ),
    Case("PPO", "discrete", 64, {"n_steps": 64, "batch_size": 32}, net_arch=(), label="-linear"),
    Case(
        "MaskablePPO",
        "discrete",
        128,
        {"n_steps": 64, "batch_size": 32, "n_epochs": 2},
        allow_short=False,
    ),
    Case(
        "RecurrentPPO",
        "discrete",
        64,
        {
            "n_steps": 32,
            "batch_size": 32,
            "n_epochs": 1,
            "policy_kwargs": {"lstm_hidden_size": 16},
        },
        fast=False,
    ),
]


def _reward(ctx: RewardContext) -> float:
    return 100.0 * ctx.step_return


def _series(seed: int = 0, n: int = N_BARS) -> MarketSeries:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    prev = np.concatenate(([100.0], close[:-1]))
    open_ = prev * np.exp(rng.normal(0.0, 0.002, n))
    # offsets and scales far from N(0, 1) so that the normalisation actually matters
    loc = np.array([0.0, 5.0, -3.0, 50.0, 0.5])
    scale = np.array([1.0, 0.1, 4.0, 20.0, 0.01])
    feats = rng.normal(loc, scale, (n, N_FEATURES)).astype(np.float32)
    times = (np.datetime64("2024-01-01T00:05") + np.arange(n) * np.timedelta64(5, "m")).astype(
        "datetime64[us]"
    )
    return MarketSeries("TEST", times, feats, open_, close)


def _env_config(case: Case, episode_bars: int | None) -> EnvConfig:
    return EnvConfig(
        window=WINDOW,
        action_mode=case.action_mode,  # type: ignore[arg-type]
        allow_short=case.allow_short,
        episode_bars=episode_bars,
        feature_names=tuple(f"f{i}" for i in range(N_FEATURES)),
    )


def _manifest(case: Case, cfg: EnvConfig) -> ModelManifest:
    return ModelManifest(
        algorithm=case.algorithm,
        policy="default",
        action_mode=case.action_mode,
        window=cfg.window,
        feature_columns=list(cfg.feature_names),
        feature_set={},
        feature_set_version="test",
        feature_view="test_view",
        base_timeframe="5m",
        strategy={"name": "test", "version": "0", "ref": "test"},
        max_position=cfg.max_position,
        allow_short=cfg.allow_short,
        fee_bps=cfg.fee_bps,
        slippage_bps=cfg.slippage_bps,
    )


def _train(case: Case, series: MarketSeries) -> Predictor:
    """As `SB3Trainer.fit` does: DummyVecEnv + VecNormalize, stats taken from obs_rms."""
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    cfg = _env_config(case, episode_bars=64)

    def make() -> TradingEnv:
        env = TradingEnv([series], _reward, cfg)
        env.reset(seed=SEED)
        return env

    venv = VecNormalize(DummyVecEnv([make]), norm_obs=True, norm_reward=False, clip_obs=10.0)
    hyper = dict(case.hyper)
    if case.algorithm == "RecurrentPPO":
        net_arch: list[int] | None = None
        hyper["policy_kwargs"] = {**hyper["policy_kwargs"], "net_arch": list(case.net_arch)}
    else:
        net_arch = list(case.net_arch)
    model = build_model(
        case.algorithm,
        venv,
        policy=None,
        hyperparameters=hyper,
        net_arch=net_arch,
        seed=SEED,
        device="cpu",
    )
    model.learn(total_timesteps=case.timesteps, progress_bar=False)
    norm = ObsNormalization(
        np.asarray(venv.obs_rms.mean, dtype=np.float64),
        np.asarray(venv.obs_rms.var, dtype=np.float64),
        float(venv.clip_obs),
        float(venv.epsilon),
    )
    return Predictor(_manifest(case, cfg), norm, model)


def _reference(
    predictor: Predictor, case: Case, series: MarketSeries
) -> tuple[np.ndarray, np.ndarray]:
    """Step-by-step: the environment's observations through the torch policy."""
    m = predictor.manifest
    env = TradingEnv([series], _reward, _env_config(case, episode_bars=None))
    obs, _ = env.reset(options={"start": WINDOW - 1})
    predictor.reset_state()
    positions = np.zeros(len(series) - 1)
    confidence = np.zeros(len(series) - 1)
    t = WINDOW - 1
    truncated = False
    while not truncated:
        out = predictor.predict_observation(predictor.normalization.apply(obs[None]))
        if m.action_mode == "discrete":
            action: Any = int(out.action[0])
        else:
            action = np.array([out.target_position[0] / m.max_position])
        obs, _, _, truncated, info = env.step(action)
        assert info["position"] == pytest.approx(out.target_position[0], abs=1e-12)
        positions[t] = info["position"]
        confidence[t] = out.confidence[0]
        t += 1
    assert t == len(series) - 1
    return positions, confidence


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def series() -> MarketSeries:
    return _series()


@pytest.fixture(scope="module", params=CASES, ids=[c.id for c in CASES])
def trained(request: pytest.FixtureRequest, series: MarketSeries) -> tuple[Case, Predictor]:
    case: Case = request.param
    return case, _train(case, series)


def _assert_same(case: Case, got: Any, positions: np.ndarray, confidence: np.ndarray) -> None:
    if case.action_mode == "discrete":
        np.testing.assert_array_equal(got.positions, positions)
    else:
        np.testing.assert_allclose(got.positions, positions, rtol=0, atol=1e-5)
    np.testing.assert_allclose(got.confidence, confidence, rtol=0, atol=1e-5)


def test_normalisation_is_not_trivial(trained: tuple[Case, Predictor]) -> None:
    _, predictor = trained
    norm = predictor.normalization
    assert np.abs(norm.mean[:-3]).max() > 1.0
    assert not np.allclose(norm.var, 1.0)


def test_fast_path_matches_torch_policy_in_the_env(
    trained: tuple[Case, Predictor], series: MarketSeries
) -> None:
    case, predictor = trained
    assert (predictor.numpy_policy() is not None) == case.fast
    positions, confidence = _reference(predictor, case, series)
    got = run_policy(predictor, series)
    _assert_same(case, got, positions, confidence)
    decided = got.confidence[WINDOW - 1 :]
    assert ((decided >= 0.0) & (decided <= 1.0)).all()
    assert (got.positions[: WINDOW - 1] == 0.0).all()
    if not case.allow_short:
        assert (got.positions >= 0.0).all()
    if case.action_mode == "discrete":
        assert set(np.unique(got.positions)) <= {-1.0, 0.0, 1.0}
    else:
        assert (np.abs(got.positions) <= 1.0).all()


def test_torch_fallback_matches_fast_path(
    trained: tuple[Case, Predictor], series: MarketSeries, monkeypatch: pytest.MonkeyPatch
) -> None:
    case, predictor = trained
    if not case.fast:
        pytest.skip("no fast path: run_policy always takes the fallback")
    fast = run_policy(predictor, series)
    monkeypatch.setattr(predictor, "numpy_policy", lambda: None)
    slow = run_policy(predictor, series)
    _assert_same(case, fast, slow.positions, slow.confidence)


def test_signal_rules_and_live_decisions_match_the_backtest_loop(
    trained: tuple[Case, Predictor], series: MarketSeries
) -> None:
    """What a live run does bar by bar (decide on the window and the agent state, let the
    strategy's check reject or clip, keep the position on a rejection) is what run_policy does
    with the same rules: the same targets, the same confidences."""
    case, predictor = trained
    first = run_policy(predictor, series)
    decided = first.confidence[WINDOW - 1 :]
    threshold = float(np.quantile(decided, 0.3))  # rejects some of the decisions
    rules = SignalRules(min_confidence=threshold, allow_short=True, max_position=0.5)
    got = run_policy(predictor, series, rules=rules)
    assert got.rejected > 0

    position, entry, held = 0.0, 0.0, 0
    targets, confidences = [], []
    predictor.reset_state()  # a recurrent policy starts the stream with fresh memory
    for t in range(WINDOW - 1, len(series) - 1):
        state = agent_state(position, entry, float(series.close[t]), held)
        window = series.features[t - WINDOW + 1 : t + 1]
        target, _, conf = predictor.decide(window, np.asarray([state]))
        approved = rules.apply(target, conf)
        target = position if approved is None else approved
        targets.append(target)
        confidences.append(conf)
        if target == 0.0:
            position, entry, held = 0.0, 0.0, 0
        elif position == 0.0 or (position > 0) != (target > 0):
            position, entry, held = target, float(series.open[t + 1]), 1
        else:
            position, held = target, held + 1
    # torch policies (no numpy fast path: recurrent ones) compute in float32, and a sequence run
    # at once rounds differently from one step at a time on some CPUs' kernels (6e-8 measured)
    atol = 1e-9 if case.fast else 1e-6
    np.testing.assert_allclose(got.confidence[WINDOW - 1 :], confidences, rtol=0, atol=atol)
    # continuous targets differ in the last bits (the backtest sums the first layer in two parts)
    np.testing.assert_allclose(got.positions[WINDOW - 1 :], targets, rtol=1e-12, atol=1e-15)
    assert np.abs(got.positions).max() <= 0.5


def test_package_round_trip(
    trained: tuple[Case, Predictor], series: MarketSeries, tmp_path: Path
) -> None:
    _, predictor = trained
    before = run_policy(predictor, series)
    write_package(tmp_path / "pkg", predictor.model, predictor.normalization, predictor.manifest)
    loaded = Predictor.load(tmp_path / "pkg")
    assert loaded.manifest == predictor.manifest
    np.testing.assert_array_equal(loaded.normalization.mean, predictor.normalization.mean)
    after = run_policy(loaded, series)
    np.testing.assert_array_equal(after.positions, before.positions)
    np.testing.assert_array_equal(after.confidence, before.confidence)


def test_observation_rejects_wrong_feature_shape(series: MarketSeries) -> None:
    from stable_baselines3.common.vec_env import DummyVecEnv

    case = CASES[0]
    cfg = _env_config(case, episode_bars=64)
    venv = DummyVecEnv([lambda: TradingEnv([series], _reward, cfg)])
    model = build_model(
        "PPO", venv, policy=None, hyperparameters={}, net_arch=[8], seed=SEED, device="cpu"
    )
    size = WINDOW * N_FEATURES + 3
    predictor = Predictor(_manifest(case, cfg), ObsNormalization.identity(size), model)
    state = np.zeros((1, 3))
    obs = predictor.observation(np.zeros((WINDOW, N_FEATURES)), state)
    assert obs.shape == (1, predictor.manifest.obs_size)
    with pytest.raises(ModelPackageError, match="features must be"):
        predictor.observation(np.zeros((WINDOW, N_FEATURES + 1)), state)
    with pytest.raises(ModelPackageError, match="features must be"):
        predictor.observation(np.zeros((WINDOW + 1, N_FEATURES)), state)
    with pytest.raises(ModelPackageError, match="batch sizes differ"):
        predictor.observation(np.zeros((2, WINDOW, N_FEATURES)), state)


def test_missing_package_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ModelPackageError, match="not a model package"):
        Predictor.load(tmp_path)


def _live_inputs(series: MarketSeries, n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Windows and agent states as the inference service builds them, positions of every sign."""
    windows, states = [], []
    for k, t in enumerate(range(WINDOW - 1, WINDOW - 1 + n)):
        position = (-1.0, 0.0, 0.5, 1.0)[k % 4]
        windows.append(series.features[t - WINDOW + 1 : t + 1])
        states.append(agent_state(position, float(series.open[t]), float(series.close[t]), k))
    return np.asarray(windows, dtype=np.float32), np.asarray(states)


def _decisions(predictor: Predictor, windows: np.ndarray, states: np.ndarray) -> list[Any]:
    predictor.reset_state()
    return [predictor.decide(w, s[None]) for w, s in zip(windows, states, strict=True)]


def test_package_acts_on_its_numpy_layers_and_loads_the_model_when_asked(
    trained: tuple[Case, Predictor], series: MarketSeries, tmp_path: Path
) -> None:
    """MLP packages carry their layers and decide without the SB3 model; the torch path loads it
    from the bytes read at load time (the folder is gone by then, as in the model source).
    Recurrent packages have no layers and load the model at once, as before."""
    import shutil

    from drl_trading.policy.package import NUMPY_POLICY_FILE

    case, predictor = trained
    pkg = write_package(
        tmp_path / "pkg", predictor.model, predictor.normalization, predictor.manifest
    )
    assert (pkg / NUMPY_POLICY_FILE).exists() == case.fast
    loaded = Predictor.load(pkg)
    shutil.rmtree(pkg)
    assert loaded.model_loaded != case.fast
    windows, states = _live_inputs(series)
    assert _decisions(loaded, windows, states) == _decisions(predictor, windows, states)
    assert loaded.model_loaded != case.fast
    predictor.reset_state()
    loaded.reset_state()
    want = predictor.predict(windows, states)
    got = loaded.predict(windows, states)
    assert loaded.model_loaded
    np.testing.assert_array_equal(got.target_position, want.target_position)
    np.testing.assert_array_equal(got.action, want.action)
    np.testing.assert_array_equal(got.confidence, want.confidence)


def test_package_without_numpy_layers_still_loads(
    trained: tuple[Case, Predictor], series: MarketSeries, tmp_path: Path
) -> None:
    """A package written before ``policy.npz`` existed: the model is loaded at once and the
    numpy path is parsed from it, so every decision is the same."""
    from drl_trading.policy.package import NUMPY_POLICY_FILE

    _, predictor = trained
    pkg = write_package(
        tmp_path / "pkg", predictor.model, predictor.normalization, predictor.manifest
    )
    (pkg / NUMPY_POLICY_FILE).unlink(missing_ok=True)
    loaded = Predictor.load(pkg)
    assert loaded.model_loaded
    windows, states = _live_inputs(series)
    assert _decisions(loaded, windows, states) == _decisions(predictor, windows, states)
    before, after = run_policy(predictor, series), run_policy(loaded, series)
    np.testing.assert_array_equal(after.positions, before.positions)
    np.testing.assert_array_equal(after.confidence, before.confidence)


def test_package_decides_in_a_fresh_process_without_torch(
    trained: tuple[Case, Predictor], series: MarketSeries, tmp_path: Path
) -> None:
    """The inference process: import the predictor, load the package, decide. Neither torch,
    SB3, sb3-contrib, gymnasium nor the training package is imported, and the decisions are
    those of the numpy path built from the torch policy, in agreement with the torch path."""
    import json
    import subprocess
    import sys

    case, predictor = trained
    if not case.fast:
        pytest.skip("recurrent policies act through torch")
    pkg = write_package(
        tmp_path / "pkg", predictor.model, predictor.normalization, predictor.manifest
    )
    windows, states = _live_inputs(series)
    np.savez(tmp_path / "inputs.npz", windows=windows, states=states)
    script = """
import json, sys
import numpy as np
from drl_trading.policy.predictor import Predictor

predictor = Predictor.load(sys.argv[1])
with np.load(sys.argv[2]) as z:
    decisions = [predictor.decide(w, s[None]) for w, s in zip(z["windows"], z["states"])]
heavy = ("torch", "stable_baselines3", "sb3_contrib", "gymnasium")
imported = sorted(
    m for m in sys.modules if m.split(".")[0] in heavy or m.startswith("drl_trading.training")
)
print(json.dumps({"imported": imported, "decisions": decisions}))
"""
    done = subprocess.run(
        [sys.executable, "-c", script, str(pkg), str(tmp_path / "inputs.npz")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["imported"] == []
    got = [tuple(d) for d in result["decisions"]]
    assert got == _decisions(predictor, windows, states)
    torch_out = predictor.predict(windows, states)
    targets = np.array([d[0] for d in got])
    confidence = np.array([d[2] for d in got])
    if case.action_mode == "discrete":
        np.testing.assert_array_equal([d[1] for d in got], torch_out.action)
        np.testing.assert_array_equal(targets, torch_out.target_position)
    else:
        np.testing.assert_allclose(targets, torch_out.target_position, rtol=0, atol=1e-5)
    np.testing.assert_allclose(confidence, torch_out.confidence, rtol=0, atol=1e-5)
