"""Adapters of training: the SB3 trainer, the git revision, the report files (each with its
fake beside it) and the bus entry point."""
