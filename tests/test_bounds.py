"""Every reader of pull-request content is bounded: hostile input is exit 2, never a hang or a crash.

Adapters, manifests, cards and holdouts arrive in the pull request under
review. Each test here feeds one reader a hostile version of its input (huge
slice tags, a YAML alias bomb, ``!!python`` tags, 50,000 ``target_modules``,
JSON nested 100,000 deep, oversized files) and checks the one-line exit-2
answer, directly and, where a command reads the file first, through the CLI.
No assertion is on a timing: the work itself is bounded (for the duplicate
check, rule 4 is never handed a long value).

The adapters and base models here are written by hand (a ``config.json`` and
safetensors files: 8-byte little-endian header length, JSON header, zeroed
data), so no torch is needed.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import pytest

import adaptergate.holdout.tags as tag_duplicates
from adaptergate.backends.adapters import (
    MAX_ADAPTER_CONFIG_BYTES,
    MAX_CONFIG_ENTRIES,
    MAX_NAME_CHARS,
    MAX_REGEX_CHARS,
    validate_adapter,
)
from adaptergate.backends.base_model import inspect_base
from adaptergate.backends.safetensors import read_safetensors_header
from adaptergate.cli.app import main
from adaptergate.errors import HoldoutError, InvalidInputError, exit_code_for
from adaptergate.examples import EXAMPLE_HOLDOUT
from adaptergate.holdout.store import MAX_SLICE_TAG_CHARS, add_query, import_queries, load_holdout
from adaptergate.manifest.model import (
    CARD_FILE,
    MAX_CARD_BYTES,
    MAX_MANIFEST_BYTES,
    load_manifest,
    parse_manifest,
    read_card,
)
from adaptergate.holdout.tags import MAX_TYPO_VALUE_LEN, find_duplicate_slices
from adaptergate.trust import MAX_JSON_DEPTH, json_loads_bounded, nesting_exceeds

REPO = Path(__file__).resolve().parents[1]
DEEP = 100_000
SHA0 = "0" * 64


def nested(depth: int) -> str:
    """A JSON array nested ``depth`` levels deep."""
    return "[" * depth + "]" * depth


def letters(n: int, seed: int) -> str:
    """``n`` deterministic pseudo-random lowercase letters (no runs to collapse)."""
    table = bytes(ord("a") + i % 26 for i in range(256))
    return hashlib.shake_256(str(seed).encode()).digest(n).translate(table).decode()


def expect_error(fn, *args, contains=(), **kwargs) -> InvalidInputError:
    """Exit code 2, one line, and the words that matter."""
    with pytest.raises(InvalidInputError) as info:
        fn(*args, **kwargs)
    exc = info.value
    assert exit_code_for(exc) == 2
    assert "\n" not in str(exc) and len(str(exc)) < 400, str(exc)[:500]
    for piece in contains:
        assert piece in str(exc), (piece, str(exc))
    return exc


def run_cli(argv, capsys) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    _, err = capsys.readouterr()
    return code, err


def expect_cli_error(argv, capsys, *words) -> str:
    """Through the CLI: exit 2, one line on stderr, no traceback."""
    code, err = run_cli(argv, capsys)
    assert code == 2, err
    assert "Traceback" not in err and "internal error" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


# ------------------------------------------------------------------ hand-made models


def write_safetensors(path: Path, tensors: dict[str, tuple[int, ...]]) -> Path:
    header, offset = {}, 0
    for name, shape in tensors.items():
        size = 4
        for d in shape:
            size *= d
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * offset)
    return path


def write_raw_safetensors(path: Path, header: bytes) -> Path:
    """A safetensors file with exactly this header and no data."""
    path.write_bytes(struct.pack("<Q", len(header)) + header)
    return path


H, LAYERS, RANK = 16, 2, 4


def make_base(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps({"model_type": "llama", "num_hidden_layers": LAYERS}))
    tensors = {"model.embed_tokens.weight": (64, H), "lm_head.weight": (64, H)}
    for i in range(LAYERS):
        for m in ("q_proj", "k_proj", "v_proj", "o_proj"):
            tensors[f"model.layers.{i}.self_attn.{m}.weight"] = (H, H)
    write_safetensors(root / "model.safetensors", tensors)
    return root


def make_adapter(root: Path, modules=("q_proj", "v_proj"), **config) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    cfg = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": RANK, "lora_alpha": 8,
           "target_modules": list(modules)}
    cfg.update(config)
    (root / "adapter_config.json").write_text(json.dumps(cfg))
    tensors = {}
    for i in range(LAYERS):
        for m in modules:
            prefix = f"base_model.model.model.layers.{i}.self_attn.{m}"
            tensors[f"{prefix}.lora_A.weight"] = (RANK, H)
            tensors[f"{prefix}.lora_B.weight"] = (H, RANK)
    write_safetensors(root / "adapter_model.safetensors", tensors)
    return root


@pytest.fixture()
def base(tmp_path):
    return make_base(tmp_path / "base")


@pytest.fixture()
def base_info(base):
    return inspect_base(base)


def gate_argv(tmp_path: Path, base: Path, candidate: Path) -> list:
    holdout = tmp_path / "gate_holdout.jsonl"
    holdout.write_text("".join(json.dumps({"id": f"q{i}", "prompt": "hi", "gold": "x"}) + "\n" for i in range(30)))
    baseline = make_adapter(tmp_path / "baseline")
    return ["gate", "--tenant", "t", "--holdout", holdout, "--base-model", base,
            "--baseline-adapter", baseline, "--candidate-adapter", candidate]


# ------------------------------------------------------------------ duplicate-tag check


HUGE = 400_000


def test_huge_slice_values_never_reach_the_typo_rule(monkeypatch):
    """12 values of 400 KB under one key: rule 4 indexes none of them (it would need
    hundreds of GB of deletion variants); rules 1 and 3 still see them."""
    real = tag_duplicates._neighbourhood
    seen: list[int] = []

    def bounded(value: str) -> list[str]:
        assert len(value) <= MAX_TYPO_VALUE_LEN, f"rule 4 handed a {len(value):,}-character value"
        seen.append(len(value))
        return real(value)

    monkeypatch.setattr(tag_duplicates, "_neighbourhood", bounded)
    values = [letters(HUGE, i) for i in range(12)]
    tags = [f"note={v}" for v in values]
    tags += [f"NOTE={values[0].upper()}", f"topic={values[1]}"]  # rule 1 and rule 3, on huge values
    tags += ["intent=refund_request", "intent=refund_requst"]  # an ordinary typo next to them
    findings = find_duplicate_slices(tags)
    reasons = {f.reason: f.tags for f in findings}
    assert reasons["same tag up to case/separators"] == sorted([tags[0], tags[12]])
    assert reasons["same value under keys note, topic"] == sorted([tags[1], tags[13]])
    assert reasons["likely typo (one edit apart) within key intent"] == [
        "intent=refund_request", "intent=refund_requst"]
    assert len(findings) == 3
    assert seen and max(seen) <= MAX_TYPO_VALUE_LEN


def test_typo_rule_bound_is_the_documented_length():
    at_cap = letters(MAX_TYPO_VALUE_LEN, 1)
    assert find_duplicate_slices([f"k={at_cap}", f"k={at_cap[:-1]}x"]) != []
    over = letters(MAX_TYPO_VALUE_LEN + 1, 2)
    assert find_duplicate_slices([f"k={over}", f"k={over[:-1]}x"]) == []
    assert MAX_TYPO_VALUE_LEN < MAX_SLICE_TAG_CHARS


def write_lines(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_huge_slice_tags_are_holdout_problems_naming_file_and_line(tmp_path, capsys):
    rows = [{"id": "ok", "prompt": "p", "slices": ["intent=refund"]}]
    rows += [{"id": f"q{i}", "prompt": "p", "slices": [f"note={letters(HUGE, i)}"]} for i in range(12)]
    path = write_lines(tmp_path / "h.jsonl", rows)
    with pytest.raises(HoldoutError) as info:
        load_holdout(path)
    problems = info.value.problems
    assert [p.line for p in problems] == list(range(2, 14))
    for p in problems:
        assert str(p).startswith(f"{path}:{p.line}: slice tag 'note=")
        assert f"is {HUGE + 5:,} characters, over the {MAX_SLICE_TAG_CHARS}-character cap" in str(p)
        assert len(str(p)) < 300  # the tag itself is not echoed
    code, err = run_cli(["holdout", "stats", "--holdout", path], capsys)
    assert code == 2 and "Traceback" not in err
    assert err.splitlines()[0] == f"adaptergate: error: holdout {path} is invalid: 12 problem(s)"
    assert len(err.splitlines()) == 13


@pytest.mark.parametrize("careful", [False, True], ids=["fast-path", "careful-path"])
def test_slice_tag_length_bound_is_exact(tmp_path, careful):
    at_cap = "k=" + "a" * (MAX_SLICE_TAG_CHARS - 2)
    rows = [{"id": "a", "prompt": "p", "slices": [at_cap]}]
    if careful:  # a bare tag sends the loader down its line-by-line path
        rows.append({"id": "b", "prompt": "p", "slices": ["bare"]})
    assert len(load_holdout(write_lines(tmp_path / "ok.jsonl", rows))) == len(rows)
    rows.append({"id": "c", "prompt": "p", "slices": [at_cap + "a"]})
    with pytest.raises(HoldoutError) as info:
        load_holdout(write_lines(tmp_path / "over.jsonl", rows))
    assert [(p.line, "over the 512-character cap" in p.message) for p in info.value.problems] == [
        (len(rows), True)]


def test_bundled_holdouts_and_compat054_fixtures_are_within_the_tag_bound():
    files = [Path(EXAMPLE_HOLDOUT), *sorted((REPO / "tests" / "fixtures" / "compat054").glob("*.jsonl"))]
    assert len(files) > 3
    longest = 0
    for path in files:
        holdout = load_holdout(path)
        assert len(holdout) > 0
        longest = max([longest, *(len(t) for tags in holdout.slices for t in tags)])
    assert 0 < longest <= MAX_SLICE_TAG_CHARS // 4  # the cap is generous


# ------------------------------------------------------------------ holdout JSON nesting


def deep_row(depth: int, qid: str = "deep") -> str:
    """A query line whose ``extra`` field makes the whole line ``depth`` levels deep."""
    return '{"id": "%s", "prompt": "p", "extra": %s}' % (qid, nested(depth - 1))


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 1000, DEEP])
def test_deep_holdout_line_is_a_problem(tmp_path, capsys, depth):
    """65 levels (orjson and json both parse it), 1000 (orjson parses it, json.dumps of
    it would hit Python's recursion limit later), 100,000 (neither parses it)."""
    path = write_lines(tmp_path / "h.jsonl", [{"id": "a", "prompt": "p"}, deep_row(depth)])
    with pytest.raises(HoldoutError) as info:
        load_holdout(path)
    assert [str(p) for p in info.value.problems] == [
        f"{path}:2: invalid JSON: nested deeper than {MAX_JSON_DEPTH} levels"]
    code, err = run_cli(["holdout", "validate", "--holdout", path], capsys)
    assert code == 2 and "Traceback" not in err and "nested deeper" in err


def test_holdout_nesting_bound_is_exact(tmp_path):
    path = write_lines(tmp_path / "h.jsonl", [deep_row(MAX_JSON_DEPTH)])
    assert load_holdout(path).payloads[0]["id"] == "deep"


def test_huge_integer_in_holdout_is_a_problem_not_a_crash(tmp_path, capsys):
    path = write_lines(tmp_path / "h.jsonl", ['{"id": "a", "prompt": "p", "n": %s}' % ("7" * 5000)])
    code, err = run_cli(["holdout", "validate", "--holdout", path], capsys)
    assert code == 2 and "Traceback" not in err and "internal error" not in err
    assert f"{path}:1: invalid JSON" in err


def test_import_skips_deep_lines_and_add_refuses_deep_queries(tmp_path, capsys):
    source = write_lines(tmp_path / "src.jsonl", [{"id": "a", "prompt": "p"}, deep_row(1000, "b")])
    target = tmp_path / "holdout.jsonl"
    res = import_queries(target, source, tenant="t")
    assert res.imported == ["a"]
    assert [(p.line, p.message) for p in res.skipped] == [
        (2, f"invalid JSON: nested deeper than {MAX_JSON_DEPTH} levels")]
    expect_error(add_query, target, json.loads(deep_row(500, "c")), tenant="t",
                 contains=(f"nested deeper than {MAX_JSON_DEPTH} levels",))
    assert len(load_holdout(target)) == 1


# ------------------------------------------------------------------ manifests


MANIFEST_HEAD = f"""schema_version: 1
tenants:
  acme:
    adapter: {{version: 1.0.0, path: ad, sha256: "{SHA0}"}}
    base_model: {{id: org/base}}
    holdout: h.jsonl
"""

ALIAS_BOMB = MANIFEST_HEAD + """    card:
      a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]
      a1: &a1 [*a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0]
      a2: &a2 [*a1, *a1, *a1, *a1, *a1, *a1, *a1, *a1, *a1, *a1]
      a3: &a3 [*a2, *a2, *a2, *a2, *a2, *a2, *a2, *a2, *a2, *a2]
      a4: &a4 [*a3, *a3, *a3, *a3, *a3, *a3, *a3, *a3, *a3, *a3]
      a5: &a5 [*a4, *a4, *a4, *a4, *a4, *a4, *a4, *a4, *a4, *a4]
      a6: &a6 [*a5, *a5, *a5, *a5, *a5, *a5, *a5, *a5, *a5, *a5]
      a7: &a7 [*a6, *a6, *a6, *a6, *a6, *a6, *a6, *a6, *a6, *a6]
      a8: &a8 [*a7, *a7, *a7, *a7, *a7, *a7, *a7, *a7, *a7, *a7]
"""


def test_manifest_head_is_valid():
    assert parse_manifest(MANIFEST_HEAD, "m.yaml").tenants["acme"].card is None
    # an anchor that no alias uses is harmless and stays accepted
    anchored = MANIFEST_HEAD.replace("holdout: h.jsonl", "holdout: &h h.jsonl")
    assert parse_manifest(anchored, "m.yaml").tenants["acme"].holdout == "h.jsonl"


def test_yaml_alias_bomb_manifest_is_refused(tmp_path, capsys):
    expect_error(parse_manifest, ALIAS_BOMB, "m.yaml",
                 contains=("m.yaml: line 9: YAML alias *a0 is not allowed",))
    path = tmp_path / "manifest.yaml"
    path.write_text(ALIAS_BOMB)
    expect_cli_error(["manifest", "show", "--manifest", path], capsys, f"{path}: line 9", "alias")


def test_yaml_merge_through_an_alias_is_refused():
    text = MANIFEST_HEAD.replace("    holdout: h.jsonl\n", "    holdout: h.jsonl\n    gate: {<<: *g}\n")
    text = text.replace("tenants:\n", "defaults: &g {epsilon: 0.1}\ntenants:\n")
    expect_error(parse_manifest, text, "m.yaml", contains=("alias *g",))


def test_python_tags_in_manifest_are_refused_and_never_run(tmp_path, capsys):
    marker = tmp_path / "pwned"
    apply = MANIFEST_HEAD + f"    description: !!python/object/apply:os.system ['touch {marker}']\n"
    expect_error(parse_manifest, apply, "m.yaml", contains=("not valid YAML", "python/object/apply:os.system"))
    obj = MANIFEST_HEAD.replace("tenants:\n", "tenants: !!python/object:collections.OrderedDict\n", 1)
    expect_error(parse_manifest, obj, "m.yaml", contains=("python/object:collections.OrderedDict",))
    path = tmp_path / "manifest.yaml"
    path.write_text(apply)
    expect_cli_error(["manifest", "show", "--manifest", path], capsys, "not valid YAML")
    assert not marker.exists()


@pytest.mark.parametrize("fmt", ["json", "yaml-flow", "yaml-block"])
def test_deeply_nested_manifest_is_refused(tmp_path, capsys, fmt):
    if fmt == "json":
        name, text = "manifest.json", '{"schema_version": 1, "tenants": %s}' % nested(DEEP)
        words = ("not valid JSON", f"nested deeper than {MAX_JSON_DEPTH} levels")
    elif fmt == "yaml-flow":
        name, text = "manifest.yaml", "schema_version: 1\ntenants: %s\n" % nested(DEEP)
        words = ("line 2", f"nested deeper than {MAX_JSON_DEPTH} levels")
    else:
        name = "manifest.yaml"
        text = "schema_version: 1\ntenants:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 200))
        words = (f"line {MAX_JSON_DEPTH + 2}", f"nested deeper than {MAX_JSON_DEPTH} levels")
    expect_error(parse_manifest, text, name, contains=words)
    path = tmp_path / name
    path.write_text(text)
    expect_cli_error(["manifest", "show", "--manifest", path], capsys, *words)


def test_manifest_size_is_bounded(tmp_path, capsys):
    text = MANIFEST_HEAD + "#" * MAX_MANIFEST_BYTES + "\n"
    expect_error(parse_manifest, text, "m.yaml", contains=(f"larger than the {MAX_MANIFEST_BYTES:,}-byte cap",))
    path = tmp_path / "manifest.yaml"
    path.write_text(text)
    expect_error(load_manifest, path, contains=(str(path), "larger than"))
    expect_cli_error(["manifest", "show", "--manifest", path], capsys, "larger than")
    # exactly at the cap is read (JSON, padded with whitespace: PyYAML would scan 4 MB slowly)
    small = '{"schema_version": 1, "tenants": {}}'
    path = tmp_path / "manifest.json"
    path.write_text(small + " " * (MAX_MANIFEST_BYTES - len(small)))
    assert path.stat().st_size == MAX_MANIFEST_BYTES
    assert load_manifest(path).tenants == {}


# ------------------------------------------------------------------ adapter cards


def manifest_with_adapter(tmp_path: Path) -> tuple[Path, Path]:
    """A manifest whose one tenant's adapter is valid and matches its sha256."""
    adapter = make_adapter(tmp_path / "ad")
    digest = hashlib.sha256((adapter / "adapter_model.safetensors").read_bytes()).hexdigest()
    (tmp_path / "h.jsonl").write_text('{"id": "q1", "prompt": "p"}\n')
    path = tmp_path / "manifest.yaml"
    path.write_text(MANIFEST_HEAD.replace(SHA0, digest))
    return path, adapter


def test_card_reader_accepts_a_plain_card(tmp_path, capsys):
    path, adapter = manifest_with_adapter(tmp_path)
    (adapter / CARD_FILE).write_text(json.dumps({"task": "support", "notes": nested(MAX_JSON_DEPTH - 1)}))
    assert read_card(adapter).task == "support"
    code, err = run_cli(["manifest", "validate", "--manifest", path], capsys)
    assert code == 0, err


def test_deeply_nested_card_is_refused(tmp_path, capsys):
    path, adapter = manifest_with_adapter(tmp_path)
    (adapter / CARD_FILE).write_text('{"task": "support", "notes": %s}' % nested(DEEP))
    expect_error(read_card, adapter, contains=(CARD_FILE, f"nested deeper than {MAX_JSON_DEPTH} levels"))
    expect_cli_error(["manifest", "validate", "--manifest", path], capsys, CARD_FILE, "nested deeper")
    # just past the bound: pydantic alone would have accepted it
    (adapter / CARD_FILE).write_text('{"task": "support", "notes": %s}' % nested(MAX_JSON_DEPTH))
    expect_error(read_card, adapter, contains=("nested deeper",))


def test_card_size_is_bounded(tmp_path):
    adapter = make_adapter(tmp_path / "ad")
    (adapter / CARD_FILE).write_text(json.dumps({"task": "x", "notes": "n" * MAX_CARD_BYTES}))
    expect_error(read_card, adapter, contains=(CARD_FILE, f"larger than the {MAX_CARD_BYTES:,}-byte cap"))


# ------------------------------------------------------------------ adapter_config.json


def test_hand_made_adapter_is_valid(base_info, tmp_path):
    info = validate_adapter(make_adapter(tmp_path / "ad"), base_info)
    assert len(info.modules) == LAYERS * 2 and info.shapes_checked


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("target_modules", ["q_proj", "v_proj"] + [f"mlp.unused_{i}" for i in range(50_000)]),
        ("modules_to_save", [f"extra_{i}" for i in range(MAX_CONFIG_ENTRIES + 1)]),
        ("rank_pattern", {f"unused_{i}": 2 for i in range(MAX_CONFIG_ENTRIES + 1)}),
        ("alpha_pattern", {f"unused_{i}": 2 for i in range(MAX_CONFIG_ENTRIES + 1)}),
    ],
)
def test_too_many_config_entries_are_refused(base, base_info, tmp_path, capsys, field, value):
    ad = make_adapter(tmp_path / "ad", **{field: value})
    words = (f"adapter_config.json {field} has {len(value):,} entries", f"{MAX_CONFIG_ENTRIES:,}-entry cap")
    expect_error(validate_adapter, ad, base_info, contains=words)
    expect_cli_error(gate_argv(tmp_path, base, ad), capsys, "candidate adapter", *words)


