"""Adapter validation against the base model, without loading either.

Fixtures are real: tiny Llama models saved by transformers and LoRA adapters
saved by PEFT. torch builds them here; :mod:`adaptergate.backends.adapters` itself
never imports it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")
safetensors_torch = pytest.importorskip("safetensors.torch")

from adaptergate.backends.adapters import validate_adapter  # noqa: E402
from adaptergate.backends.base_model import check_base_hash, inspect_base  # noqa: E402
from adaptergate.backends.safetensors import read_safetensors_header  # noqa: E402
from adaptergate.errors import InvalidInputError, exit_code_for  # noqa: E402

torch.set_num_threads(1)

TINY = dict(intermediate_size=64, num_attention_heads=4, num_key_value_heads=4, vocab_size=64)
NAME = "candidate adapter"


def llama(hidden: int = 32, layers: int = 2):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(hidden_size=hidden, num_hidden_layers=layers, **TINY))


def save_adapter(model, out: Path, *, safe: bool = True, **lora) -> Path:
    from peft import LoraConfig, get_peft_model

    lora.setdefault("r", 4)
    lora.setdefault("lora_alpha", 8)
    lora.setdefault("target_modules", ["q_proj", "v_proj"])
    lora.setdefault("task_type", "CAUSAL_LM")
    get_peft_model(model, LoraConfig(**lora)).save_pretrained(out, safe_serialization=safe)
    return out


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo")
    z = {}
    llama().save_pretrained(root / "base2", safe_serialization=True)
    llama(layers=3).save_pretrained(root / "base3", safe_serialization=True)
    llama().save_pretrained(root / "base2_sharded", safe_serialization=True, max_shard_size="20KB")
    z["ok"] = save_adapter(llama(), root / "ok")
    z["h48"] = save_adapter(llama(hidden=48), root / "h48")
    z["l3"] = save_adapter(llama(layers=3), root / "l3")
    z["bin"] = save_adapter(llama(), root / "bin", safe=False)
    z["rich"] = save_adapter(
        llama(),
        root / "rich",
        target_modules=["q_proj", "v_proj", "embed_tokens"],
        modules_to_save=["lm_head"],
        rank_pattern={"v_proj": 2},
        use_dora=True,
    )
    z["root"] = root
    return z


@pytest.fixture(scope="module")
def base(zoo):
    return inspect_base(zoo["root"] / "base2")


def copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def edit_config(adapter: Path, **changes) -> None:
    p = adapter / "adapter_config.json"
    cfg = json.loads(p.read_text())
    cfg.update(changes)
    p.write_text(json.dumps(cfg))


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def expect_error(fn, *args, contains=(), **kwargs) -> InvalidInputError:
    """The CLI contract: exit code 2, one line, and the words that matter."""
    with pytest.raises(InvalidInputError) as info:
        fn(*args, **kwargs)
    exc = info.value
    assert exit_code_for(exc) == 2
    assert "\n" not in str(exc)
    assert "Traceback" not in str(exc)
    for piece in contains:
        assert piece in str(exc), (piece, str(exc))
    return exc


# ---------------------------------------------------------------- valid adapters


def test_base_is_read_from_headers(zoo, base):
    st = zoo["root"] / "base2" / "model.safetensors"
    assert base.model_type == "llama"
    assert base.num_layers == 2
    assert base.files == [st]
    assert base.sha256 == sha(st)
    assert base.weights["model.layers.1.self_attn.q_proj.weight"].shape == (32, 32)
    assert base.weights["lm_head.weight"].dtype == "F32"
    assert base.shapes_known and base.warnings == []
    from safetensors import safe_open

    with safe_open(st, "pt") as f:
        assert {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()} == {
            k: t.shape for k, t in base.weights.items()
        }


def test_valid_adapter_passes(zoo, base):
    info = validate_adapter(zoo["ok"], base, name=NAME)
    assert info.peft_type == "LORA" and info.task_type == "CAUSAL_LM"
    assert info.r == 4 and info.lora_alpha == 8.0
    assert sorted(info.target_modules) == ["q_proj", "v_proj"]
    assert info.modules == [
        "model.layers.0.self_attn.q_proj",
        "model.layers.0.self_attn.v_proj",
        "model.layers.1.self_attn.q_proj",
        "model.layers.1.self_attn.v_proj",
    ]
    assert info.weights_file == zoo["ok"] / "adapter_model.safetensors"
    assert info.sha256 == sha(info.weights_file)
    assert info.shapes_checked is True
    assert info.warnings == []
    # the manifest will pin the hash
    validate_adapter(zoo["ok"], base, expected_sha256="sha256:" + info.sha256.upper())


def test_rank_pattern_dora_embeddings_and_modules_to_save(zoo, base):
    info = validate_adapter(zoo["rich"], base, name=NAME)
    assert "model.embed_tokens" in info.modules
    assert info.rank_pattern == {"v_proj": 2}
    assert "lm_head" in info.saved_modules
    assert info.shapes_checked


def test_sharded_base(zoo, base):
    sharded = inspect_base(zoo["root"] / "base2_sharded")
    assert len(sharded.files) > 1
    assert sharded.weights == base.weights
    listing = "".join(f"{sha(f)}  {f.name}\n" for f in sorted(sharded.files))
    assert sharded.sha256 == hashlib.sha256(listing.encode()).hexdigest()
    assert validate_adapter(zoo["ok"], sharded).modules


def test_conv1d_base_gpt2(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    cfg = GPT2Config(n_embd=32, n_layer=2, n_head=4, vocab_size=64, n_positions=16)
    GPT2LMHeadModel(cfg).save_pretrained(tmp_path / "gpt2", safe_serialization=True)
    save_adapter(GPT2LMHeadModel(cfg), tmp_path / "ad", target_modules=["c_attn", "c_fc"],
                 fan_in_fan_out=True)
    info = validate_adapter(tmp_path / "ad", inspect_base(tmp_path / "gpt2"))
    assert info.modules[0] == "transformer.h.0.attn.c_attn" and info.shapes_checked


# ---------------------------------------------------------------- wrong base


def test_shape_mismatch_names_module_and_both_shapes(zoo, base):
    exc = expect_error(
        validate_adapter, zoo["h48"], base, name=NAME,
        contains=(
            NAME,
            "module model.layers.0.self_attn.q_proj: lora_A shape (4, 48) does not match the "
            "base q_proj weight (32, 32): expected (4, 32)",
        ),
    )
    assert len(exc.details) > 1  # every tensor is listed in details


def test_rank_mismatch_with_config_r(zoo, base, tmp_path):
    ad = copy(zoo["ok"], tmp_path / "ad")
    edit_config(ad, r=8)
    expect_error(
        validate_adapter, ad, base, name=NAME,
        contains=("model.layers.0.self_attn.q_proj: lora_A has rank 4 (shape (4, 32))",
                  "adapter_config.json r is 8"),
    )


def test_rank_pattern_is_honoured(zoo, base, tmp_path):
    ad = copy(zoo["rich"], tmp_path / "ad")
    edit_config(ad, rank_pattern={})
    expect_error(validate_adapter, ad, base, contains=("v_proj: lora_A has rank 2", "r is 4"))
    edit_config(ad, rank_pattern={"v_proj": 3})
    expect_error(validate_adapter, ad, base, contains=("rank_pattern 'v_proj' is 3",))


def test_missing_module_names_the_layer_count(zoo, base):
    expect_error(
        validate_adapter, zoo["l3"], base, name=NAME,
        contains=("module model.layers.2.self_attn.q_proj is not in the base model "
                  "(the base has 2 layers)",),
    )


def test_adapter_for_fewer_layers_warns(zoo):
    base3 = inspect_base(zoo["root"] / "base3")
    info = validate_adapter(zoo["ok"], base3)
    assert any("model.layers.2.self_attn.q_proj" in w for w in info.warnings)


def test_keys_without_peft_prefix_are_refused(zoo, base, tmp_path):
    ad = copy(zoo["ok"], tmp_path / "ad")
    f = ad / "adapter_model.safetensors"
    sd = safetensors_torch.load_file(f)
    safetensors_torch.save_file({k.removeprefix("base_model.model."): v for k, v in sd.items()}, f)
    expect_error(validate_adapter, ad, base, contains=("lack the base_model.model. prefix",))


def test_lora_a_without_lora_b(zoo, base, tmp_path):
    ad = copy(zoo["ok"], tmp_path / "ad")
    f = ad / "adapter_model.safetensors"
    sd = safetensors_torch.load_file(f)
    del sd["base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight"]
    safetensors_torch.save_file(sd, f)
    expect_error(validate_adapter, ad, base,
                 contains=("model.layers.1.self_attn.v_proj has lora_A but no lora_B",))


def test_modules_to_save_shape_must_equal_the_base(zoo, tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    LlamaForCausalLM(LlamaConfig(hidden_size=32, num_hidden_layers=2, **{**TINY, "vocab_size": 80})
                     ).save_pretrained(tmp_path / "base80", safe_serialization=True)
    ad = copy(zoo["rich"], tmp_path / "ad")
    exc = expect_error(validate_adapter, ad, inspect_base(tmp_path / "base80"),
                       contains=("lora_embedding_A shape (4, 64) does not match the base "
                                 "embed_tokens weight (80, 32): expected (4, 80)",))
    assert any("saved weight shape (64, 32)" in d and "(80, 32)" in d and "lm_head" in d
               for d in exc.details), exc.details


# ---------------------------------------------------------------- config and files


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"peft_type": "IA3"}, "peft_type IA3 is not supported"),
        ({"task_type": "SEQ_CLS"}, "task_type SEQ_CLS is not supported"),
        ({"r": 0}, "r must be a positive integer"),
        ({"r": "4"}, "r must be a positive integer"),
        ({"target_modules": 3}, "target_modules must be a list"),
    ],
)
def test_bad_adapter_config(zoo, base, tmp_path, changes, words):
    ad = copy(zoo["ok"], tmp_path / "ad")
    edit_config(ad, **changes)
    expect_error(validate_adapter, ad, base, name=NAME, contains=(NAME, words))


def test_task_type_none_and_string_target_modules_accepted(zoo, base, tmp_path):
    ad = copy(zoo["ok"], tmp_path / "ad")
    edit_config(ad, task_type=None, target_modules=r".*\.(q_proj|v_proj)")
    info = validate_adapter(ad, base)
    assert info.task_type is None and info.target_modules == [r".*\.(q_proj|v_proj)"]


def test_missing_and_broken_adapter_config(zoo, base, tmp_path):
    ad = copy(zoo["ok"], tmp_path / "ad")
    (ad / "adapter_config.json").write_text("{not json")
    expect_error(validate_adapter, ad, base, contains=("adapter_config.json is not valid JSON",))
    (ad / "adapter_config.json").unlink()
    expect_error(validate_adapter, ad, base, contains=("no adapter_config.json",))
    expect_error(validate_adapter, tmp_path / "nowhere", base, contains=("does not exist",))


def test_pickle_adapter_refused_unless_allowed(zoo, base):
    expect_error(
        validate_adapter, zoo["bin"], base, name=NAME,
        contains=(f"refusing to load pickle weights adapter_model.bin from {zoo['bin']}: loading "
                  "a pickle executes code; pass --allow-pickle if you trust it",),
    )
    info = validate_adapter(zoo["bin"], base, allow_pickle=True)
    assert info.shapes_checked is False
    assert info.weights_file.name == "adapter_model.bin"
    assert info.sha256 == sha(info.weights_file)
    assert info.warnings


def test_pickle_base_refused_unless_allowed(zoo, tmp_path):
    d = tmp_path / "pbase"
    d.mkdir()
    shutil.copy(zoo["root"] / "base2" / "config.json", d)
    torch.save({"x": torch.zeros(2)}, d / "pytorch_model.bin")
    expect_error(inspect_base, d, contains=("refusing to load pickle weights pytorch_model.bin",))
    pbase = inspect_base(d, allow_pickle=True)
    assert not pbase.shapes_known and pbase.weights == {} and pbase.warnings
    assert pbase.sha256 == sha(d / "pytorch_model.bin")
    info = validate_adapter(zoo["ok"], pbase)
    assert info.shapes_checked is False and len(info.modules) == 4 and info.warnings


def test_adapter_hash_mismatch(zoo, base):
    expect_error(validate_adapter, zoo["ok"], base, expected_sha256="0" * 64,
                 contains=("sha256 of", "adapter_model.safetensors is", "expected " + "0" * 64))


def test_base_hash(base):
    check_base_hash(base, base.sha256)
    check_base_hash(base, "sha256:" + base.sha256.upper())
    expect_error(check_base_hash, base, "f" * 64,
                 contains=(f"base model sha256 is {base.sha256}, expected {'f' * 64}",))
    expect_error(check_base_hash, base, "nope", contains=("64 hex digits",))


def test_truncated_base_safetensors_names_the_file(zoo, tmp_path):
    d = copy(zoo["root"] / "base2", tmp_path / "b")
    f = d / "model.safetensors"
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])
    expect_error(inspect_base, d, contains=(str(f), "truncated"))
    f.write_bytes(data[:100])  # cut inside the header
    expect_error(inspect_base, d, contains=(str(f), "truncated"))
    f.write_bytes(b"PK\x03\x04 this is a zip, not safetensors" * 10)
    expect_error(inspect_base, d, contains=(str(f), "not a valid safetensors file"))
    f.write_bytes(b"")
    expect_error(read_safetensors_header, f, contains=(str(f),))


def test_truncated_adapter_safetensors(zoo, base, tmp_path):
    ad = copy(zoo["ok"], tmp_path / "ad")
    f = ad / "adapter_model.safetensors"
    f.write_bytes(f.read_bytes()[:-10])
    expect_error(validate_adapter, ad, base, contains=(str(f), "truncated"))


def test_base_must_be_a_local_directory(tmp_path):
    expect_error(inspect_base, "meta-llama/Llama-3.2-1B",
                 contains=("base model 'meta-llama/Llama-3.2-1B' is not a local directory",
                           "HF_HUB_OFFLINE=0"))
    expect_error(inspect_base, tmp_path / "missing", contains=("does not exist",))
    (tmp_path / "cfgonly").mkdir()
    (tmp_path / "cfgonly" / "config.json").write_text("{}")
    expect_error(inspect_base, tmp_path / "cfgonly", contains=("no model.safetensors",))


# ---------------------------------------------------------------- import cost


def test_import_does_not_pull_in_torch():
    code = (
        "import sys, adaptergate.backends.adapters; "
        "heavy = [m for m in ('torch', 'safetensors', 'transformers', 'peft', 'numpy') "
        "if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent.parent)
