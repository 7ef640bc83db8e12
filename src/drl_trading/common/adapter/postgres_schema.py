"""Versioned schema migrations for the PostgreSQL stores, applied in order, each exactly once.

Files ``migrations/V<nnn>__<name>.sql`` are applied in version order inside one transaction per
file, and recorded in ``schema_migrations``; an advisory lock makes concurrent starters (several
services migrating at start) wait for each other instead of racing. A recorded migration whose
file changed is an error: a migration is never edited once applied, a new one is added.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import psycopg
import structlog
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from drl_trading.common.errors import DatabaseConnectionError

log = structlog.get_logger(__name__)

_FILE = re.compile(r"V(\d{3,})__([a-z0-9_]+)\.sql")
_LOCK_ID = 0x64726C  # "drl": the advisory lock every migrator takes


CONNECT_TIMEOUT_S = 10
"""libpq's ``connect_timeout`` (seconds) where the DSN sets none: a server that does not answer
(a host down, dropped packets) fails the connection after this long instead of after the
operating system's TCP timeout (minutes)."""

_CREDENTIALS = (
    "password authentication failed",
    "authentication failed",
    "no password supplied",
    "fe_sendauth",
    "pg_hba.conf",
    'role "',  # role "x" does not exist
)
"""Phrases of libpq's messages for a server that refused the credentials (libpq gives a failed
connection no SQLSTATE, so its message is all there is)."""
_ATTEMPT = re.compile(r"^(?:connection failed: )?connection to server (?:at|on) .*? failed: ")
_SEVERITY = re.compile(r"^(?:FATAL|ERROR):\s+")


def server_address(dsn: str) -> str:
    """``host:port`` of a libpq DSN, for messages (never its password)."""
    info = conninfo_to_dict(dsn)
    host = info.get("host") or info.get("hostaddr") or "localhost"
    return f"{host}:{info.get('port') or 5432}"


def connection_error(dsn: str, exc: BaseException, lost: bool = False) -> DatabaseConnectionError:
    """The `DatabaseConnectionError` of a failed connection to ``dsn`` (or one ``lost``
    mid-call), naming the server, what failed (unreachable, credentials, refused) and why."""
    lines: list[str] = []
    for raw in str(exc).splitlines():
        line = _SEVERITY.sub("", _ATTEMPT.sub("", raw.strip()))
        if line and not line.startswith("Is the server running") and line not in lines:
            lines.append(line)
    reason = "; ".join(lines) or type(exc).__name__
    address = server_address(dsn)
    if lost:
        return DatabaseConnectionError(
            address, f"connection lost ({reason}); the next call reconnects"
        )
    lowered = reason.lower()
    if any(phrase in lowered for phrase in _CREDENTIALS):
        return DatabaseConnectionError(address, reason, "credentials")
    if "FATAL:" in str(exc):  # the server answered, refusing (no such database, too many)
        return DatabaseConnectionError(address, reason, "refused")
    return DatabaseConnectionError(address, reason)


def open_connection(dsn: str, *, autocommit: bool) -> psycopg.Connection[Any]:
    """A psycopg connection to ``dsn`` (`CONNECT_TIMEOUT_S` unless the DSN sets one); a server
    that does not answer or refuses it is a `DatabaseConnectionError` naming the server."""
    if "connect_timeout" not in conninfo_to_dict(dsn):
        dsn = make_conninfo(dsn, connect_timeout=CONNECT_TIMEOUT_S)
    try:
        return psycopg.connect(dsn, autocommit=autocommit)
    except psycopg.OperationalError as exc:
        raise connection_error(dsn, exc) from exc


def connect(
    dsn: str, schema: str, *, autocommit: bool, apply_migrations: bool
) -> psycopg.Connection[Any]:
    """A connection working in ``schema`` (migrated first when asked), for every PostgreSQL
    store; an unreachable or refusing server is a `DatabaseConnectionError`."""
    con = open_connection(dsn, autocommit=autocommit)
    if apply_migrations:
        migrate(con, schema)
    con.execute(f"SET search_path TO {_ident(schema)}, public")
    if not autocommit:
        con.commit()
    return con


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()[:16]


def available() -> list[Migration]:
    out: list[Migration] = []
    folder = resources.files("drl_trading.common.adapter.migrations")
    for entry in folder.iterdir():
        match = _FILE.fullmatch(entry.name)
        if match:
            out.append(Migration(int(match[1]), match[2], entry.read_text()))
    return sorted(out, key=lambda m: m.version)


def migrate(conn: psycopg.Connection, schema: str = "public") -> list[Migration]:
    """Apply the pending migrations in ``schema`` (created if missing); returns those applied."""
    applied: list[Migration] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_ID])
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {_ident(schema)}")
        conn.execute(f"SET LOCAL search_path TO {_ident(schema)}, public")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version int PRIMARY KEY, name text NOT"
            " NULL, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {
            int(v): c
            for v, c in conn.execute("SELECT version, checksum FROM schema_migrations").fetchall()
        }
        for m in available():
            if m.version in done:
                if done[m.version] != m.checksum:
                    raise RuntimeError(
                        f"migration V{m.version:03d}__{m.name} changed after it was applied "
                        f"to schema {schema!r}; add a new migration instead of editing it"
                    )
                continue
            with conn.transaction():
                conn.execute(m.sql.encode())
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                    [m.version, m.name, m.checksum],
                )
            applied.append(m)
            log.info("migration applied", version=m.version, name=m.name, schema=schema)
    return applied


def _ident(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"invalid schema name {name!r}")
    return f'"{name}"'
