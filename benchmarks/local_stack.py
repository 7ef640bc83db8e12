"""The local server stack as the benchmarks that need it check it (imported from the script
folder): a benchmark names the servers it uses and stops with one line if one is down."""

from __future__ import annotations

import socket

PORTS = {"PostgreSQL": 5432, "Redis": 6379, "Kafka": 9092, "MLflow": 5000}
"""Where `scripts/stack.sh up` serves each server on 127.0.0.1."""


def require_servers(*names: str) -> None:
    """Exit with one line naming the first of ``names`` not listening (keys of `PORTS`)."""
    for name in names:
        port = PORTS[name]
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        except OSError:
            raise SystemExit(
                f"{name} is not running on 127.0.0.1:{port}: bash scripts/stack.sh up"
            ) from None
