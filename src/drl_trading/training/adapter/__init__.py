"""Adapters of training: the SB3 trainer, the git revision and the report files (the last two
with a fake beside them; a trainer fake would have to be SB3 itself) and the bus entry point."""
