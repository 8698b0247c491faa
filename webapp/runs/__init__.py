"""Runs: configuration, state, metrics, checkpoints, samples, the run page and its websocket."""
