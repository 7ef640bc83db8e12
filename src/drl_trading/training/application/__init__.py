"""Training service configuration and wiring."""
