"""Versioned PostgreSQL schema migrations (``V<nnn>__<name>.sql``), applied by `postgres_schema`."""
