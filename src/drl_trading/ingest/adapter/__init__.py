"""Data providers and bus entry points of the ingest service."""
