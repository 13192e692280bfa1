"""``adaptergate data check``: data quality of a JSONL file (training data or a holdout)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from adaptergate.cli.common import _console, _err_console

data_app = typer.Typer(
    help="Check JSONL data (training data or a holdout): schema, lengths, duplicates, diversity,"
    " overlap with holdouts.",
    no_args_is_help=True,
)


@data_app.command("check")
def data_check(
    file: Path = typer.Argument(
        ..., metavar="FILE", help="The JSONL file to check: training data or a holdout."
    ),
    schema: Optional[Path] = typer.Option(
        None, "--schema", metavar="SCHEMA", help="JSON Schema (draft 2020-12) every record must satisfy."
    ),
    holdouts: Optional[list[Path]] = typer.Option(
        None, "--holdout", metavar="HOLDOUT", help="Holdout JSONL that FILE must not overlap (repeatable)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    max_problems: int = typer.Option(
        20, "--max-problems", metavar="N", help="List at most this many problems and pairs."
    ),
    fail_under: Optional[float] = typer.Option(
        None, "--fail-under", metavar="RATE",
        help="With --schema: exit 1 only when the share of valid records (0-1) is below this rate"
        " [default: 1, any invalid record fails].",
    ),
) -> None:
    """Validate JSONL records and report data quality.

    Exit 0 passed; 1 if a record violates --schema (or compliance is below --fail-under) or
    FILE overlaps a holdout; 2 if a file or the schema is unusable.
    """
    from adaptergate.holdout.datacheck import check_data, exit_code
    from adaptergate.report.datacheck import print_report

    report = check_data(
        file, schema=schema, holdouts=holdouts or (), max_problems=max_problems, fail_under=fail_under
    )
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        err = _err_console()
        for reason in report["verdict"]["reasons"]:
            err.print(f"adaptergate: {reason}", markup=False, highlight=False)
    else:
        print_report(report, _console(), max_items=max_problems)
    code = exit_code(report)
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
