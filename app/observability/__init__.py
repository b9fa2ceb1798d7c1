"""Metrics (every metric is defined in ``metrics``), logging."""
