"""Scoring: user scorers, and real adapters scored through a model backend and a metric."""
