"""`drl-trading db migrate|status`: the PostgreSQL schema of the distributed deployment."""

from __future__ import annotations

import typer

from drl_trading.cli.context import console, state

db_app = typer.Typer(help="The PostgreSQL database (distributed deployment).", no_args_is_help=True)


@db_app.command("migrate")
def migrate(ctx: typer.Context) -> None:
    """Apply the pending schema migrations to ``postgres`` (idempotent; services do it at start
    unless ``postgres.migrate_on_start`` is false)."""
    from drl_trading.common.adapter.postgres_schema import available, open_connection
    from drl_trading.common.adapter.postgres_schema import migrate as run

    pg = state(ctx).settings().postgres
    # a server down or refusing: `DatabaseConnectionError`, reported by the CLI's guard
    with open_connection(pg.dsn(), autocommit=False) as con:
        applied = run(con, pg.schema_name)
    latest = available()[-1]
    for m in applied:
        console.print(f"applied V{m.version:03d}__{m.name}")
    console.print(
        f"schema {pg.schema_name!r} of {pg.dbname} at version {latest.version} "
        f"({len(applied)} applied now)"
    )
