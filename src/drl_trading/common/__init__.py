"""Shared kernel: domain types, event schemas and topics, shared ports and their adapters."""
