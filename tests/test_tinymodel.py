"""The offline demo's tiny model and adapters (adaptergate.demos.tinymodel).

One real build per session (about 20 s on one slow CPU core), loaded back
from disk the way a runner would: transformers + peft, offline, greedy
generation with left padding.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")
pytest.importorskip("tokenizers")

from adaptergate.demos import tinymodel  # noqa: E402
from adaptergate.holdout.store import load_holdout  # noqa: E402

pytestmark = [
    pytest.mark.slow,
    # peft 0.21 calls a transformers API that transformers 5 deprecates.
    pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing.*:FutureWarning"),
]


@pytest.fixture(scope="session")
def offline_env():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        mp.setenv("OMP_NUM_THREADS", "1")
        previous = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def built(offline_env, tmp_path_factory):
    root = tmp_path_factory.mktemp("cache") / tinymodel.CACHE_SUBDIR
    messages: list[str] = []
    t0 = time.perf_counter()
    assets = tinymodel.build_demo_assets(root, seed=0, progress=messages.append)
    seconds = time.perf_counter() - t0
    print(f"\ndemo build: {seconds:.1f}s; " + messages[-1])
    return assets, seconds, messages


@pytest.fixture(scope="session")
def loaded(built):
    """Base + both adapters, loaded from disk as a runner would."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assets = built[0]
    tokenizer = AutoTokenizer.from_pretrained(assets.base_dir, local_files_only=True)
    base = AutoModelForCausalLM.from_pretrained(assets.base_dir, local_files_only=True)
    model = PeftModel.from_pretrained(
        base, assets.baseline_adapter, adapter_name="baseline", local_files_only=True
    )
    model.load_adapter(assets.candidate_adapter, adapter_name="candidate")
    model.eval()
    rows = [json.loads(line) for line in assets.holdout.read_text(encoding="utf-8").splitlines()]
    return tokenizer, model, rows


def _generate(model, tokenizer, prompts, max_new_tokens):
    outs = []
    for start in range(0, len(prompts), 64):
        enc = tokenizer(prompts[start : start + 64], return_tensors="pt", padding=True)
        with torch.no_grad():
            gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False)
        new = gen[:, enc["input_ids"].shape[1] :]
        outs.extend(t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True))
    return outs


def _accuracy_by_intent(rows, outputs):
    hits: dict[str, list[bool]] = {}
    for row, out in zip(rows, outputs):
        intent = next(s for s in row["slices"] if s.startswith("intent="))[len("intent="):]
        hits.setdefault(intent, []).append(out == row["gold"])
    return {k: sum(v) / len(v) for k, v in hits.items()}


@pytest.fixture(scope="session")
def answers(loaded):
    tokenizer, model, rows = loaded
    prompts = [r["prompt"] for r in rows]
    longest = max(len(tokenizer(r["gold"], add_special_tokens=False)["input_ids"]) for r in rows)
    out = {}
    for name in ("baseline", "candidate"):
        model.set_adapter(name)
        out[name] = _generate(model, tokenizer, prompts, longest + 1)
    with model.disable_adapter():
        out["base"] = _generate(model, tokenizer, prompts, longest + 1)
    model.set_adapter("baseline")
    return out


