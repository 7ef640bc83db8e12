"""Business logic of execution: risk rules, position accounting and the signal-to-order flow."""
