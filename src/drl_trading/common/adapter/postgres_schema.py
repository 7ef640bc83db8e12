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

log = structlog.get_logger(__name__)

_FILE = re.compile(r"V(\d{3,})__([a-z0-9_]+)\.sql")
_LOCK_ID = 0x64726C  # "drl": the advisory lock every migrator takes


class DatabaseUnavailableError(ConnectionError):
    """The database cannot be reached or the connection broke (server restart, network).
    Retryable: the next call opens a new connection, and the stores' writes are idempotent or
    atomic, so the bus's retry of the handler is safe."""

    retryable = True
    unavailable = True  # not the message's fault: the bus waits for the database


def connect(
    dsn: str, schema: str, *, autocommit: bool, apply_migrations: bool
) -> psycopg.Connection[Any]:
    """A connection working in ``schema`` (migrated first when asked), for every PostgreSQL
    store; an unreachable server is a `DatabaseUnavailableError`."""
    try:
        con = psycopg.connect(dsn, autocommit=autocommit)
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailableError(f"cannot connect to PostgreSQL: {exc}") from exc
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
