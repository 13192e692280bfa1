"""The one error hierarchy of adaptergate and its mapping to exit codes.

Exit codes are a contract with CI systems:

====  ==========================================================
code  meaning
====  ==========================================================
0     accepted: the candidate may replace the baseline
1     rejected: the candidate regressed (a real verdict)
2     invalid input or usage: nothing was evaluated
3     evaluation failed: the scorer or the model broke mid-run
====  ==========================================================

Every error raised on purpose inside the package derives from
:class:`AdaptergateError` and carries its exit code, so a broken gate can
never be mistaken for a bad adapter. :func:`exit_code_for` is the only place
that maps an exception to a code.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class ExitCode(IntEnum):
    ACCEPTED = 0
    REJECTED = 1
    INVALID_INPUT = 2
    EVALUATION_FAILED = 3


class AdaptergateError(Exception):
    """Base of every error adaptergate raises on purpose.

    ``str(error)`` is the one line a user sees; ``details`` are optional
    further lines (for example every problem found in a holdout file).
    """

    exit_code: ExitCode = ExitCode.EVALUATION_FAILED

    def __init__(self, message: str, *, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: list[str] = list(details or [])


class InvalidInputError(AdaptergateError):
    """Bad files, bad options, bad configuration: nothing was evaluated."""

    exit_code = ExitCode.INVALID_INPUT


class UsageError(InvalidInputError):
    """A command line that cannot work as given."""


@dataclass(frozen=True)
class Problem:
    """One problem found in an input file, located by file and line."""

    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else self.path
        return f"{where}: {self.message}"


class HoldoutError(InvalidInputError):
    """A holdout file failed validation; ``problems`` lists every finding."""

    def __init__(self, message: str, problems: list[Problem]) -> None:
        super().__init__(message, details=[str(p) for p in problems])
        self.problems = problems


class EvaluationError(AdaptergateError):
    """The scorer or the model failed while evaluating."""

    exit_code = ExitCode.EVALUATION_FAILED


class ScorerError(EvaluationError):
    """The user's scorer raised, failed to import, or returned a bad value."""

    def __init__(self, message: str, *, traceback_text: str | None = None) -> None:
        super().__init__(message)
        self.traceback_text = traceback_text


def exit_code_for(exc: BaseException) -> ExitCode:
    """Map any exception to the exit code the CLI and the Action use."""
    if isinstance(exc, AdaptergateError):
        return exc.exit_code
    # Anything unexpected is a failure of the gate itself, never a verdict.
    return ExitCode.EVALUATION_FAILED


class StorageError(EvaluationError):
    """A file adaptergate keeps (audit log, replay buffer, …) could not be written.

    The message is one line naming the file, the operating system's reason
    and what was left on disk, e.g. ``cannot append to data/audit.jsonl: No
    space left on device (the file was left as it was)``.
    """