@pytest.mark.parametrize("field", ["target_modules", "modules_to_save", "rank_pattern", "alpha_pattern"])
def test_overlong_names_are_refused(base_info, tmp_path, field):
    long_name = "m" * (MAX_NAME_CHARS + 1)
    value = {long_name: 2} if field.endswith("pattern") else ["q_proj", long_name]
    ad = make_adapter(tmp_path / "ad", **{field: value})
    expect_error(validate_adapter, ad, base_info,
                 contains=(f"{field} has a name of {MAX_NAME_CHARS + 1:,} characters",))


def test_overlong_target_regex_is_refused(base_info, tmp_path):
    regex = r".*\.(q_proj|v_proj" + "|x" * (MAX_REGEX_CHARS // 2) + ")"
    ad = make_adapter(tmp_path / "ad", target_modules=regex)
    expect_error(validate_adapter, ad, base_info, contains=(f"{MAX_REGEX_CHARS:,}-character cap",))


def test_oversized_adapter_config_is_refused(base_info, tmp_path):
    ad = make_adapter(tmp_path / "ad", notes="n" * MAX_ADAPTER_CONFIG_BYTES)
    expect_error(validate_adapter, ad, base_info,
                 contains=("adapter_config.json is larger than", f"{MAX_ADAPTER_CONFIG_BYTES:,}-byte cap"))


def test_many_targets_at_the_cap_are_matched_like_peft(base_info, tmp_path):
    """Up to the cap, names are matched as PEFT does (the module itself or a dotted tail),
    in one set lookup per tail: k_proj is targeted but carries no weights."""
    names = ["q_proj", "v_proj", "self_attn.k_proj", "attn.o_proj"]  # a partial segment never matches
    names += [f"mlp.unused_{i}" for i in range(MAX_CONFIG_ENTRIES - len(names))]
    info = validate_adapter(make_adapter(tmp_path / "ad", target_modules=names), base_info)
    warning = next(w for w in info.warnings if "target_modules match" in w)
    assert f"match {LAYERS} base module(s)" in warning
    assert "model.layers.0.self_attn.k_proj" in warning


def test_rank_pattern_at_the_cap_keeps_first_match_order(base_info, tmp_path):
    pattern = {f"unused_{i}": 2 for i in range(MAX_CONFIG_ENTRIES - 2)}
    pattern.update({"layers.1.self_attn.q_proj": 3, "q_proj": RANK})
    ad = make_adapter(tmp_path / "ad", rank_pattern=pattern)
    exc = expect_error(validate_adapter, ad, base_info,
                       contains=("model.layers.1.self_attn.q_proj: lora_A has rank 4",
                                 "rank_pattern 'layers.1.self_attn.q_proj' is 3"))
    assert len(exc.details) == 2  # lora_A and lora_B of that one module


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, DEEP])
def test_deeply_nested_adapter_config_is_refused(base, base_info, tmp_path, capsys, depth):
    ad = make_adapter(tmp_path / "ad")
    (ad / "adapter_config.json").write_text('{"peft_type": "LORA", "notes": %s}' % nested(depth - 1))
    words = ("adapter_config.json is not valid JSON", f"nested deeper than {MAX_JSON_DEPTH} levels")
    expect_error(validate_adapter, ad, base_info, contains=words)
    expect_cli_error(gate_argv(tmp_path, base, ad), capsys, "candidate adapter", *words)


