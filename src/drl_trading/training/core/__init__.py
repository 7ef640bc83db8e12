"""Training core: environment, splits, training and backtest logic, independent of adapters."""
