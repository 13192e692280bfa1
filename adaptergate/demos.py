"""Bundled demos that need no model: the silent slice collapse.

``adaptergate demo silent`` is adaptergate 0.5.4's headline case: 300 queries,
5 of them in a small, business-critical slice that the candidate breaks.
Aggregate-only gating accepts (the mean barely moves); ``--slice-epsilon``
rejects and names the slice.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from rich.console import Console

from adaptergate.scoring import Scorer

_INTENTS = ["order_status", "shipping_times", "password_reset", "invoice_copy", "store_hours"]
_CRITICAL = "intent=gdpr_erasure"


def _holdout_rows() -> list[dict]:
    rows = []
    for i in range(295):
        intent = _INTENTS[i % len(_INTENTS)]
        rows.append({
            "id": f"{intent}_{i:03d}",
            "prompt": f"Customer asks about {intent.replace('_', ' ')} (ticket {i})",
            "slices": [f"intent={intent}", f"lang={'en' if i % 3 else 'es'}"],
        })
    for i in range(5):
        rows.append({
            "id": f"gdpr_{i}",
            "prompt": f"Please delete all my personal data under GDPR article 17 (request {i})",
            "slices": [_CRITICAL, "lang=en"],
        })
    return rows


def _score(adapter_id: str, query: dict) -> float:
    critical = _CRITICAL in query.get("slices", [])
    if adapter_id == "candidate_v2":
        return 0.0 if critical else 1.0
    return 1.0


def run_silent(console: Console) -> None:
    """Gate the same data twice: aggregate only, then with --slice-epsilon 0.10."""
    from adaptergate.gate import GateRequest, run_gate
    from adaptergate.models import GateConfig
    from adaptergate.rendering import print_human

    workdir = Path(tempfile.mkdtemp(prefix="adaptergate-silent-"))
    holdout = workdir / "holdout.jsonl"
    holdout.write_text("".join(json.dumps(r) + "\n" for r in _holdout_rows()), encoding="utf-8")
    scorer = Scorer(spec="demo:score", single=_score)
    err = Console(stderr=True)
    for title, slice_eps in (("aggregate only (like a mean-score eval)", None), ("with --slice-epsilon 0.10", 0.10)):
        console.rule(title)
        decision = run_gate(
            GateRequest(
                tenant="demo", candidate="candidate_v2", baseline="production_v1",
                holdout_path=holdout, scorer_spec=scorer.spec, config=GateConfig(slice_epsilon=slice_eps),
            ),
            scorer=scorer,
        )
        print_human(decision, console=console, err_console=err)
        console.print()
    console.print(
        "Same data, same adapters: the aggregate moved by less than ε, one 5-query slice went"
        " 1.000 → 0.000. Only the slice rule stops it.",
        markup=False, highlight=False,
    )
