"""Settings and wiring of the execution service."""
