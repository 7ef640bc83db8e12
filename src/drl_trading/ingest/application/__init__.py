"""Settings and wiring of the ingest service."""