def test_adapter_config_nesting_bound_is_exact(base_info, tmp_path):
    ad = make_adapter(tmp_path / "ad", notes=json.loads(nested(MAX_JSON_DEPTH - 1)))
    assert validate_adapter(ad, base_info).r == RANK


def test_huge_integer_in_adapter_config_is_refused(base_info, tmp_path):
    ad = make_adapter(tmp_path / "ad")
    (ad / "adapter_config.json").write_text('{"peft_type": "LORA", "r": %s}' % ("9" * 5000))
    expect_error(validate_adapter, ad, base_info, contains=("adapter_config.json is not valid JSON",))


# ------------------------------------------------------------------ safetensors headers


def test_deeply_nested_safetensors_header_is_refused(base, base_info, tmp_path, capsys):
    header = b'{"__metadata__": ' + nested(DEEP).encode() + b"}"
    path = write_raw_safetensors(tmp_path / "deep.safetensors", header)
    expect_error(read_safetensors_header, path, contains=(str(path), "nested too deeply"))
    ad = make_adapter(tmp_path / "ad")
    write_raw_safetensors(ad / "adapter_model.safetensors", header)
    expect_cli_error(gate_argv(tmp_path, base, ad), capsys, "adapter_model.safetensors", "nested too deeply")


def test_safetensors_header_length_cap_still_holds(tmp_path):
    path = tmp_path / "huge.safetensors"
    path.write_bytes(struct.pack("<Q", 100_000_001) + b"{}")
    expect_error(read_safetensors_header, path, contains=("header length 100000001 exceeds",))


