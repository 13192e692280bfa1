"""The GitHub Action: the runner's contract in (inputs), a gate job, the verdict out (outputs, summary, annotations, publishing).

One job a module: :mod:`~adaptergate.action.context` (the runner's environment),
:mod:`~adaptergate.action.inputs` (``INPUT_*``, the trusted side, the gate job),
:mod:`~adaptergate.action.commands` (workflow commands, the log, outputs, the step
summary, log annotations), :mod:`~adaptergate.action.reporting` (report files, and
whether and where to publish; what is published is :mod:`adaptergate.publish.report`'s)
and :mod:`~adaptergate.action.runtime` (:func:`main`: the two modes and the error path).
"""

from adaptergate.action.commands import OUTPUT_NAMES
from adaptergate.action.context import RunnerContext
from adaptergate.action.inputs import INPUT_NAMES, env_name
from adaptergate.action.runtime import main

__all__ = ["INPUT_NAMES", "OUTPUT_NAMES", "RunnerContext", "env_name", "main"]
