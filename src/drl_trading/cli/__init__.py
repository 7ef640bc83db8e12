"""The `drl-trading` command line: parses arguments, calls `drl_trading.app`, prints."""
