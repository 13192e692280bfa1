"""The gate on real adapters: a tiny Llama, two PEFT LoRA adapters trained in the test setup.

Built once per session by adaptergate.demos.tinymodel (the same builder `adaptergate
demo` uses); the candidate was trained on data where refund answers were
corrupted.
"""

from __future__ import annotations

import json
import shutil

import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")

from adaptergate.cli.app import main  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def cache_root(demo_cache_root):
    return demo_cache_root


@pytest.fixture(scope="session")
def assets(demo_assets):
    return demo_assets


def test_demo_command_rejects_and_names_the_refund_slice(assets, cache_root, capsys, monkeypatch):
    monkeypatch.setenv("ADAPTERGATE_CACHE", str(cache_root))
    monkeypatch.setenv("ADAPTERGATE_PROGRESS", "0")
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "REJECTED — FAIL" in out
    assert "DRIVER SLICE: intent=refund" in out
    assert "baseline 'start refund' -> candidate 'cancel order'" in out


def _gate(assets, capsys, *extra, cache=None):
    argv = [
        "gate", "--tenant", "demo", "--holdout", str(assets.holdout), "--base-model", str(assets.base_dir),
        "--baseline-adapter", str(assets.baseline_adapter), "--candidate-adapter", str(assets.candidate_adapter),
        "--slice-epsilon", "0.10", "--format", "json", *extra,
    ]
    if cache is not None:
        argv += ["--cache-dir", str(cache)]
    code = main(argv)
    out, err = capsys.readouterr()
    return code, json.loads(out), err


def test_real_adapters_reject_with_the_corrupted_intent_as_driver(assets, capsys, tmp_path):
    code, d, err = _gate(assets, capsys, cache=tmp_path / "c1")
    assert code == 1 and d["verdict"] == "FAIL"
    assert d["driver_slice_tag"] == f"intent={assets.corrupted_intent}"
    assert d["evaluation"]["mode"] == "teacher-forced"  # exact match: no decode loop
    failing = [r for r in d["per_query"] if r["delta"] < 0]
    assert failing and all(r["candidate_output"] is not None for r in failing)
    assert all(r["baseline_output"] != r["candidate_output"] for r in failing)
    assert "Traceback" not in err


def test_teacher_forced_and_generation_give_identical_verdicts(assets, capsys, tmp_path):
    _, tf, _ = _gate(assets, capsys, "--eval-mode", "teacher-forced", cache=tmp_path / "a")
    _, gen, _ = _gate(assets, capsys, "--eval-mode", "generate", cache=tmp_path / "b")
    assert tf["verdict"] == gen["verdict"] and tf["driver_slice_tag"] == gen["driver_slice_tag"]
    assert [(r["query_id"], r["score_baseline"], r["score_candidate"]) for r in tf["per_query"]] == [
        (r["query_id"], r["score_baseline"], r["score_candidate"]) for r in gen["per_query"]
    ]
    assert gen["evaluation"]["mode"] == "generate"


def test_unchanged_baseline_is_not_rescored(assets, capsys, tmp_path):
    cache = tmp_path / "cache"
    _, first, _ = _gate(assets, capsys, cache=cache)
    _, second, _ = _gate(assets, capsys, cache=cache)
    n = first["holdout_size"]
    assert first["evaluation"]["cached_baseline_queries"] == 0
    assert second["evaluation"]["cached_baseline_queries"] == n
    assert [r["score_baseline"] for r in first["per_query"]] == [r["score_baseline"] for r in second["per_query"]]
    assert second["verdict"] == first["verdict"]


def test_review_shows_both_answers(assets, capsys, tmp_path):
    rows = tmp_path / "rows.jsonl"
    _gate(assets, capsys, "--rows-out", str(rows), cache=tmp_path / "c")
    failing = [json.loads(x) for x in rows.read_text().splitlines() if json.loads(x)["delta"] < 0]
    qid = failing[0]["query_id"]
    assert main(["review", "--query", qid, "--rows", str(rows), "--holdout", str(assets.holdout)]) == 0
    out = capsys.readouterr().out
    assert f"query {qid}" in out and "baseline:" in out and "candidate:" in out and "diff:" in out
    assert failing[0]["candidate_output"] in out


def test_pickle_adapter_is_refused_with_exit_2(assets, capsys, tmp_path):
    bad = tmp_path / "pickled"
    shutil.copytree(assets.candidate_adapter, bad)
    (bad / "adapter_model.safetensors").rename(bad / "adapter_model.bin")
    code = main([
        "gate", "--tenant", "demo", "--holdout", str(assets.holdout), "--base-model", str(assets.base_dir),
        "--baseline-adapter", str(assets.baseline_adapter), "--candidate-adapter", str(bad),
    ])
    err = capsys.readouterr().err
    assert code == 2 and "pickle" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_mixed_adapter_batches_match_one_adapter_at_a_time(assets):
    from adaptergate.holdout.store import load_holdout
    from adaptergate.backends.base import GenerationSettings
    from adaptergate.backends.peft import AdapterRunner

    h = load_holdout(assets.holdout)
    prompts = [p["prompt"] for p in h.payloads[:12]]
    runner = AdapterRunner(
        assets.base_dir, {"b": assets.baseline_adapter, "c": assets.candidate_adapter},
        GenerationSettings(batch_size=8, threads=1),
    )
    names = ["b", "c"] * 6
    mixed = runner.generate(prompts, names, max_new_tokens=6)
    alone = [runner.generate([p], [n], max_new_tokens=6)[0] for p, n in zip(prompts, names)]
    assert mixed == alone and runner.stats.mixed_batch_fallbacks == 0