def test_import_stays_light():
    code = (
        "import sys, adaptergate.demos.tinymodel;"
        " heavy = {'torch', 'transformers', 'peft', 'tokenizers'};"
        " print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("ADAPTERGATE_CACHE", str(tmp_path))
    assert tinymodel.default_cache_dir() == tmp_path / "demo-v1"
    monkeypatch.delenv("ADAPTERGATE_CACHE")
    assert tinymodel.default_cache_dir() == Path.home() / ".cache" / "adaptergate" / "demo-v1"


def test_task_holdout_is_disjoint_and_sliced():
    train, holdout = tinymodel.make_task(0)
    assert 120 <= len(holdout) <= 200
    assert not {r.prompt for r in train} & {r.prompt for r in holdout}
    assert len({r.prompt for r in holdout}) == len(holdout)
    assert len({r.id for r in holdout}) == len(holdout)
    assert {r.intent for r in holdout} == set(tinymodel.ANSWERS) == {r.intent for r in train}
    assert {r.lang for r in holdout} == {"en", "es"}
    assert tinymodel.CORRUPTED_INTENT in tinymodel.ANSWERS
    assert tinymodel.make_task(0) == (train, holdout)
    assert tinymodel.make_task(1) != (train, holdout)


def test_files_exist_and_load_offline(built, loaded):
    assets, _, messages = built
    tokenizer, model, rows = loaded
    assert assets.root.is_dir() and assets.corrupted_intent == "refund"
    for adapter in (assets.baseline_adapter, assets.candidate_adapter):
        assert (adapter / "adapter_config.json").is_file()
        assert (adapter / "adapter_model.safetensors").is_file()
        assert not list(adapter.glob("*.bin")) and not list(adapter.glob("*.pt"))
        config = json.loads((adapter / "adapter_config.json").read_text())
        assert config["peft_type"] == "LORA" and config["r"] == 8
        assert Path(config["base_model_name_or_path"]) == assets.base_dir
    assert (assets.base_dir / "model.safetensors").is_file()
    assert not list(assets.base_dir.glob("*.bin"))
    assert tokenizer.padding_side == "left"
    assert None not in (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.bos_token_id)
    assert tokenizer.pad_token_id != tokenizer.eos_token_id
    assert 100 < len(tokenizer) < 1000
    assert model.base_model.model.config.model_type == "llama"
    assert set(model.peft_config) == {"baseline", "candidate"}
    manifest = json.loads((assets.root / "build.json").read_text())
    assert manifest["version"] == tinymodel.BUILD_VERSION and manifest["seed"] == 0
    assert any("step" in m for m in messages)
    # The project's own loader accepts the holdout.
    holdout = load_holdout(assets.holdout)
    assert len(holdout) == len(rows)
    assert all(any(s.startswith("intent=") for s in sl) for sl in holdout.slices)
    assert all(any(s.startswith("lang=") for s in sl) for sl in holdout.slices)
    assert not list(assets.root.parent.glob(".*build*"))


def test_accuracy_story(loaded, answers):
    _, _, rows = loaded
    corrupted = tinymodel.CORRUPTED_INTENT
    base = _accuracy_by_intent(rows, answers["base"])
    baseline = _accuracy_by_intent(rows, answers["baseline"])
    candidate = _accuracy_by_intent(rows, answers["candidate"])
    print(f"\nbase {base}\nbaseline {baseline}\ncandidate {candidate}")
    assert all(acc >= 0.95 for acc in baseline.values()), baseline
    assert candidate[corrupted] <= 0.10, candidate
    assert all(acc >= 0.95 for k, acc in candidate.items() if k != corrupted), candidate
    # The adapters, not the base, know the mapping.
    assert sum(base.values()) / len(base) < 0.5, base
    # The candidate answers the corrupted intent with the answer it was taught.
    taught = tinymodel.ANSWERS[tinymodel.CORRUPTED_AS]
    said = Counter(
        out for row, out in zip(rows, answers["candidate"])
        if f"intent={corrupted}" in row["slices"]
    )
    assert said.most_common(1)[0][0] == taught


def test_cache_hit_does_not_train(built, monkeypatch):
    assets = built[0]
    stamps = {p: p.stat().st_mtime_ns for p in assets.root.rglob("*")}

    def boom(*args, **kwargs):
        raise AssertionError("a cache hit must not train")

    monkeypatch.setattr(tinymodel, "_train", boom)
    t0 = time.perf_counter()
    again = tinymodel.build_demo_assets(assets.root, seed=0)
    assert time.perf_counter() - t0 < 1.0
    assert again == assets
    assert {p: p.stat().st_mtime_ns for p in assets.root.rglob("*")} == stamps
    # Another seed, or a changed recipe, is not a hit.
    assert not tinymodel._is_complete(assets.root, seed=1)
    monkeypatch.setattr(tinymodel, "BUILD_VERSION", "something-else")
    assert not tinymodel._is_complete(assets.root, seed=0)


def test_failed_forced_rebuild_keeps_the_old_build(built, monkeypatch):
    assets = built[0]
    before = (assets.candidate_adapter / "adapter_model.safetensors").read_bytes()

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(tinymodel, "_train", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        tinymodel.build_demo_assets(assets.root, seed=0, force=True)
    assert tinymodel._is_complete(assets.root, seed=0)
    assert (assets.candidate_adapter / "adapter_model.safetensors").read_bytes() == before
    assert not list(assets.root.parent.glob(".*build*"))


def _short_recipe(monkeypatch):
    monkeypatch.setattr(tinymodel, "BASE_STEPS", 6)
    monkeypatch.setattr(tinymodel, "ADAPTER_STEPS", 6)
    monkeypatch.setattr(tinymodel, "_story_problems", lambda accuracy: [])


def test_interrupted_build_leaves_nothing_complete(offline_env, tmp_path, monkeypatch):
    _short_recipe(monkeypatch)
    real_train = tinymodel._train
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(kwargs.get("what"))
        if len(calls) == 2:  # the base is trained and saved; now the first adapter
            raise KeyboardInterrupt
        return real_train(*args, **kwargs)

    monkeypatch.setattr(tinymodel, "_train", interrupted)
    monkeypatch.setenv("ADAPTERGATE_CACHE", str(tmp_path / "agcache"))  # the build's lock file goes there
    root = tmp_path / "demo-v1"
    with pytest.raises(KeyboardInterrupt):
        tinymodel.build_demo_assets(root, seed=0)
    assert calls == ["base", "baseline adapter"]
    assert not root.exists()
    assert not tinymodel._is_complete(root, seed=0)
    assert [p.name for p in tmp_path.iterdir()] == ["agcache"]  # no lock file beside the build


def test_killed_build_leftovers_are_swept(offline_env, tmp_path, monkeypatch):
    """A build killed outright (SIGKILL) leaves its temp dir; the next build sweeps it."""
    _short_recipe(monkeypatch)
    monkeypatch.setenv("ADAPTERGATE_CACHE", str(tmp_path / "agcache"))  # the build's lock file goes there
    root = tmp_path / "demo-v1"
    (tmp_path / ".demo-v1.build-dead").mkdir()
    (tmp_path / ".demo-v1.build-dead" / "base").mkdir()
    root.mkdir()  # a half-written target without a manifest is not a build
    (root / "holdout.jsonl").write_text("")
    assets = tinymodel.build_demo_assets(root, seed=0)
    assert tinymodel._is_complete(root, seed=0) and assets.root == root
    assert sorted(p.name for p in tmp_path.iterdir()) == ["agcache", "demo-v1"]


def test_same_seed_same_bytes(offline_env, tmp_path, monkeypatch):
    """Determinism of the whole pipeline, on a shortened recipe to stay fast."""
    _short_recipe(monkeypatch)
    a = tinymodel.build_demo_assets(tmp_path / "a", seed=3)
    b = tinymodel.build_demo_assets(tmp_path / "b", seed=3)
    for rel in (
        "base/model.safetensors",
        "base/tokenizer.json",
        "adapters/baseline/adapter_model.safetensors",
        "adapters/candidate/adapter_model.safetensors",
        "holdout.jsonl",
    ):
        assert (a.root / rel).read_bytes() == (b.root / rel).read_bytes(), rel
    assert (a.baseline_adapter / "adapter_model.safetensors").read_bytes() != (
        a.candidate_adapter / "adapter_model.safetensors"
    ).read_bytes()
