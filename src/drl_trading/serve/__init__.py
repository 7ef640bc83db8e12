"""The distributed deployment: each service as its own process (`drl-trading serve SERVICE`)."""
