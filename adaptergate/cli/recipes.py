"""The recipe library: ``adaptergate recipes *`` and ``recommend-cmd``."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Any, Optional

import typer

from adaptergate.cli.common import _console, _err_console
from adaptergate.errors import ExitCode, InvalidInputError, UsageError
from adaptergate.recipes.refs import REF_HELP as _REF_HELP

# --- recipe library (0.5.4's `recipes list|show|seed` and `recommend-cmd`) ---
# 0.5.4 exits 1 for "not found"-style outcomes (empty library, unknown recipe
# id, seed target exists); those keep exit 1 for compatibility. Unreadable or
# malformed files raise InvalidInputError (exit 2).

recipes_app = typer.Typer(help="Manage the recipe library (repair recipes for rejected adapters).",
                          no_args_is_help=True)
RECIPES_OPT = typer.Option(..., "--recipes", help="The recipes JSONL file.")


class RecommendFormat(str, Enum):
    human = "human"
    json = "json"


def _compat_exit_1(message: str) -> None:
    _err_console().print(f"adaptergate: {message}", markup=False, highlight=False)
    raise typer.Exit(1)  # 0.5.4 exits 1 here: kept for compatibility


@recipes_app.command("list")
def recipes_list(recipes_path: Path = RECIPES_OPT) -> None:
    """One JSON line per recipe. Exit 1 if the library is empty or missing."""
    from adaptergate.recipes import RecipeStore

    store = RecipeStore(recipes_path)
    if len(store) == 0:
        _compat_exit_1(f"no recipes in {recipes_path}. Run adaptergate recipes seed --recipes"
                       f" {recipes_path} to populate it from the bundled seed library.")
    for r in store.list_recipes():
        typer.echo(json.dumps({"recipe_id": r.recipe_id, "name": r.name,
                               "intervention_type": r.intervention_type, "source_paper": r.source_paper_arxiv}))


@recipes_app.command("show")
def recipes_show(recipe_id: str = typer.Argument(..., help="Id of the recipe."),
                 recipes_path: Path = RECIPES_OPT) -> None:
    """Print one recipe as stored. Exit 1 if there is no recipe with that id."""
    from adaptergate.recipes import RecipeStore

    store = RecipeStore(recipes_path)
    recipe = store.get_recipe(recipe_id)
    if recipe is None:
        missing = "" if store.recipes_file_exists else " (the file does not exist)"
        _compat_exit_1(f"no recipe with id {recipe_id!r} in {recipes_path}{missing}.")
    typer.echo(recipe.to_json())


@recipes_app.command("seed")
def recipes_seed(
    recipes_path: Path = typer.Option(..., "--recipes", help="Where to write the seed recipes."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing recipes file."),
) -> None:
    """Write the bundled seed library (7 recipes). Exit 1 if the file exists without --overwrite."""
    from adaptergate.recipes import seed_recipes_bytes
    from adaptergate.storage import atomic_write

    if recipes_path.is_dir():
        raise InvalidInputError(f"--recipes {recipes_path} is a directory")
    if recipes_path.exists() and not overwrite:
        _compat_exit_1(f"{recipes_path} already exists. Pass --overwrite to replace it.")
    data = seed_recipes_bytes()
    atomic_write(recipes_path, [data])
    n = sum(1 for line in data.decode("utf-8").splitlines() if line.strip())
    typer.echo(json.dumps({"seeded": str(recipes_path), "n_recipes": n}))


REF_HELP = _REF_HELP[:1].upper() + _REF_HELP[1:] + "."
APPLICATIONS_OPT = typer.Option(
    None, "--applications", help="Application log (default: applications.jsonl beside --recipes)."
)
NOTE_OPT = typer.Option(None, "--note", help="Free text stored with the application.")


def _recipe_store(recipes_path: Path, applications_path: Optional[Path]) -> Any:
    from adaptergate.recipes import RecipeStore

    store = RecipeStore(recipes_path, applications_path)
    if not store.recipes_file_exists:
        raise InvalidInputError(f"recipes file not found: {recipes_path} (create it with"
                                f" adaptergate recipes seed --recipes {recipes_path})")
    return store


@recipes_app.command("log")
def recipes_log(
    recipe_id: str = typer.Option(..., "--recipe", help="Id of the recipe that was applied."),
    decision_ref: str = typer.Option(..., "--decision", help="The rejection it was applied to. " + REF_HELP),
    outcome_ref: str = typer.Option(
        ..., "--outcome", help="The gate decision after applying it (same forms). A selector takes its tenant"
        " and time bound from the other REF: --decision @last-rejected is the newest rejection before --outcome."
    ),
    audit_log: Optional[Path] = typer.Option(None, "--audit-log", help="The audit log @-selectors read."),
    tenant: Optional[str] = typer.Option(
        None, "--tenant", help="Select only this tenant's decisions; a decision file must be this tenant's."
    ),
    recipes_path: Path = RECIPES_OPT,
    applications_path: Optional[Path] = APPLICATIONS_OPT,
    note: Optional[str] = NOTE_OPT,
    output_format: RecommendFormat = typer.Option(RecommendFormat.human, "--format", "-f", help="human or json."),
) -> None:
    """Log an application of a recipe from two real gate decisions: the rejection and the later outcome."""
    from adaptergate.recipes import application_json, print_application, resolve_application_refs

    store = _recipe_store(recipes_path, applications_path)
    decision, outcome = resolve_application_refs(decision_ref, outcome_ref, audit_log=audit_log, tenant=tenant)
    app_ = store.log_outcome(recipe_id=recipe_id, decision=decision.decision, outcome=outcome.decision, note=note)
    record = store.efficacy(recipe_id, app_.driver_slice_tag)
    if output_format is RecommendFormat.json:
        typer.echo(json.dumps({**application_json(app_, record), "decision_source": decision.source,
                               "outcome_source": outcome.source}, indent=2, ensure_ascii=False))
        return
    print_application(app_, record, console=_console())


@recipes_app.command("verify")
def recipes_verify(
    recipe_id: str = typer.Option(..., "--recipe", help="Id of the recipe that was applied."),
    decision_ref: str = typer.Option(..., "--decision", help="The rejection it was applied to. " + REF_HELP),
    candidate: str = typer.Option(..., "--candidate", help="The adapter after applying the recipe."),
    holdout_path: Path = typer.Option(..., "--holdout", help="The tenant's JSONL held-out set."),
    scorer_spec: str = typer.Option(..., "--scorer", help="Scorer as 'module:function'."),
    audit_log: Path = typer.Option(
        ..., "--audit-log", help="Audit log: @-selectors read it, the new decision is appended to it."
    ),
    tenant: Optional[str] = typer.Option(
        None, "--tenant", help="Select only this tenant's decisions; a decision file must be this tenant's."
    ),
    baseline: Optional[str] = typer.Option(None, "--baseline", help="Default: the rejection's baseline."),
    epsilon: Optional[float] = typer.Option(None, "--epsilon", help="Default: the rejection's."),
    slice_epsilon: Optional[float] = typer.Option(None, "--slice-epsilon", help="Default: the rejection's."),
    rule: Optional[str] = typer.Option(
        None, "--rule", help="Decision rule, stat or threshold (gate's --decision). Default: the rejection's."
    ),
    recipes_path: Path = RECIPES_OPT,
    applications_path: Optional[Path] = APPLICATIONS_OPT,
    note: Optional[str] = NOTE_OPT,
    output_format: RecommendFormat = typer.Option(RecommendFormat.human, "--format", "-f", help="human or json."),
) -> None:
    """Re-gate the adapter a recipe produced, under the rejection's settings, and log the outcome.

    Exit 0 accepted, 1 rejected (the new gate's verdict).
    """
    from adaptergate.pipeline.job import run_job
    from adaptergate.pipeline.options import GateOptions, build_job
    from adaptergate.recipes import (
        application_json, check_rejection, print_application, resolve_decision_ref, settings_of,
    )

    if rule is not None and rule not in ("stat", "threshold"):
        raise UsageError(f"--rule must be stat or threshold, got {rule!r}")
    store = _recipe_store(recipes_path, applications_path)
    if recipe_id not in store:
        raise InvalidInputError(f"no recipe with id {recipe_id!r} in {recipes_path}")
    resolved = resolve_decision_ref(decision_ref, option="--decision", audit_log=audit_log, tenant=tenant)
    rejection = resolved.decision
    check_rejection(rejection)
    given = {"epsilon": epsilon, "slice_epsilon": slice_epsilon, "decision": rule}
    settings = {**settings_of(rejection), **{k: v for k, v in given.items() if v is not None}}
    job = build_job(GateOptions(
        tenant=rejection.tenant_id, holdout=holdout_path, candidate=candidate,
        baseline=baseline if baseline is not None else rejection.baseline_id, scorer=scorer_spec,
        audit_log=audit_log, **settings,
    ))
    outcome = run_job(job)
    app_ = store.log_outcome(recipe_id=recipe_id, decision=rejection, outcome=outcome, note=note)
    record = store.efficacy(recipe_id, app_.driver_slice_tag)
    code = int(ExitCode.ACCEPTED if outcome.accepted else ExitCode.REJECTED)
    if output_format is RecommendFormat.json:
        typer.echo(json.dumps({
            "accepted": outcome.accepted, "verdict": outcome.verdict, "exit_code": code,
            "decision_source": resolved.source, "settings": settings,
            "outcome": json.loads(outcome.compact().to_json(indent=None)), **application_json(app_, record),
        }, indent=2, ensure_ascii=False))
        raise typer.Exit(code)
    con = _console()
    con.print(
        f"{outcome.verdict}: {outcome.candidate_id} vs {outcome.baseline_id}, score"
        f" {outcome.score_baseline:.3f} → {outcome.score_candidate:.3f} (Δ={outcome.delta:+.3f});"
        f" appended to {audit_log}", markup=False, highlight=False,
    )
    con.print("settings (the rejection's unless given): "
              + ", ".join(f"{k}={v}" for k, v in settings.items() if v is not None), markup=False, highlight=False)
    print_application(app_, record, console=con)
    raise typer.Exit(code)


def recommend_cmd(
    decision_path: Path = typer.Option(..., "--decision", help="A gate decision JSON file or a JSONL audit log."),
    recipes_path: Path = RECIPES_OPT,
    applications_path: Optional[Path] = APPLICATIONS_OPT,
    line: int = typer.Option(
        -1, "--line", help="Which decision record of an audit log: 0 = first, -1 = last (default)."
        " Counts decision records only; records of failed runs are skipped."
    ),
    top_k: int = typer.Option(5, "--top-k", min=1, help="Maximum recommendations."),
    output_format: RecommendFormat = typer.Option(RecommendFormat.human, "--format", "-f", help="human or json."),
) -> None:
    """Recommend repair recipes for a rejected decision's driver slice, best first."""
    from adaptergate.recipes import (
        print_recommendations, read_decision, recommend, recommendations_json,
    )

    decision = read_decision(decision_path, line=line)
    store = _recipe_store(recipes_path, applications_path)
    recs = recommend(decision, store, top_k=top_k)
    if output_format is RecommendFormat.json:
        typer.echo(json.dumps(recommendations_json(recs), indent=2))
        return
    print_recommendations(decision, recs, console=_console(), err_console=_err_console(), store=store)


def register(app: typer.Typer) -> None:
    app.command("recommend-cmd")(recommend_cmd)
    app.add_typer(recipes_app, name="recipes")
