"""Predictive caching: per-region demand per title in fill windows, a forecaster of the next
window's demand, and cache-fill hints per edge site (within capacity, with churn control)."""
