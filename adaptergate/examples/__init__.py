"""Bundled example: a holdout and a deterministic mock scorer (no model needed)."""

from __future__ import annotations

from pathlib import Path

EXAMPLES_DIR = Path(__file__).parent
EXAMPLE_HOLDOUT = EXAMPLES_DIR / "acme_holdout.jsonl"
EXAMPLE_SCORER = "adaptergate.examples.mock_scorer:score"
EXAMPLE_TENANT = "acme"
EXAMPLE_CANDIDATE = "adapter_bad_v19"
EXAMPLE_BASELINE = "adapter_good_v18"
