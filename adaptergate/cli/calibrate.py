"""``adaptergate calibrate``: suggest margins from the holdout size and the scorer's noise."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from adaptergate.cli.common import MAX_LINE_OPT, _console
from adaptergate.errors import UsageError


def register(app: typer.Typer) -> None:
    app.command()(calibrate)


def calibrate(
    tenant: str = typer.Option(...),
    holdout_path: Path = typer.Option(..., "--holdout"),
    scorer_spec: str = typer.Option(..., "--scorer"),
    baseline: str = typer.Option(..., help="The production adapter: scored --repeats times."),
    repeats: int = typer.Option(3, "--repeats", help="Scorer runs used to measure noise (>= 2)."),
    churn: float = typer.Option(
        0.10, "--churn",
        help="Fraction of queries whose outcome changes between two equal-quality adapter versions.",
    ),
    alpha: float = typer.Option(0.05, "--alpha"),
    power: float = typer.Option(0.8, "--power", help="Detection probability the margins are sized for."),
    slice_min_size: int = typer.Option(3, "--slice-min-size"),
    config_path: Optional[Path] = typer.Option(None, "--config", envvar="ADAPTERGATE_CONFIG"),
    write: bool = typer.Option(False, "--write", help="Write the suggestion into --config for this tenant."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    max_line_bytes: int = MAX_LINE_OPT,
) -> None:
    """Suggest --epsilon / --slice-epsilon from the holdout size and the scorer's measured noise."""
    from adaptergate.decide.calibration import run_calibration
    from adaptergate.pipeline.settings import write_tenant_settings

    if write and config_path is None:
        raise UsageError("--write needs --config FILE (the tenant settings file to update)")
    report = run_calibration(
        tenant=tenant, holdout_path=holdout_path, scorer_spec=scorer_spec, baseline=baseline,
        repeats=repeats, churn=churn, alpha=alpha, power=power, slice_min_size=slice_min_size,
        max_line_bytes=max_line_bytes,
    )
    data = report.to_dict()
    if write and config_path is not None:
        values = {"epsilon": report.suggestion.epsilon, "slice_epsilon": report.suggestion.slice_epsilon,
                  "alpha": alpha, "slice_min_size": slice_min_size}
        from datetime import datetime, timezone

        write_tenant_settings(config_path, tenant, values, {
            "calibrated_at": datetime.now(timezone.utc).isoformat(), "baseline": baseline,
            "basis": report.suggestion.basis, "noise": report.noise.statement,
        })
        data["written_to"] = str(config_path)
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    con = _console()
    s = report.suggestion
    con.print(f"tenant {tenant}: {report.noise.statement}", markup=False, highlight=False)
    con.print(f"suggested --epsilon {s.epsilon:g}", markup=False, highlight=False)
    if s.slice_epsilon is not None:
        con.print(
            f"suggested --slice-epsilon {s.slice_epsilon:g} (median eligible slice: {s.median_slice} queries;"
            f" the smallest, {s.smallest_slice}, can only resolve larger drops)", markup=False, highlight=False,
        )
    con.print(f"basis: {s.basis}", markup=False, highlight=False)
    if write:
        con.print(f"written to {config_path} (adaptergate gate --config {config_path} uses it)", markup=False)
