"""Options become a gate job in one place: the names are shared by every front end."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from adaptergate.action import INPUT_NAMES
from adaptergate.cli.gate import gate
from adaptergate.errors import UsageError
from adaptergate.manifest.model import ManifestGate
from adaptergate.models import SETTING_NAMES, GateConfig
from adaptergate.pipeline.options import MANIFEST_OVERRIDES, GateOptions, build_job, options_from_strings
from adaptergate.pipeline.settings import TenantSettings

NOT_ACTION_INPUTS = {"require_calibration", "max_line_bytes", "rows_out", "trust_remote_code",
                     "judge_reasoning_tokens", "judge_concurrency"}


def test_every_option_is_a_gate_parameter_and_an_action_input_of_the_same_name():
    params = set(inspect.signature(gate).parameters)
    names = set(GateOptions.names())
    assert names <= params, names - params
    inputs = {n.replace("-", "_") for n in INPUT_NAMES}
    assert names - NOT_ACTION_INPUTS <= inputs, (names - NOT_ACTION_INPUTS) - inputs
    assert "trust_remote_code" not in inputs  # command line only


def test_settings_are_derived_from_gate_config():
    assert set(SETTING_NAMES) == set(GateConfig.model_fields) - {"require_calibration", "sample", "sample_seed"}
    assert set(SETTING_NAMES) <= set(GateOptions.names())
    assert set(TenantSettings.model_fields) == {*SETTING_NAMES, "calibration"}
    manifest = set(ManifestGate.model_fields) - {"judge"}
    assert manifest <= set(GateOptions.names()) and manifest <= set(MANIFEST_OVERRIDES) | {"metric", "eval_mode"}


def test_strings_are_converted_by_field_type():
    o = options_from_strings({"epsilon": "0.05", "slice_min_size": "4", "strict": "TRUE", "decision": "Threshold",
                              "stop": "###\n\nEND\n", "holdout": "h.jsonl", "tenant": " acme ", "alpha": ""})
    assert (o.epsilon, o.slice_min_size, o.strict, o.decision) == (0.05, 4, True, "threshold")
    assert o.stop == ("###", "END") and o.holdout == Path("h.jsonl") and o.tenant == "acme" and o.alpha is None


@pytest.mark.parametrize("name, value, message", [
    ("epsilon", "two percent", "input 'epsilon' must be a number"),
    ("slice_min_size", "3.5", "input 'slice-min-size' must be a whole number"),
    ("strict", "maybe", "input 'strict' must be true or false"),
    ("on_inconclusive", "shrug", "input 'on-inconclusive' must be one of accept, reject"),
])
def test_a_bad_string_is_one_usage_line(name, value, message):
    with pytest.raises(UsageError, match=message):
        options_from_strings({name: value})


def test_layering_and_misfits():
    policy = GateOptions(epsilon=0.02, metric="exact", judge_pairwise=True)
    given = GateOptions(epsilon=0.05, batch_size=8, strict=True)
    merged = given.over(policy, only=MANIFEST_OVERRIDES)
    assert (merged.epsilon, merged.batch_size, merged.strict, merged.judge_pairwise) == (0.05, 8, None, True)
    base = GateOptions(tenant="acme", holdout=Path("h.jsonl"))
    for opts, message in (
        (base.replace(base_model="b"), "--base-model needs --baseline-adapter and --candidate-adapter"),
        (base.replace(metric="judge"), "--metric judge scores generated answers"),
        (base.replace(judge_url="http://j"), "--judge-url goes with --metric judge"),
        (base.replace(trust_remote_code=True), "--trust-remote-code goes with --base-model"),
        (GateOptions(holdout=Path("h")), "Missing option '--tenant'"),
    ):
        with pytest.raises(UsageError, match=message):
            build_job(opts)
    job = build_job(base.replace(scorer="m:f", epsilon=0.1, extra={"holdout_label": "x", "unknown": 1}))
    assert job.settings["epsilon"] == 0.1 and job.holdout_label == "x" and job.scorer_spec == "m:f"


# --------------------------------------------------------------------------
# One boolean parser for every switch (Action inputs, options as strings, comment)
# --------------------------------------------------------------------------


def test_one_bool_parser_for_every_switch():
    from adaptergate.action.inputs import Inputs
    from adaptergate.pipeline.options import BOOL_SPELLINGS, parse_bool

    for text in ("true", "True", "TRUE", " true ", "on", "yes", "1"):
        assert parse_bool(text) is True, text
    for text in ("false", "False", "FALSE", "off", "no", "0"):
        assert parse_bool(text) is False, text
    assert parse_bool("maybe") is None and parse_bool("") is None
    inputs = Inputs({"INPUT_CHECK-RUN": "False", "INPUT_COMMENT": "TRUE", "INPUT_STRICT": "yes"})
    assert inputs.bool("check-run") is False
    assert inputs.choice("comment", ("on", "off", "on-failure"), "on") == "on"
    assert Inputs({"INPUT_COMMENT": "false"}).choice("comment", ("on", "off", "on-failure")) == "off"
    assert Inputs({"INPUT_COMMENT": "On-Failure"}).choice("comment", ("on", "off", "on-failure")) == "on-failure"
    # every spelling Inputs.bool takes is one options_from_strings takes, and the reverse
    for text, flag in BOOL_SPELLINGS.items():
        assert Inputs({"INPUT_STRICT": text.upper()}).bool("strict") is flag
        assert options_from_strings({"strict": text.upper()}).strict is flag
    with pytest.raises(UsageError, match="input 'strict' must be true or false, got 'sure'"):
        options_from_strings({"strict": "sure"})
    with pytest.raises(UsageError, match="input 'check-run' must be true or false, got 'sure'"):
        Inputs({"INPUT_CHECK-RUN": "sure"}).bool("check-run")
    with pytest.raises(UsageError, match=r"input 'decision' must be one of stat, threshold, got 'on'"):
        Inputs({"INPUT_DECISION": "on"}).choice("decision", ("stat", "threshold"))  # not a switch
