"""Planted secrets never reach a log, an MLflow param or artifact, or a report (issue 11, item 6).

Every place a secret can be configured gets one: the Redis connection string (``password=``),
the MLflow tracking URI (``user:password@``), the PostgreSQL and Kafka SASL passwords. A tiny
training run then goes through the embedded stores with DEBUG logging, and its log output, the
MLflow run's params and artifacts and the report files are searched for each secret. The planted
MLflow server does not exist, so the run records into an embedded SQLite MLflow passed in
explicitly; the planted URI is still in the settings that training records.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from drl_trading.app.ingest import bootstrap_ingest, build_provider
from drl_trading.app.runtime import EmbeddedRuntime
from drl_trading.app.settings import load_settings
from drl_trading.common.adapter.mlflow_registry import MlflowRegistry
from drl_trading.common.domain import Symbol, TimeRange
from drl_trading.common.logs import configure_logging
from drl_trading.ingest.core.service import TrainingDataRequest
from drl_trading.policy.mlflow_pyfunc import MODEL_CODE
from drl_trading.testing.tiny_training import PERMISSIVE_GATE
from drl_trading.training.core.service import TrainingRequest

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

SECRETS = {
    "redis": "redis-pw-5a1f",
    "mlflow": "mlflow-pw-9c2e",
    "postgres": "postgres-pw-77d0",
    "kafka": "kafka-pw-3b8a",
}


def test_training_records_no_planted_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "feature_store:\n"
        f"  redis_connection_string: 'cache:6379,password={SECRETS['redis']},ssl=true'\n"
        "training:\n  registry:\n"
        f"    tracking_uri: 'https://ml:{SECRETS['mlflow']}@mlflow.invalid:5000'\n"
    )
    monkeypatch.setenv("DRL_TRADING_POSTGRES__PASSWORD", SECRETS["postgres"])
    monkeypatch.setenv("DRL_TRADING_BUS__KAFKA__SASL_PASSWORD", SECRETS["kafka"])
    settings = load_settings(
        cfg,
        home=tmp_path / "home",
        training={"total_timesteps": 256, "env": {"n_envs": 2}, "gate": PERMISSIVE_GATE},
    )
    assert SECRETS["mlflow"] in settings.mlflow_tracking_uri  # the clients get the real value
    configure_logging("DEBUG")
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    registry = MlflowRegistry(
        tracking,
        experiment="drl-trading",
        artifact_location=(tmp_path / "artifacts").as_uri(),
        model_code=MODEL_CODE,
    )
    symbols = (Symbol("BTCUSDT"),)
    rng = TimeRange.parse("2024-01-01", "2024-01-15")
    request = TrainingDataRequest(symbols, rng)
    try:
        with EmbeddedRuntime.open(settings) as runtime:
            training = runtime.enable_training(registry)
            training.expect(TrainingRequest(symbols, rng, request.request_id))
            ingest = bootstrap_ingest(
                settings, build_provider(settings, "synthetic"), runtime.market_data, runtime.bus
            )
            ingest.ingest_history(request)
            runtime.run_until_idle()
            result = training.results[request.request_id]
    finally:
        configure_logging("WARNING")
    logs = capfd.readouterr()

    import mlflow

    client = mlflow.MlflowClient(tracking)
    run = client.get_run(result.run_id)
    params = run.data.params
    assert params["config.feature_store.redis_connection_string"] == (
        "cache:6379,password=***,ssl=true"
    )
    assert params["config.training.registry.tracking_uri"] == "https://ml:***@mlflow.invalid:5000"
    resolved = Path(client.download_artifacts(result.run_id, "config/resolved.yaml", str(tmp_path)))
    places = {
        "stdout": logs.out,
        "stderr (logs)": logs.err,
        "mlflow params": repr(params),
        "mlflow tags": repr(run.data.tags),
        "config/resolved.yaml": resolved.read_text(),
        "report": result.report_path.read_text(),
        "metrics": result.metrics_path.read_text(),
    }
    assert "debug" in logs.err.lower() or "info" in logs.err.lower()  # logging did run
    for place, text in places.items():
        for name, secret in SECRETS.items():
            assert secret not in text, f"{name} secret in {place}"
