"""``adaptergate demo *``: the bundled demos, offline."""

from __future__ import annotations

import typer

from adaptergate.cli.common import Format, _console, _emit, _err_console, _progress, count_records, run_seconds
from adaptergate.errors import InvalidInputError

demo_app = typer.Typer(
    help="Run the bundled demos, offline (the default builds a tiny model and two real LoRA adapters).",
    invoke_without_command=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(demo_app, name="demo")


@demo_app.callback()
def demo(ctx: typer.Context) -> None:
    """With no sub-command: the offline PEFT demo (tiny model, two real LoRA adapters)."""
    if ctx.invoked_subcommand is not None:
        return
    _demo_adapters()


def _demo_adapters() -> None:
    """Build (once, cached) a tiny Llama and two LoRA adapters, then gate them for real."""
    import time

    from adaptergate.pipeline.gate import GateRequest, run_gate
    from adaptergate.scoring.model import ModelInputs
    from adaptergate.models import GateConfig

    import importlib.util

    missing = [m for m in ("torch", "transformers", "peft") if importlib.util.find_spec(m) is None]
    if missing:  # found before anything is imported: the PEFT backend imports them when it loads
        raise InvalidInputError(
            f"the demo loads real adapters and needs the ML stack ({missing[0]} is missing):"
            " pip install torch==2.13.0 '.[peft]' — or run 'adaptergate demo mock' for the scorer-only example"
        )
    from adaptergate.demos.tinymodel import build_demo_assets

    con, err = _console(), _err_console()
    t0 = time.perf_counter()
    assets = build_demo_assets(progress=lambda msg: err.print(f"[demo] {msg}", markup=False, highlight=False))
    err.print(f"[demo] model and adapters ready in {time.perf_counter() - t0:.1f} s ({assets.root})",
              markup=False, highlight=False)
    con.print(
        f"$ adaptergate gate --tenant demo --holdout {assets.holdout} --base-model {assets.base_dir}"
        f" --baseline-adapter {assets.baseline_adapter} --candidate-adapter {assets.candidate_adapter}"
        " --metric exact --slice-epsilon 0.10\n",
        markup=False, highlight=False,
    )
    request = GateRequest(
        tenant="demo", candidate=assets.candidate_adapter.name, baseline=assets.baseline_adapter.name,
        holdout_path=assets.holdout, scorer_spec="", config=GateConfig(slice_epsilon=0.10),
        model=ModelInputs(
            base_model=str(assets.base_dir), baseline_adapter=assets.baseline_adapter,
            candidate_adapter=assets.candidate_adapter, metric="exact", cache_dir=assets.root / "cache",
        ),
    )
    queries = count_records(assets.holdout)
    with _progress(enabled=True, total=2 * queries if queries else None, starting="loading the model") as tick:
        decision = run_gate(request, progress=tick)
    _emit(decision, Format.human, show_failures=5, staleness_threshold_days=30)
    shown = [r for r in decision.per_query if r["delta"] < 0 and r.get("candidate_output") is not None][:3]
    if shown:
        con.print("\nWhat the adapters answered where the candidate regressed:", markup=False)
        for r in shown:
            con.print(
                f"  {r['query_id']}: baseline {r.get('baseline_output')!r} -> candidate {r.get('candidate_output')!r}",
                markup=False, highlight=False,
            )
    con.print(
        f"\n(the gate exited {1 if not decision.accepted else 0}: that is what CI sees; the demo itself"
        f" succeeded in {run_seconds():.1f} s)", markup=False, highlight=False,
    )


@demo_app.command("mock")
def demo_mock() -> None:
    """Gate the bundled example with the mock scorer (48 queries, no model)."""
    from adaptergate.examples import (
        EXAMPLE_BASELINE, EXAMPLE_CANDIDATE, EXAMPLE_HOLDOUT, EXAMPLE_SCORER, EXAMPLE_TENANT,
    )
    from adaptergate.pipeline.gate import GateRequest, run_gate
    from adaptergate.models import GateConfig

    con = _console()
    con.print(
        f"$ adaptergate gate --tenant {EXAMPLE_TENANT} --candidate {EXAMPLE_CANDIDATE}"
        f" --baseline {EXAMPLE_BASELINE} --holdout {EXAMPLE_HOLDOUT} --scorer {EXAMPLE_SCORER}"
        " --slice-epsilon 0.10\n",
        markup=False, highlight=False,
    )
    decision = run_gate(GateRequest(
        tenant=EXAMPLE_TENANT, candidate=EXAMPLE_CANDIDATE, baseline=EXAMPLE_BASELINE,
        holdout_path=EXAMPLE_HOLDOUT, scorer_spec=EXAMPLE_SCORER, config=GateConfig(slice_epsilon=0.10),
    ))
    _emit(decision, Format.human, show_failures=5, staleness_threshold_days=30)
    con.print(
        f"\n(the gate exited {1 if not decision.accepted else 0}: that is what CI sees; the demo"
        " itself succeeded)", markup=False, highlight=False,
    )


@demo_app.command("silent")
def demo_silent() -> None:
    """Silent slice collapse: an aggregate-only gate (--slice-epsilon off) accepts, the default slice gate rejects."""
    from adaptergate.demos.catalog import run_silent

    run_silent(_console())


@demo_app.command("classifier")
def demo_classifier() -> None:
    """Two numpy intent classifiers; the candidate learnt from contaminated refund labels."""
    from adaptergate.demos.catalog import run_classifier

    run_classifier(_console())


@demo_app.command("sql")
def demo_sql() -> None:
    """A generative (text-to-SQL) scorer; the candidate writes '= NULL' for 'IS NULL'."""
    from adaptergate.demos.catalog import run_sql

    run_sql(_console())
