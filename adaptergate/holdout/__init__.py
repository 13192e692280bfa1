"""Holdouts: the store (load, validate, add, import), slice-tag checks and data checks."""
