"""``adaptergate replay *``: inspect rejected updates in the replay buffer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from adaptergate.cli.common import Format, _emit
from adaptergate.errors import UsageError

replay_app = typer.Typer(help="Inspect rejected updates.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(replay_app, name="replay")


@replay_app.command("list")
def replay_list(
    tenant: str = typer.Option(...),
    replay_path: Path = typer.Option(..., "--replay-path", "--replay", help="The replay buffer JSONL."),
    n: int = typer.Option(10, help="Show the most recent N rejections."),
) -> None:
    """Recent rejected updates, oldest first, one JSON line each (index 1 = newest)."""
    from adaptergate.pipeline.ledger import ReplayBuffer

    records = ReplayBuffer(replay_path, tenant_id=tenant).recent(n)
    total = len(records)
    for pos, r in enumerate(records):
        typer.echo(json.dumps({
            "candidate": r.candidate_id, "baseline": r.baseline_id, "rejected_at": r.rejected_at,
            "delta": round(r.delta, 4), "reason": r.reason, "index": total - pos,
        }, ensure_ascii=False))


@replay_app.command("show")
def replay_show(
    tenant: str = typer.Option(...),
    replay_path: Path = typer.Option(..., "--replay-path", "--replay", help="The replay buffer JSONL."),
    audit_log: Optional[Path] = typer.Option(
        None, "--audit-log", help="Audit log (only needed for 0.5.4 records without an embedded decision)."
    ),
    index: int = typer.Option(1, "--index", "-i", help="1 = most recent rejection, 2 = the one before, ..."),
    show_failures: int = typer.Option(5, "--show-failures", min=0),
    output_format: Format = typer.Option(Format.human, "--format", "-f"),
) -> None:
    """Show one rejection in full: slices, driver, pattern, failing ids."""
    from adaptergate.pipeline.ledger import ReplayBuffer

    if index < 1:
        raise UsageError("--index must be >= 1 (1 = most recent)")
    record = ReplayBuffer(replay_path, tenant_id=tenant).get(index)
    decision = record.decision()
    _emit(decision, output_format, show_failures=show_failures, staleness_threshold_days=10**6)
