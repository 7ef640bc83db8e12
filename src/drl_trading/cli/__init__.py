"""The `drl-trading` command line: parses arguments and calls bootstrap and runtime code."""
