"""`drl-trading db migrate|status`: the PostgreSQL schema of the distributed deployment."""

from __future__ import annotations

import typer

from drl_trading.cli.context import console, fail, state

db_app = typer.Typer(help="The PostgreSQL database (distributed deployment).", no_args_is_help=True)


@db_app.command("migrate")
def migrate(ctx: typer.Context) -> None:
    """Apply the pending schema migrations to ``postgres`` (idempotent; services do it at start
    unless ``postgres.migrate_on_start`` is false)."""
    import psycopg

    from drl_trading.common.adapter.postgres_schema import available
    from drl_trading.common.adapter.postgres_schema import migrate as run

    pg = state(ctx).settings().postgres
    try:
        with psycopg.connect(pg.dsn()) as con:
            applied = run(con, pg.schema_name)
    except psycopg.OperationalError as exc:
        raise fail(f"cannot connect to PostgreSQL at {pg.host}:{pg.port}: {exc}") from None
    latest = available()[-1]
    for m in applied:
        console.print(f"applied V{m.version:03d}__{m.name}")
    console.print(
        f"schema {pg.schema_name!r} of {pg.dbname} at version {latest.version} "
        f"({len(applied)} applied now)"
    )
