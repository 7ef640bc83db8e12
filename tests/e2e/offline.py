"""The offline workflow as the e2e tests set it up: synthetic bars → bus → preprocess → a short
training run that registers (and, with the permissive gate, promotes) a model; and the helpers
that run the distributed services as processes (shared with benchmarks/distributed.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

import yaml

from drl_trading.app.ingest import bootstrap_ingest, build_provider
from drl_trading.app.runtime import EmbeddedRuntime
from drl_trading.app.settings import AppSettings, load_settings
from drl_trading.common.domain import Symbol, TimeRange
from drl_trading.ingest.core.service import TrainingDataRequest
from drl_trading.training.core.service import TrainingRequest, TrainingResult

# a gate every model passes, so that a tiny run also exercises promotion to champion
PERMISSIVE_GATE = {"min_sharpe": -1e9, "beat_buy_and_hold": False, "max_drawdown": 1.0}


def tiny_training_settings(home: Path, timesteps: int) -> AppSettings:
    return load_settings(
        home=home,
        training={"total_timesteps": timesteps, "env": {"n_envs": 2}, "gate": PERMISSIVE_GATE},
    )


def ingest_and_train(
    settings: AppSettings, symbols: tuple[Symbol, ...], rng: TimeRange
) -> TrainingResult:
    request = TrainingDataRequest(symbols, rng)
    with EmbeddedRuntime.open(settings) as runtime:
        training = runtime.enable_training()
        training.expect(TrainingRequest(symbols, rng, request.request_id))
        ingest = bootstrap_ingest(
            settings, build_provider(settings, "synthetic"), runtime.market_data, runtime.bus
        )
        ingest.ingest_history(request)
        runtime.run_until_idle()
        assert runtime.bus.messages("dlq.completed.preprocess-data.offline") == []
        return training.results[request.request_id]


def distributed_replay_config(
    home: Path, prefix: str, start: datetime, end: datetime, speed: float, log_level: str
) -> Path:
    """configs/distributed.yaml for a replay through `drl-trading serve`, isolated on a shared
    stack by a fresh PostgreSQL schema, Kafka namespace, Feast project and registered model;
    a tiny, always-promoted model that trades every signal (its confidences sit near 1/3), and
    risk states out of the way (the backtest-style comparisons do not model them)."""
    run = f"{prefix}_{uuid.uuid4().hex[:8]}"
    root = Path(__file__).resolve().parents[2]
    data = yaml.safe_load((root / "configs" / "distributed.yaml").read_text())
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


def start_service(config: Path, name: str, logs: Path) -> subprocess.Popen[bytes]:
    """`drl-trading --config CONFIG serve NAME` on a free port, stderr appended to
    ``logs/NAME.log``; `service_port` reads the port once the service is built."""
    cli = str(Path(sys.executable).with_name("drl-trading"))
    return subprocess.Popen(
        [cli, "--config", str(config), "serve", name, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=(logs / f"{name}.log").open("ab"),
        env={**os.environ, "COLUMNS": "200"},
    )


def service_port(proc: subprocess.Popen[bytes], name: str, logs: Path) -> int:
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()  # "<name>: health and metrics on http://host:port"
    if "health and metrics on" not in line:
        raise AssertionError(f"{name} did not start: {line!r}\n{log_tail(logs / f'{name}.log')}")
    return int(line.rsplit(":", 1)[1])


def stop_services(procs: Iterable[subprocess.Popen[bytes]]) -> None:
    """SIGTERM to every service still running, then wait (kill after 30 s)."""
    running = list(procs)
    for proc in running:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in running:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def wait_ready(port: int, timeout: float = 120.0) -> bool:
    """Whether the service on ``port`` answered /readyz with 200 within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2).status == 200:
                return True
        except OSError:
            pass
        time.sleep(0.3)
    return False


def metric(port: int, name: str, timeout: float = 2.0) -> float | None:
    """The value of the first sample of ``name`` (with its labels) on the service's /metrics."""
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        text = urllib.request.urlopen(url, timeout=timeout).read()
    except OSError:
        return None
    for line in text.decode().splitlines():
        if line.startswith(name) and not line.startswith("#"):
            return float(line.rsplit(" ", 1)[1])
    return None


def log_tail(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def drop_kafka_namespace(settings: AppSettings) -> None:
    """Delete the topics of a test's (or benchmark's) Kafka namespace from the shared broker."""
    from drl_trading.common.adapter.kafka_bus import KafkaBus, KafkaOptions

    k = settings.bus.kafka
    bus = KafkaBus(KafkaOptions(bootstrap_servers=k.bootstrap_servers, namespace=k.namespace))
    try:
        bus.drop_namespace()
    finally:
        bus.close()
