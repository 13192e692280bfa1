"""The GitHub Action: the runner's contract in (inputs), a gate job, the verdict out (outputs, summary, annotations, publishing)."""

from adaptergate.action.runtime import main

__all__ = ["main"]
