"""Metrics: the Decathlon score and parameter accounting."""
