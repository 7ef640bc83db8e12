"""A trained policy as every service uses it: the model package, `Predictor`, the numpy forward
pass and `run_policy`."""
