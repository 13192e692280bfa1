"""Metrics: how a generated answer is scored against the gold (built-ins, user functions, the LLM judge)."""
