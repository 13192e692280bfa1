"""Promotion as code: the tenant manifest, its verification, what a pull request promotes, and the lifecycle commands."""
