"""The offline workflow's second half: a short training run through the bus registers a model
in MLflow, and a fresh process that loads it by alias acts exactly like the in-memory policy."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from drl_trading.app.settings import AppSettings
from drl_trading.common.domain import Symbol, TimeRange
from drl_trading.testing.tiny_training import ingest_and_train, tiny_training_settings
from drl_trading.training.core.service import TrainingResult

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

SYMBOLS = (Symbol("BTCUSDT"), Symbol("ETHUSDT"))
RANGE = TimeRange.parse("2024-01-01", "2024-01-21")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[AppSettings, TrainingResult]:
    settings = tiny_training_settings(tmp_path_factory.mktemp("home"), timesteps=1024)
    result = ingest_and_train(settings, SYMBOLS, RANGE)
    return settings, result


def test_run_registers_a_champion_with_reports(trained: tuple[AppSettings, TrainingResult]) -> None:
    settings, result = trained
    assert result.model.uri == "models:/drl-example/1"
    assert result.champion, result.gate_reason
    assert result.report_path.exists() and result.metrics_path.exists()
    html = result.report_path.read_text()
    assert "<svg" in html and "BTCUSDT" in html and "buy-and-hold" in html
    payload = json.loads(result.metrics_path.read_text())
    for part in ("test", "validation"):
        sym = payload[part]["symbols"]["BTCUSDT"]
        assert {"sharpe", "max_drawdown", "n_trades", "fees_paid"} <= set(sym["model"])
        assert list(sym["baselines"]) == [
            "buy-and-hold",
            "flat",
            "random (5 seeds, mean)",
            "momentum (20 bars)",
            "SMA cross (10/50 bars)",
        ]
    assert payload["gate"]["promoted"] is True

    import mlflow

    client = mlflow.MlflowClient(settings.mlflow_tracking_uri)
    run = client.get_run(result.run_id)
    params = run.data.params
    for key in ("seed", "data_fingerprint", "feature_set_version", "code_version", "range"):
        assert key in params, key
    assert params["libraries.torch"].startswith("2.13")
    assert run.data.tags["strategy"] == "example"
    assert run.data.tags["model_uri"] == result.model.uri
    assert "test.sharpe" in run.data.metrics and "validation.sharpe" in run.data.metrics
    for baseline in ("buy-and-hold", "flat", "random", "momentum", "sma-cross"):
        assert f"validation.{baseline}.sharpe" in run.data.metrics, baseline
    assert client.get_metric_history(result.run_id, "train.episode_reward") is not None
    artifacts = {a.path for a in client.list_artifacts(result.run_id, "backtest")}
    assert any(p.endswith(".html") for p in artifacts)


def test_fresh_process_loads_champion_and_matches_in_memory_policy(
    trained: tuple[AppSettings, TrainingResult], tmp_path: Path
) -> None:
    settings, result = trained
    predictor = result.predictor
    m = predictor.manifest
    rng = np.random.default_rng(7)
    features = rng.normal(size=(64, m.window, m.n_features)).astype(np.float32)
    state = np.zeros((64, 3), dtype=np.float32)
    state[:, 0] = rng.choice([-1.0, 0.0, 1.0], size=64)
    state[:, 1] = np.where(state[:, 0] != 0, rng.normal(0, 0.01, 64), 0.0)
    state[:, 2] = np.where(state[:, 0] != 0, rng.uniform(0, 0.9, 64), 0.0)
    # the in-memory SB3 policy, through SB3's own predict on the normalised observations
    obs = predictor.observation(features, state)
    sb3_actions, _ = predictor.model.predict(obs, deterministic=True)
    np.savez(tmp_path / "inputs.npz", features=features, state=state)
    script = textwrap.dedent(
        f"""
        import json, numpy as np, mlflow
        mlflow.set_tracking_uri({settings.mlflow_tracking_uri!r})
        model = mlflow.pyfunc.load_model("models:/drl-example@champion")
        z = np.load({str(tmp_path / "inputs.npz")!r})
        out = model.predict({{"features": z["features"], "agent_state": z["state"]}})
        print(json.dumps({{"action": out["action"].tolist(),
                          "confidence": out["confidence"].tolist(),
                          "target": out["target_position"].tolist()}}))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["action"] == np.asarray(sb3_actions).astype(int).tolist()
    in_memory = predictor.predict(features, state)
    assert np.allclose(got["confidence"], in_memory.confidence, atol=1e-6)
    assert np.allclose(got["target"], in_memory.target_position)
    assert all(0.0 <= c <= 1.0 for c in got["confidence"])
