"""Business logic of ingest: validation, gap detection and the ingest workflow."""
