"""The curated public API: ``import adaptergate`` and what ``__all__`` promises."""

from __future__ import annotations

import subprocess
import sys

import pytest

import adaptergate
from adaptergate.examples import EXAMPLE_HOLDOUT, EXAMPLE_SCORER


def test_every_public_name_resolves():
    for name in adaptergate.__all__:
        assert getattr(adaptergate, name) is not None, name
    assert set(adaptergate.__all__) <= set(dir(adaptergate))
    with pytest.raises(AttributeError):
        adaptergate.not_a_name  # noqa: B018


def test_import_is_light():
    """Nothing heavy (pydantic models, numpy, the ML stack) is imported by ``import adaptergate``."""
    code = ("import sys, adaptergate; heavy = [m for m in ('torch', 'numpy', 'pydantic', 'jinja2', 'httpx', 'vllm')"
            " if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_run_gate_with_options_rejects_the_broken_candidate():
    d = adaptergate.run_gate(tenant="acme", holdout=str(EXAMPLE_HOLDOUT), candidate="adapter_bad_v19",
                             baseline="adapter_good_v18", scorer=EXAMPLE_SCORER, slice_epsilon=0.10)
    assert isinstance(d, adaptergate.GateDecision)
    assert d.accepted is False and d.driver_slice_tag is not None
    assert d.rejected_by, "why it rejected is data"


def test_run_gate_with_a_job_and_options_agree():
    opts = adaptergate.GateOptions(tenant="acme", holdout=EXAMPLE_HOLDOUT, candidate="adapter_good_v19",
                                   baseline="adapter_good_v18", scorer=EXAMPLE_SCORER)
    a = adaptergate.run_gate(opts)
    b = adaptergate.run_gate(adaptergate.build_job(opts))
    assert a.accepted == b.accepted and a.delta == b.delta and a.reason == b.reason


def test_run_gate_errors_are_the_hierarchy():
    with pytest.raises(TypeError, match="unknown options: nonsense"):
        adaptergate.run_gate(tenant="acme", nonsense=1)
    with pytest.raises(adaptergate.UsageError) as err:
        adaptergate.run_gate(tenant="acme")  # no holdout
    assert adaptergate.exit_code_for(err.value) == adaptergate.ExitCode.INVALID_INPUT
    with pytest.raises(adaptergate.InvalidInputError):
        adaptergate.run_gate(tenant="acme", holdout="/nonexistent/h.jsonl", candidate="a", baseline="b",
                             scorer=EXAMPLE_SCORER)
