"""The recipe commands' output: ``recommend-cmd`` and ``recipes log`` / ``verify``, for humans and as JSON."""

from __future__ import annotations

from typing import Any

from adaptergate.models import GateDecision
from adaptergate.recipes.efficacy import RecipeEfficacy
from adaptergate.recipes.model import VerifiedApplication
from adaptergate.recipes.ranking import RecipeRecommendation
from adaptergate.recipes.store import RecipeStore

__all__ = [
    "HONESTY_NOTE",
    "application_json",
    "print_application",
    "print_recommendations",
    "recommendations_json",
]


HONESTY_NOTE = (
    "Note: no prior applications have been logged for any matching recipe. The ranking below"
    " reflects slice matching only, not observed efficacy. To make the ranking empirical, record"
    " each recipe's outcome after running it: adaptergate recipes log --recipe ID --recipes RECIPES"
    " --decision @last-rejected --outcome @last --audit-log AUDIT (or adaptergate recipes verify,"
    " which re-gates the new adapter and records the outcome)."
)


def _evidence_label(r: RecipeRecommendation) -> str:
    if r.expected_efficacy is None:
        label = "no prior applications"
    else:
        label = f"avg Δ={r.expected_efficacy:+.3f} over n={r.n_uses}"
        if r.efficacy_range_low is not None and r.efficacy_range_high is not None:
            label += f", range {r.efficacy_range_low:+.3f}..{r.efficacy_range_high:+.3f}"
    if r.n_pending:
        label += f"; {r.n_pending} pending"
    return label


def print_recommendations(
    decision: GateDecision,
    recs: list[RecipeRecommendation],
    *,
    console: Any,
    err_console: Any,
    store: RecipeStore | None = None,
) -> None:
    """0.5.4's human output of ``recommend-cmd`` (the honesty note goes to stderr)."""
    from rich.text import Text

    def out(text: str, style: str | None = None) -> None:
        console.print(Text(text, style=style or ""), highlight=False)

    if not recs:
        if decision.accepted:
            out("Decision was ACCEPTED — no repair recipe needed.", "green")
        elif decision.driver_slice is None:
            out(
                "No driver slice on this decision — add slice tags to your held-out queries to"
                " enable recipe matching.", "yellow",
            )
        elif store is not None and len(store) == 0:
            out(
                f"The recipe library {store.recipes_path} is empty. Run adaptergate recipes seed"
                f" --recipes {store.recipes_path} to populate it.", "yellow",
            )
        else:
            out(f"No recipes in the library match driver slice `{decision.driver_slice.slice_tag}`.", "yellow")
        return
    driver = decision.driver_slice
    if driver is not None:
        console.rule(Text(f"Recipes for driver slice: {driver.slice_tag}", style="bold magenta"))
    if all(r.n_uses == 0 for r in recs):
        note = HONESTY_NOTE if store is None else HONESTY_NOTE.replace("RECIPES", str(store.recipes_path))
        err_console.print(Text(note), highlight=False)
    show_basis = any(r.efficacy is not None for r in recs)
    for i, r in enumerate(recs, 1):
        line = Text()
        line.append(f"\n{i}. {r.recipe.name}", style="bold cyan")
        line.append(f"   [{_evidence_label(r)}]")
        console.print(line, highlight=False)
        if show_basis:  # only once the library has gate-verified outcomes: 0.5.4's output otherwise
            out(f"   rank basis: {r.basis_text}")
        out(f"   id: {r.recipe.recipe_id}")
        out(f"   intervention: {r.recipe.intervention_type}")
        if r.recipe.source_paper_arxiv:
            out(f"   source: arXiv {r.recipe.source_paper_arxiv}")
        out(f"   {r.recipe.description}")


def recommendations_json(recs: list[RecipeRecommendation]) -> list[dict[str, Any]]:
    """``recommend-cmd --format json``: 0.5.4's objects, plus ``rank_basis``,
    ``rank_basis_text`` and ``verified`` once the library has gate-verified
    applications (so a library without them prints exactly what 0.5.4 did)."""
    if any(r.efficacy is not None for r in recs):
        return [r.to_json_dict() for r in recs]
    return [r.to_dict() for r in recs]


def print_application(app: VerifiedApplication, record: RecipeEfficacy, *, console: Any) -> None:
    """Human output of ``recipes log`` / ``recipes verify``: what was logged, and the recipe's record."""
    from rich.text import Text

    def out(text: str) -> None:
        console.print(Text(text), highlight=False)

    after = "—" if app.outcome_driver_delta is None else f"{app.outcome_driver_delta:+.3f}"
    out(f"Logged application {app.application_id} of {app.recipe_id} (tenant hash {app.tenant_hash}):")
    out(f"  rejection: {app.decision_candidate_id} at {app.decision_timestamp}: {app.decision_verdict},"
        f" score {app.decision_score:.3f} (Δ={app.decision_delta:+.3f})")
    out(f"  outcome:   {app.outcome_candidate_id} at {app.outcome_timestamp}: {app.outcome_verdict},"
        f" score {app.outcome_score:.3f} (Δ={app.outcome_delta:+.3f})")
    out(f"  driver slice {app.driver_slice_tag}: Δ {app.decision_driver_delta:+.3f} → {after}")
    if record.measured:
        text = "measured: " + record.summary()
    else:
        text = (f"{record.successes}/{record.n} succeeded on {record.scope} (it ranks recommendations from"
                f" {record.min_measured} matching applications on; until then its prior does)")
    out(f"Record of {app.recipe_id} for this slice: {text}")


def application_json(app: VerifiedApplication, record: RecipeEfficacy) -> dict[str, Any]:
    return {"application": app.to_record(), "record": record.to_dict()}
