"""Metrics, status API and alerts."""
