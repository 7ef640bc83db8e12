"""Adapters of the shared ports, one module per technology."""
