"""The distributed services as child processes: start one on a free port, learn the port, wait
until it is ready, read its metrics, stop them all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable
from pathlib import Path


def start_service(
    config: Path, name: str, logs: Path, instance: str = ""
) -> subprocess.Popen[bytes]:
    """`drl-trading --config CONFIG serve NAME` on a free port, stderr appended to
    ``logs/NAME.log`` (``logs/NAME-INSTANCE.log`` for one of several instances of the service);
    `service_port` reads the port once the service is built."""
    cli = str(Path(sys.executable).with_name("drl-trading"))
    log = f"{name}-{instance}.log" if instance else f"{name}.log"
    return subprocess.Popen(
        [cli, "--config", str(config), "serve", name, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=(logs / log).open("ab"),
        env={**os.environ, "COLUMNS": "200"},
    )


def service_port(proc: subprocess.Popen[bytes], name: str, logs: Path) -> int:
    """The port a service started by `start_service` serves health and metrics on (blocks until
    it prints it; raises with the tail of its log if it exits or prints anything else)."""
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
    """Whether the service on ``port`` answered /readyz with 200 within ``timeout`` seconds."""
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
    """The value of the first sample of ``name`` (with its labels) on the service's /metrics;
    None when the service does not answer within ``timeout`` seconds or has no such sample."""
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
    """The last ``n`` lines of a service's log, for a failure message ("" when unreadable)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""