def test_a_refused_mixed_batch_falls_back_to_one_adapter_at_a_time(assets):
    """Where PEFT refuses ``adapter_names=`` (some layer types and quantisations do), the
    runner resets the adapter state and splits each batch by adapter: same answers,
    same teacher-forced verdicts, and the fallback is counted."""
    from adaptergate.holdout.store import load_holdout
    from adaptergate.backends.base import GenerationSettings
    from adaptergate.backends.peft import AdapterRunner

    h = load_holdout(assets.holdout)
    prompts = [p["prompt"] for p in h.payloads[:12]]
    golds = [p["gold"] for p in h.payloads[:12]]
    names = ["b", "c", "c", "b"] * 3
    runner = AdapterRunner(
        assets.base_dir, {"b": assets.baseline_adapter, "c": assets.candidate_adapter},
        GenerationSettings(batch_size=8, threads=1),
    )
    want_text = runner.generate(prompts, names, max_new_tokens=6)
    want_tf = runner.teacher_forced(prompts, golds, names)
    assert runner.stats.mixed_batch_fallbacks == 0

    model = runner.model
    real_generate, real_forward = model.generate, model.forward
    refused = []

    def refuse_mixed(real):
        def call(*args, **kwargs):
            if kwargs.get("adapter_names") is not None:
                refused.append(real.__name__)
                raise ValueError("mixed adapter batches are not supported for this layer")
            kwargs.pop("adapter_names", None)
            return real(*args, **kwargs)
        return call

    model.generate = refuse_mixed(real_generate)
    model.forward = refuse_mixed(real_forward)
    got_text = runner.generate(prompts, names, max_new_tokens=6)
    got_tf = runner.teacher_forced(prompts, golds, names)
    assert got_text == want_text
    assert got_tf[0] == want_tf[0]
    assert got_tf[1] == pytest.approx(want_tf[1], abs=1e-4)
    # two batches (8 + 4 rows) each for generation and for teacher forcing
    assert runner.stats.mixed_batch_fallbacks == 4 and len(refused) == 4
    assert set(want_tf[0]) == {True, False}  # the comparison is not vacuous: both outcomes occur


def test_shared_base_is_loaded_once_and_lent_back_clean(assets, monkeypatch):
    """Inside shared_base() runners borrow one loaded base: the second runner (adapters in
    the other roles) answers exactly as a runner on a freshly loaded base, so no LoRA layer
    of the first is left behind; a base never given back is not lent again."""
    from adaptergate.backends import peft as runner_mod
    from adaptergate.holdout.store import load_holdout
    from adaptergate.backends.base import GenerationSettings
    from adaptergate.backends.peft import AdapterRunner, shared_base

    h = load_holdout(assets.holdout)
    prompts = [p["prompt"] for p in h.payloads[:8]]
    names = ["x", "y"] * 4
    settings = GenerationSettings(batch_size=8, threads=1)
    swapped = {"x": assets.candidate_adapter, "y": assets.baseline_adapter}
    fresh = AdapterRunner(assets.base_dir, swapped, settings)
    want = fresh.generate(prompts, names, max_new_tokens=6)
    fresh.close()
    assert fresh.model is None

    loads = []
    real_load = runner_mod.load_causal_lm
    monkeypatch.setattr(runner_mod, "load_causal_lm", lambda *a, **k: loads.append(a[0]) or real_load(*a, **k))
    with shared_base() as pool:
        first = AdapterRunner(assets.base_dir, {"x": assets.baseline_adapter, "y": assets.candidate_adapter}, settings)
        other = first.generate(prompts, names, max_new_tokens=6)
        first.close()
        second = AdapterRunner(assets.base_dir, swapped, settings)
        got = second.generate(prompts, names, max_new_tokens=6)
        second.close()
        assert pool.loads == 1 and len(loads) == 1
        assert got == want and got != other  # the roles really swapped, and nothing of `first` leaked

        AdapterRunner(assets.base_dir, swapped, settings)  # dies without close(): adapters still attached
        third = AdapterRunner(assets.base_dir, swapped, settings)
        assert pool.loads == 2  # a fresh load, not the base that still carries adapters
        assert third.generate(prompts, names, max_new_tokens=6) == want
        third.close()
