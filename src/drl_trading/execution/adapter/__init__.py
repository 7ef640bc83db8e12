"""Brokers and stores of the execution service, one module per technology."""
