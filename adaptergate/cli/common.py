"""What the command modules share: the consoles, the output formats, the
shared options, the progress bar and the one decision printer (``_emit``)."""

from __future__ import annotations

import os
import sys
import time
from enum import Enum
from pathlib import Path
from collections.abc import Callable
from typing import Any, Optional

import typer
from rich.console import Console

from adaptergate.holdout.store import DEFAULT_MAX_LINE_BYTES


_RUN = {"start": time.perf_counter()}


def _process_age() -> float | None:
    """Seconds since this process started (Linux: /proc), None where unknown."""
    try:
        with open("/proc/self/stat", encoding="ascii", errors="replace") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime", encoding="ascii") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK"))  # field 22: starttime
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def mark_run_start(*, whole_process: bool) -> None:
    """Where the command's run began: the process's start when the command is the process (the
    ``adaptergate`` console script: interpreter start-up and imports count), else now."""
    now = time.perf_counter()
    age = _process_age() if whole_process else None
    _RUN["start"] = now - (age or 0.0)


def run_seconds() -> float:
    """Seconds since the command's run began (:func:`mark_run_start`): what a user waited."""
    return time.perf_counter() - _RUN["start"]


def _console() -> Console:
    return Console(soft_wrap=True)


def _err_console() -> Console:
    return Console(stderr=True, soft_wrap=True)


class Format(str, Enum):
    human = "human"
    json = "json"
    pr_comment = "pr-comment"
    markdown = "markdown"
    junit = "junit"


MAX_LINE_OPT = typer.Option(
    DEFAULT_MAX_LINE_BYTES, "--max-line-bytes", min=1, help="Reject holdout lines longer than this."
)


class _Ticks:
    """The ``progress`` callable the pipeline calls with increments (``tick(k)``); ``total(n)``
    sets how many evaluations the run will make, once it is known."""

    def __init__(self, bar: Any, task: Any, working: str) -> None:
        self._bar, self._task, self._working = bar, task, working
        self._started = False

    def __call__(self, k: int) -> None:
        if not self._started:
            self._started = True
            self._bar.update(self._task, description=self._working)
        self._bar.update(self._task, advance=k)
        task = self._bar.tasks[0]
        if task.total is not None and task.completed > task.total:
            self._bar.update(self._task, total=task.completed)  # a cached row was counted twice

    def total(self, n: int) -> None:
        self._bar.update(self._task, total=max(0, int(n)))


class _progress:
    """A progress bar on stderr (rich; only when stderr is a terminal; ``ADAPTERGATE_PROGRESS=0``
    turns it off) with evaluations/s while adapters are evaluated.

    ``total``: the evaluations the run will make when the caller knows them (a scorer gate:
    queries × adapters × repeats), so the bar reads ``0/288`` from the start, not ``0/?`` (a
    callable is asked only when the bar is shown);
    ``starting``: what it says before the first evaluation (``loading the model``)."""

    def __init__(self, enabled: bool, *, total: int | Callable[[], int | None] | None = None,
                 starting: str = "scoring") -> None:
        self.enabled = enabled and os.environ.get("ADAPTERGATE_PROGRESS", "1") != "0"
        self.total = total
        self.starting = starting
        self.bar: Any = None

    def __enter__(self) -> Any:
        if not self.enabled:
            return None
        console = _err_console()
        if not console.is_terminal:
            return None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        class _Rate(TextColumn):
            def render(self, task: Any) -> Any:
                from rich.text import Text

                speed = task.finished_speed or task.speed
                return Text(f"{speed:,.1f} evaluations/s" if speed else "")

        self.bar = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), _Rate(""), TimeElapsedColumn(),
            console=console, transient=True,
        )
        total = self.total() if callable(self.total) else self.total
        self.bar.start()
        task = self.bar.add_task(self.starting, total=total)
        return _Ticks(self.bar, task, "scoring")

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.stop()


def count_records(path: Path) -> int | None:
    """The holdout's records, counted fast (non-blank lines) for a progress bar's total; None
    when the file cannot be read (the gate reports that properly)."""
    try:
        with open(path, "rb") as f:
            return sum(1 for line in f if line.strip())
    except OSError:
        return None


def _emit(
    decision: Any, fmt: Format, *, show_failures: int, staleness_threshold_days: int,
    recipes: Optional[Path] = None,
) -> None:
    if fmt is Format.human:
        from adaptergate.report import print_human

        print_human(
            decision, console=_console(), err_console=_err_console(),
            show_failures=show_failures, staleness_threshold_days=staleness_threshold_days,
        )
        if recipes is not None and not decision.accepted:
            from adaptergate.recipes import RecipeStore, print_recommendations, recommend

            store = RecipeStore(recipes)
            _console().print("")
            print_recommendations(decision, recommend(decision, store, top_k=3), console=_console(),
                                  err_console=_err_console(), store=store)
        return
    if fmt is Format.json:
        from adaptergate.report.formats import RenderOptions, json_bytes

        sys.stdout.flush()
        out = sys.stdout.buffer
        # the decision, with every warning the human report prints (a stale holdout, …)
        out.write(json_bytes(decision, RenderOptions(staleness_threshold_days=staleness_threshold_days)))
        out.write(b"\n")
    else:
        from adaptergate.recipes import recommendations_from_file
        from adaptergate.report import render

        text = render(
            decision, fmt.value, show_failures=show_failures, staleness_threshold_days=staleness_threshold_days,
            recommendations=recommendations_from_file(decision, recipes) if fmt is not Format.junit else None,
        )
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    if fmt is Format.json:
        # Warnings go to stderr so they survive piping JSON into jq.
        err = _err_console()
        for w in decision.warnings:
            err.print(f"warning: {w.message}", markup=False, highlight=False)