def test_pickle_weights_are_still_refused(base_info, tmp_path):
    ad = make_adapter(tmp_path / "ad")
    (ad / "adapter_model.safetensors").rename(ad / "adapter_model.bin")
    expect_error(validate_adapter, ad, base_info, contains=("refusing to load pickle weights adapter_model.bin",))


# ------------------------------------------------------------------ base model JSON


@pytest.mark.parametrize("name", ["config.json", "model.safetensors.index.json"])
def test_deeply_nested_base_json_is_refused(tmp_path, name):
    root = make_base(tmp_path / "base")
    if name.endswith("index.json"):
        (root / "model.safetensors").rename(root / "model-00001-of-00001.safetensors")
    (root / name).write_text('{"weight_map": {}, "x": %s}' % nested(DEEP))
    expect_error(inspect_base, root, contains=(name, f"nested deeper than {MAX_JSON_DEPTH} levels"))


# ------------------------------------------------------------------ the helpers


def test_nesting_helpers():
    assert not nesting_exceeds(json.loads(nested(MAX_JSON_DEPTH)))
    assert nesting_exceeds(json.loads(nested(MAX_JSON_DEPTH + 1)))
    assert not nesting_exceeds({"a": [1, {"b": "[[[[["}]}, 3)  # object, array, object
    assert nesting_exceeds({"a": [1, {"b": "[[[[["}]}, 2)
    assert not nesting_exceeds("scalar", 0)
    assert json_loads_bounded('{"x": "%s"}' % ("[" * 1000)) == {"x": "[" * 1000}  # brackets in a string
    for text in (nested(MAX_JSON_DEPTH + 1), nested(DEEP)):
        with pytest.raises(ValueError, match="nested deeper than"):
            json_loads_bounded(text)


