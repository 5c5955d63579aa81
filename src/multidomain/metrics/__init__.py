"""Metrics: parameter accounting and the Decathlon score."""
