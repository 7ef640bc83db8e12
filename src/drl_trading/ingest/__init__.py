"""Ingest service: fetch 1m OHLCV from a provider, validate it, store it, request preprocessing."""
