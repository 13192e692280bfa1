"""``adaptergate review``: baseline and candidate answers side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from adaptergate.cli.common import _console
from adaptergate.errors import InvalidInputError, UsageError


def register(app: typer.Typer) -> None:
    app.command()(review)


def review(
    query_ids: list[str] = typer.Option(..., "--query", help="Query id to show (repeatable)."),
    rows_path: Optional[Path] = typer.Option(None, "--rows", help="Per-query rows written by 'gate --rows-out'."),
    decision_path: Optional[Path] = typer.Option(
        None, "--decision", help="A decision saved from 'gate --format json'."
    ),
    holdout_path: Optional[Path] = typer.Option(None, "--holdout", help="Show the prompt and gold answer too."),
) -> None:
    """Baseline and candidate answers side by side for a query, with a word diff."""
    from adaptergate.pipeline.ledger import read_rows
    from adaptergate.decide.wording import word_diff

    if (rows_path is None) == (decision_path is None):
        raise UsageError("give exactly one of --rows FILE or --decision FILE")
    if rows_path is not None:
        if not rows_path.exists():
            raise InvalidInputError(f"rows file not found: {rows_path}")
        rows = read_rows(rows_path)
    else:
        from adaptergate.recipes import read_decision

        rows = list(read_decision(decision_path, line=-1).per_query)  # type: ignore[arg-type]
    by_id = {str(r["query_id"]): r for r in rows}
    payloads: dict[str, dict] = {}
    if holdout_path is not None:
        from adaptergate.holdout.store import load_holdout

        h = load_holdout(holdout_path)
        payloads = dict(zip(h.ids, h.payloads))
    missing = [q for q in query_ids if q not in by_id]
    if missing:
        raise InvalidInputError("no such query in the rows: " + ", ".join(repr(m) for m in missing))
    con = _console()
    for qid in query_ids:
        r = by_id[qid]
        con.rule(f"query {qid}", characters="-")
        p = payloads.get(qid, {})
        from adaptergate.decide.patterns import query_text

        if p:
            con.print(f"prompt:    {query_text(p)}", markup=False, highlight=False)
            con.print(f"gold:      {p.get('gold', p.get('expected_output'))}", markup=False, highlight=False)
        con.print(f"score:     {r['score_baseline']:.3f} -> {r['score_candidate']:.3f} (Δ={r['delta']:+.3f})",
                  markup=False, highlight=False)
        b, c = r.get("baseline_output"), r.get("candidate_output")
        if b is None and c is None:
            con.print("(no generated outputs recorded: the gate ran with a --scorer, or the query did not regress"
                      " in teacher-forced mode)", markup=False, highlight=False)
            continue
        con.print(f"baseline:  {b}", markup=False, highlight=False)
        con.print(f"candidate: {c}", markup=False, highlight=False)
        marks = {"=": "{}", "-": "[-{}-]", "+": "{{+{}+}}"}
        diff = [marks[op].format(words) for op, words in word_diff(b, c)]
        con.print(f"diff:      {' '.join(x for x in diff if x)}", markup=False, highlight=False)
