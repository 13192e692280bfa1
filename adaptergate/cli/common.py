"""What the command modules share: the consoles, the output formats, the
shared options, the progress bar and the one decision printer (``_emit``)."""

from __future__ import annotations

import os
import sys
from enum import Enum
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console

from adaptergate.holdout.store import DEFAULT_MAX_LINE_BYTES


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


class _progress:
    """A progress bar on stderr with queries/s while adapters are evaluated."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and os.environ.get("ADAPTERGATE_PROGRESS", "1") != "0"
        self.bar: Any = None

    def __enter__(self):
        if not self.enabled:
            return None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        class _Rate(TextColumn):
            def render(self, task: Any) -> Any:
                from rich.text import Text

                speed = task.finished_speed or task.speed
                return Text(f"{speed:,.1f} evaluations/s" if speed else "")

        self.bar = Progress(
            TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), _Rate(""), TimeElapsedColumn(),
            console=_err_console(), transient=True,
        )
        self.bar.start()
        task = self.bar.add_task("scoring", total=None)
        return lambda k: self.bar.update(task, advance=k)

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.stop()


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
        sys.stdout.flush()
        out = sys.stdout.buffer
        out.write(decision.to_json_bytes(indent=2))
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
