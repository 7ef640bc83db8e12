"""Training service: builds the gymnasium environment from the feature store, trains with
Stable-Baselines3 and the strategy's reward, registers models and backtests them.

Built by the offline-training milestone; it consumes ``completed.preprocess-data.offline``.
"""
