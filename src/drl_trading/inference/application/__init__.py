"""Settings and wiring of the inference service."""
