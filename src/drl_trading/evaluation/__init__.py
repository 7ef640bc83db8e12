"""How a policy is measured: simulation, metrics, baselines, backtest and the report."""
