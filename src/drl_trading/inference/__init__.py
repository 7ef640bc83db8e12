"""Inference service: reads the latest online features, runs the champion model and publishes
``completed.predict`` (action and confidence). Built by the online-trading milestone."""
