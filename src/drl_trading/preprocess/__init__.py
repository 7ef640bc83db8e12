"""Preprocess service: resample 1m bars to higher timeframes, compute features, store them."""
