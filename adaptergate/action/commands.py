"""What the action says to the runner: workflow commands, the log, outputs, the step summary.

User text (queries, answers, error messages) can hold anything: the :class:`Log`
prints it between ``::stop-commands::`` markers with its control characters shown,
so it cannot issue a workflow command, and scrubs every registered secret.
Outputs are written in the delimiter form (safe for any value), the step summary
is kept under GitHub's 1 MiB, and at most :data:`LOG_ANNOTATIONS` error lines
point at the failing queries of the holdout.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from adaptergate.trust import inert, register_secret, scrub

__all__ = [
    "LOG_ANNOTATIONS", "OUTPUT_NAMES", "STEP_SUMMARY_LIMIT", "Log", "cap_utf8", "command", "log_annotations",
    "write_outputs", "write_summary",
]

OUTPUT_NAMES: tuple[str, ...] = (
    "decision", "verdict", "delta", "driver-slice", "report-path", "comment-url", "check-run-url",
    "exit-code", "approval", "tenants",
)

STEP_SUMMARY_LIMIT = 1024 * 1024
"""GitHub refuses a step summary over 1 MiB (the whole job's summaries are dropped)."""

LOG_ANNOTATIONS = 10
"""The runner shows at most 10 error annotations per step; more are dropped."""


def _escape_data(value: str) -> str:
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(value: str) -> str:
    return _escape_data(value).replace(":", "%3A").replace(",", "%2C")


def command(name: str, message: str = "", **properties: Any) -> str:
    """One workflow command line (``::error file=…,line=…::message``), escaped and inert:
    control characters (ANSI, OSC, bidi overrides) are shown, never obeyed, and a newline
    cannot end the command and start another."""
    props = ",".join(
        f"{k}={_escape_property(inert(str(v)))}" for k, v in properties.items() if v is not None and v != ""
    )
    return f"::{name}{' ' + props if props else ''}::{_escape_data(inert(message, keep_newlines=True))}"


class Log:
    """The step log. User text is printed between ``::stop-commands::`` markers so a
    query that reads ``::add-mask::`` or ``::error::`` is shown, not obeyed; its control
    characters are made visible; registered secrets never appear (:func:`scrub`)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def line(self, text: str = "") -> None:
        self.stream.write(scrub(text) + "\n")
        self.stream.flush()

    def cmd(self, name: str, message: str = "", **properties: Any) -> None:
        self.line(command(name, message, **properties))

    def mask(self, secret: str | None) -> None:
        """Register a secret: the runner masks it in the log, :func:`scrub` everywhere else."""
        if secret and secret.strip():
            self.stream.write(command("add-mask", secret.strip()) + "\n")
            register_secret(secret)

    def untrusted(self, text: str) -> None:
        token = secrets.token_hex(16)
        self.line(f"::stop-commands::{token}")
        text = scrub(inert(text, keep_newlines=True))
        self.stream.write(text if text.endswith("\n") else text + "\n")
        self.line(f"::{token}::")


def _delimiter(value: str) -> str:
    while True:
        d = f"ghadelimiter_{secrets.token_hex(12)}"
        if d not in value:
            return d


def write_outputs(path: Path | None, values: Mapping[str, str], log: Log) -> None:
    """Append step outputs in the delimiter form (safe for any value, multi-line included)."""
    if path is None:
        log.line("(GITHUB_OUTPUT is not set: outputs not written)")
        return
    with path.open("a", encoding="utf-8") as f:
        for name, value in values.items():
            assert name in OUTPUT_NAMES, name
            d = _delimiter(value)
            f.write(f"{name}<<{d}\n{value}\n{d}\n")


def cap_utf8(text: str, limit: int, pointer: str) -> str:
    """``text`` within ``limit`` UTF-8 bytes, cut at a line with ``pointer`` appended."""
    from adaptergate.publish.base import truncate_markdown

    if len(text.encode("utf-8")) <= limit:
        return text
    # characters <= bytes: shrink the character budget until the bytes fit
    budget = limit
    while True:
        out = truncate_markdown(text, budget, pointer)
        size = len(out.encode("utf-8"))
        if size <= limit:
            return out
        budget -= max(1, (size - limit))


def write_summary(path: Path | None, text: str, log: Log) -> None:
    if path is None:
        return
    pointer = "_… the report is longer than GitHub's 1 MiB step-summary limit: the full report is" \
              " `report.md` in the report directory (upload it as an artifact)._"
    with path.open("a", encoding="utf-8") as f:
        f.write(cap_utf8(scrub(text), STEP_SUMMARY_LIMIT - 1024, pointer))
        f.write("\n")


def log_annotations(decision: Any, holdout_rel: str | None, log: Log, limit: int = LOG_ANNOTATIONS) -> int:
    """``::error``/``::warning`` lines on the failing queries' lines of the holdout file
    (``holdout_rel`` None: not on lines, which are not the checkout's)."""
    from adaptergate.publish.report import failing_queries

    level = "error" if not decision.accepted else "warning"
    shown = list(itertools.islice(failing_queries(decision), limit))
    for row, message in shown:
        log.cmd(level, message, file=holdout_rel, line=row.get("line") if holdout_rel else None,
                title=f"adaptergate / {decision.tenant_id}")
    return len(shown)
