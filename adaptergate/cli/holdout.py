"""``adaptergate holdout *``: manage a tenant's held-out queries."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from adaptergate.cli.common import MAX_LINE_OPT, _console, _err_console
from adaptergate.errors import ExitCode, InvalidInputError

holdout_app = typer.Typer(help="Manage a tenant's held-out queries.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(holdout_app, name="holdout")


def _problems_to_stderr(problems: list[Any], limit: int = 10) -> None:
    err = _err_console()
    for p in problems[:limit]:
        err.print(f"skipped {p}", markup=False, highlight=False)
    if len(problems) > limit:
        err.print(f"... and {len(problems) - limit} more skipped lines", markup=False, highlight=False)


@holdout_app.command("add")
def holdout_add(
    query_json: str = typer.Argument(..., help="The query as a JSON object."),
    tenant: str = typer.Option(...),
    holdout_path: Path = typer.Option(..., "--holdout"),
    accepted_by: Optional[str] = typer.Option(None, help="Adapter version this query was good with."),
    max_line_bytes: int = MAX_LINE_OPT,
) -> None:
    """Add one query to the held-out set."""
    from adaptergate.holdout.store import add_query

    try:
        payload = json.loads(query_json)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"query is not valid JSON: {exc.msg} (column {exc.colno})") from None
    res = add_query(holdout_path, payload, tenant=tenant, accepted_by=accepted_by, max_line_bytes=max_line_bytes)
    out: dict[str, Any] = {"added": res.query_id if res.added else None, "size": res.size}
    if not res.added:
        out["unchanged"] = res.query_id
    typer.echo(json.dumps(out))


@holdout_app.command("import")
def holdout_import(
    tenant: str = typer.Option(...),
    holdout_path: Path = typer.Option(..., "--holdout"),
    from_jsonl: Path = typer.Option(..., "--from-jsonl", help="JSONL file of queries, one per line."),
    accepted_by: Optional[str] = typer.Option(None, help="Tag every imported query with this adapter."),
    max_line_bytes: int = MAX_LINE_OPT,
) -> None:
    """Import queries in bulk. Exit 2 if any line was skipped (invalid or duplicate)."""
    from adaptergate.holdout.store import import_queries

    res = import_queries(
        holdout_path, from_jsonl, tenant=tenant, accepted_by=accepted_by, max_line_bytes=max_line_bytes
    )
    typer.echo(json.dumps({"imported": len(res.imported), "skipped": len(res.skipped), "size": res.size}))
    if res.skipped:
        _problems_to_stderr(res.skipped)
        raise typer.Exit(int(ExitCode.INVALID_INPUT))


@holdout_app.command("list")
def holdout_list(
    tenant: Optional[str] = typer.Option(None),
    holdout_path: Path = typer.Option(..., "--holdout"),
    full: bool = typer.Option(False, "--full", help="Print each query as stored, not a summary."),
    max_line_bytes: int = MAX_LINE_OPT,
) -> None:
    """List the queries, one JSON object per line."""
    h = _load_or_empty(holdout_path, tenant, max_line_bytes)
    out = sys.stdout
    for i, qid in enumerate(h.ids):
        if full:
            out.write(json.dumps(h.payloads[i], ensure_ascii=False) + "\n")
        else:
            out.write(json.dumps({
                "query_id": qid, "accepted_by": h.accepted_by[i] or h.payloads[i].get("accepted_by"),
                "added_at": h.added_at[i],
            }) + "\n")


def _load_or_empty(path: Path, tenant: Optional[str], max_line_bytes: int):
    from adaptergate.holdout.store import Holdout, load_holdout

    if not path.exists():
        return Holdout(path=path)
    return load_holdout(path, tenant=tenant, max_line_bytes=max_line_bytes)


@holdout_app.command("size")
def holdout_size(
    tenant: Optional[str] = typer.Option(None),
    holdout_path: Path = typer.Option(..., "--holdout"),
    max_line_bytes: int = MAX_LINE_OPT,
) -> None:
    """Print the number of queries."""
    typer.echo(str(len(_load_or_empty(holdout_path, tenant, max_line_bytes))))


@holdout_app.command("remove")
def holdout_remove(
    query_ids: list[str] = typer.Argument(..., help="Ids of the queries to remove."),
    tenant: Optional[str] = typer.Option(None),
    holdout_path: Path = typer.Option(..., "--holdout"),
    max_line_bytes: int = MAX_LINE_OPT,
) -> None:
    """Remove queries by id. Exit 2 if an id was not found."""
    from adaptergate.holdout.store import remove_queries

    if not holdout_path.exists():
        raise InvalidInputError(f"holdout file not found: {holdout_path}")
    removed, missing, size = remove_queries(holdout_path, query_ids, tenant=tenant, max_line_bytes=max_line_bytes)
    typer.echo(json.dumps({"removed": removed, "missing": missing, "size": size}))
    if missing:
        _err_console().print(
            f"not found in {holdout_path}: " + ", ".join(repr(m) for m in missing), markup=False
        )
        raise typer.Exit(int(ExitCode.INVALID_INPUT))


@holdout_app.command("validate")
def holdout_validate(
    holdout_path: Path = typer.Option(..., "--holdout"),
    tenant: Optional[str] = typer.Option(None),
    strict_tags: bool = typer.Option(
        False, "--strict-tags", help="Treat slice tags without '=' as errors, not warnings."
    ),
    max_line_bytes: int = MAX_LINE_OPT,
) -> None:
    """Check every line; list every problem with its line number. Exit 2 if any."""
    from adaptergate.holdout.store import load_holdout

    h = load_holdout(holdout_path, tenant=tenant, max_line_bytes=max_line_bytes, allow_bare_tags=not strict_tags)
    err = _err_console()
    for w in h.warnings:
        err.print(f"warning: {w}", markup=False, highlight=False)
    typer.echo(json.dumps({"valid": True, "size": len(h), "warnings": len(h.warnings)}))


@holdout_app.command("stats")
def holdout_stats_cmd(
    holdout_path: Path = typer.Option(..., "--holdout"),
    tenant: Optional[str] = typer.Option(None),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    max_line_bytes: int = MAX_LINE_OPT,
) -> None:
    """Size, slice coverage, gold coverage, staleness and suspected duplicate tags."""
    from adaptergate.holdout.store import holdout_stats, load_holdout
    from adaptergate.holdout.tags import find_duplicate_slices

    h = load_holdout(holdout_path, tenant=tenant, max_line_bytes=max_line_bytes)
    stats = holdout_stats(h)
    tags = sorted({t for tags in h.slices for t in tags})
    stats["suspected_duplicate_slices"] = [f.model_dump() for f in find_duplicate_slices(tags)]
    if as_json:
        typer.echo(json.dumps(stats, indent=2, ensure_ascii=False))
        return
    con = _console()
    from rich.table import Table

    con.print(f"{stats['path']}: {stats['size']} queries ({stats['format']})", markup=False)
    con.print(
        f"prompt: {stats['with_prompt']}  gold: {stats['with_gold']}  untagged: {stats['untagged']}"
        f"  clusters: {stats['clusters']}  staleness: {stats['staleness_days']} days",
        markup=False,
    )
    table = Table("slice key", "value", "queries")
    for key, values in stats["slices_by_key"].items():
        for value, count in values.items():
            table.add_row(key, value, str(count))
    con.print(table)
    for f in stats["suspected_duplicate_slices"]:
        con.print(f"suspected duplicate: {' ~ '.join(f['tags'])} ({f['reason']})", markup=False)
