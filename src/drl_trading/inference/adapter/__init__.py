"""Inference adapters: model registry source and bus entry points."""
