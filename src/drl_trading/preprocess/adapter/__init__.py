"""Bus entry points of the preprocess service."""
