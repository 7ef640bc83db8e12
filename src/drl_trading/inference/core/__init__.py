"""Business logic and ports of the inference service."""
