"""One run isolated on the shared local stack (PostgreSQL, Kafka, MLflow server on 127.0.0.1):
its own schema, Kafka namespace, Feast project and registered model, and the clean-up after."""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path

import yaml

from drl_trading.app.settings import AppSettings
from drl_trading.common.adapter.kafka_bus import KafkaBus, KafkaOptions
from drl_trading.testing.tiny_training import PERMISSIVE_GATE

DISTRIBUTED_CONFIG = Path(__file__).resolve().parents[3] / "configs" / "distributed.yaml"
"""The repository's distributed configuration (this module is used from a source checkout)."""


def distributed_replay_config(
    home: Path,
    prefix: str,
    start: datetime,
    end: datetime,
    speed: float,
    log_level: str,
    *,
    template: Path = DISTRIBUTED_CONFIG,
) -> Path:
    """configs/distributed.yaml for a replay through `drl-trading serve`, isolated on a shared
    stack by a fresh PostgreSQL schema, Kafka namespace, Feast project and registered model;
    a tiny, always-promoted model that trades every signal (its confidences sit near 1/3), and
    risk states out of the way (the backtest-style comparisons do not model them).

    ``speed`` is market seconds per wall-clock second; the file is written to
    ``home/PREFIX.yaml``, the services' home is ``home/home``.
    """
    run = f"{prefix}_{uuid.uuid4().hex[:8]}"
    data = yaml.safe_load(template.read_text())
    data["home"] = str(home / "home")
    data["postgres"]["schema_name"] = run
    data["bus"]["kafka"]["namespace"] = f"{run}."
    data["feature_store"]["project"] = run
    data["training"].update(
        {
            "total_timesteps": 256,
            "env": {"n_envs": 2},
            "gate": PERMISSIVE_GATE,
            "registry": {
                "tracking_uri": "http://127.0.0.1:5000",
                "experiment": run,
                "model_name": f"drl-{run}",
            },
        }
    )
    data["strategy"] = {"params": {"min_confidence": 0.0}}
    data["execution"].update({"max_daily_loss": 1.0, "max_drawdown": 1.0})
    data["logging"] = {"level": log_level, "json_output": True}
    data["serve"].update(
        {
            "clock": "market",
            "start": start.isoformat(),
            "end": end.isoformat(),
            "speed": speed,
            "ports": dict.fromkeys(
                ("ingest", "preprocess", "training", "inference", "execution"), 0
            ),
        }
    )
    path = home / f"{prefix}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def drop_kafka_namespace(settings: AppSettings) -> None:
    """Delete the topics of a test's (or benchmark's) Kafka namespace from the shared broker."""
    k = settings.bus.kafka
    bus = KafkaBus(KafkaOptions(bootstrap_servers=k.bootstrap_servers, namespace=k.namespace))
    try:
        bus.drop_namespace()
    finally:
        bus.close()
