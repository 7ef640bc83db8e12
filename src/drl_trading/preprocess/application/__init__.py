"""Settings and wiring of the preprocess service."""
