"""The ``adaptergate`` command line (typer): parse, call, exit."""

from adaptergate.cli.app import main

__all__ = ["main"]