# ----------------------------------------------------------- the other readers of PR content


BOMB_LINES = ALIAS_BOMB.split("    card:\n", 1)[1]


def test_every_yaml_reader_refuses_aliases_and_depth(tmp_path):
    """Judge criteria and promote's --card file are read like a manifest: no aliases, bounded depth."""
    from adaptergate.metrics.judge import load_criteria
    from adaptergate.manifest.cards import read_card_file as _read_card_file

    bomb = "criteria:\n" + BOMB_LINES.replace("      ", "  ")
    (tmp_path / "criteria.yaml").write_text(bomb)
    expect_error(load_criteria, tmp_path / "criteria.yaml", contains=("criteria.yaml", "alias *a0"))
    (tmp_path / "card.yaml").write_text("task: x\nnotes:\n" + BOMB_LINES.replace("      ", "  "))
    expect_error(_read_card_file, tmp_path / "card.yaml", contains=("card.yaml", "alias *a0"))
    (tmp_path / "deep.yaml").write_text("x: " + nested(DEEP))
    expect_error(load_criteria, tmp_path / "deep.yaml", contains=("deep.yaml", f"nested deeper than {MAX_JSON_DEPTH}"))
    (tmp_path / "deep.json").write_text(nested(DEEP))
    expect_error(load_criteria, tmp_path / "deep.json", contains=("deep.json", f"nested deeper than {MAX_JSON_DEPTH}"))


def test_deep_json_in_a_base_config_or_a_manifest_adapter_is_exit_2(tmp_path):
    from adaptergate.manifest.model import TenantChange, verify_change
    from adaptergate.manifest.facts import lora_facts as _lora_facts
    from adaptergate.backends.peft import check_no_remote_code

    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text('{"model_type": "llama", "x": %s}' % nested(DEEP))
    expect_error(check_no_remote_code, base, what="base model", contains=("config.json", "nested deeper"))
    ad = make_adapter(tmp_path / "ad")
    (ad / "adapter_config.json").write_text(nested(DEEP))
    expect_error(_lora_facts, ad, contains=("adapter_config.json", "nested deeper"))
    entry = parse_manifest(MANIFEST_HEAD.replace("path: ad", f"path: {ad.name}"), "m.yaml").tenants["acme"]
    verified = verify_change(TenantChange("acme", "new", None, entry), tmp_path, check_base_hash=False)
    assert any("nested deeper" in p.actual for p in verified.problems), verified.problems
