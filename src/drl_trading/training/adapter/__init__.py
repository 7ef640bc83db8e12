"""Adapters of the training ports: MLflow tracking and registry, and the in-memory fake."""
