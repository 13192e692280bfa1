"""The manifest lifecycle end to end: validate, show, history, export, schema, promote, rollback.

Every test works on a real git repository in a temp dir (commits with fixed
dates), a YAML manifest with three tenants and tiny fake LoRA adapters: an
``adapter_config.json`` and a hand-written safetensors file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import struct
import subprocess
from pathlib import Path

import pytest
import yaml

from adaptergate.cli.app import main
from adaptergate.pipeline.ledger import AuditLog
from adaptergate.manifest.model import diff_manifests, hub_snapshot, load_manifest, parse_manifest, verify_change
from adaptergate.models import GateDecision
from adaptergate.manifest import (
    VLLM_MAX_LORA_RANKS,
    schema_text,
    vllm_max_lora_rank,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
BASE = "org/base-7b"
GIT_ENV = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code, err, *needles):
    """Exit 2, one line on stderr, no traceback, naming every needle."""
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for n in needles:
        assert str(n) in lines[0], (n, lines[0])
    return lines[0]


def usage_error(code, err, needle):
    """A command line click refuses: exit 2, its usage block, no traceback."""
    assert code == 2 and "Traceback" not in err and err.startswith("Usage:"), err
    assert needle in err, err


# ---------------------------------------------------------------- fixtures


def safetensors_bytes(tensors: dict[str, tuple[int, ...]], seed: int) -> bytes:
    """A minimal valid safetensors file: 8-byte LE header length, JSON header, raw F32 data."""
    header, blobs, offset = {}, [], 0
    for i, (name, shape) in enumerate(sorted(tensors.items())):
        n = 1
        for d in shape:
            n *= d
        data = struct.pack(f"<{n}f", *[(seed * 31 + i * 7 + k) % 13 / 13.0 for k in range(n)])
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    return struct.pack("<Q", len(head)) + head + b"".join(blobs)


def make_adapter(d: Path, *, r: int = 8, seed: int = 0, base: str = BASE, rank_pattern=None,
                 card: dict | None = None) -> str:
    """A fake PEFT LoRA dir; returns the sha256 of its weights."""
    d.mkdir(parents=True, exist_ok=True)
    cfg = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": r, "lora_alpha": 2 * r, "lora_dropout": 0.05,
           "target_modules": ["q_proj", "v_proj"], "base_model_name_or_path": base}
    if rank_pattern:
        cfg["rank_pattern"] = rank_pattern
    (d / "adapter_config.json").write_text(json.dumps(cfg))
    pre = "base_model.model.model.layers.0.self_attn"
    tensors = {f"{pre}.{m}.lora_A.weight": (r, 8) for m in ("q_proj", "v_proj")}
    tensors |= {f"{pre}.{m}.lora_B.weight": (8, r) for m in ("q_proj", "v_proj")}
    data = safetensors_bytes(tensors, seed)
    (d / "adapter_model.safetensors").write_bytes(data)
    if card is not None:
        (d / "adapter_card.json").write_text(json.dumps(card))
    return hashlib.sha256(data).hexdigest()


def git(repo: Path, *args: str, date: str | None = None) -> str:
    env = {**os.environ, **GIT_ENV}
    if date:
        env |= {"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
    res = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, env=env, check=True)
    return res.stdout.strip()


def commit(repo: Path, message: str, date: str, author: str = "Alice") -> str:
    git(repo, "add", "-A")
    git(repo, "-c", f"user.name={author}", "commit", "-q", "-m", message, date=date)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path):
    """A git repository with adaptergate.yaml (acme, beta, gamma), committed once."""
    root = tmp_path / "adapters-repo"
    root.mkdir()
    git(root, "init", "-q")
    git(root, "config", "user.name", "Alice")
    git(root, "config", "user.email", "alice@example.com")
    git(root, "config", "commit.gpgsign", "false")
    (root / "holdouts").mkdir()
    for t in ("acme", "beta", "gamma"):
        (root / "holdouts" / f"{t}.jsonl").write_text('{"query_id": "q1", "prompt": "hi", "gold": "hello"}\n')
    shas = {
        "acme": make_adapter(root / "adapters/acme/1.0.0", r=8, seed=1),
        "beta": make_adapter(root / "adapters/beta/2.1.0", r=16, seed=2, rank_pattern={"v_proj": 24}),
        "gamma": make_adapter(root / "adapters/gamma/0.3.0", r=4, seed=3),
    }
    manifest = {
        "schema_version": 1,
        "tenants": {
            "acme": {"adapter": {"version": "1.0.0", "path": "adapters/acme/1.0.0", "sha256": shas["acme"]},
                     "base_model": {"id": BASE}, "holdout": "holdouts/acme.jsonl",
                     "gate": {"epsilon": 0.02, "metric": "exact"},
                     "approval": {"floor": 0.7, "auto_approve": 0.85},
                     "card": {"task": "support", "language": "en"}},
            "beta": {"adapter": {"version": "2.1.0", "path": "adapters/beta/2.1.0", "sha256": shas["beta"]},
                     "base_model": {"id": BASE}, "holdout": "holdouts/beta.jsonl"},
            "gamma": {"adapter": {"version": "0.3.0", "path": "adapters/gamma/0.3.0", "sha256": shas["gamma"],
                                  "name": "gamma-support"},
                      "base_model": {"id": BASE}, "holdout": "holdouts/gamma.jsonl"},
        },
    }
    (root / "adaptergate.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    commit(root, "add tenants", "2024-01-01T10:00:00+00:00")
    return root


def mpath(repo: Path) -> Path:
    return repo / "adaptergate.yaml"


def promote(repo, capsys, tenant, adapter, *extra):
    return run(["promote", "--manifest", mpath(repo), "--tenant", tenant, "--adapter", adapter, *extra], capsys)


def two_promotions(repo: Path, capsys) -> tuple[str, str]:
    """acme 1.0.0 -> 1.1.0 (committed by Bob) -> 1.2.0 (committed by Carol)."""
    s1 = make_adapter(repo / "adapters/acme/1.1.0", seed=11)
    assert promote(repo, capsys, "acme", repo / "adapters/acme/1.1.0")[0] == 0
    commit(repo, "promote acme 1.1.0", "2024-02-01T10:00:00+00:00", author="Bob")
    s2 = make_adapter(repo / "adapters/acme/1.2.0", seed=12)
    assert promote(repo, capsys, "acme", repo / "adapters/acme/1.2.0")[0] == 0
    commit(repo, "promote acme 1.2.0", "2024-03-01T10:00:00+00:00", author="Carol")
    return s1, s2


def decision(tenant: str, candidate: str, accepted: bool, ts: str) -> GateDecision:
    return GateDecision(accepted=accepted, tenant_id=tenant, candidate_id=candidate, baseline_id="x",
                        holdout_size=10, score_baseline=0.8, score_candidate=0.81 if accepted else 0.6,
                        delta=0.01 if accepted else -0.2, epsilon=0.02,
                        reason="ok" if accepted else "aggregate dropped", timestamp=ts)


# ---------------------------------------------------------------- validate / show / schema


def test_validate_ok_and_env_default(repo, capsys, monkeypatch):
    code, out, err = run(["manifest", "validate", "--manifest", mpath(repo)], capsys)
    assert code == 0 and out.strip() == "manifest OK: 3 tenants", err
    monkeypatch.chdir(repo)  # default: adaptergate.yaml in the current directory
    assert run(["manifest", "validate"], capsys)[1].strip() == "manifest OK: 3 tenants"
    monkeypatch.chdir(repo.parent)
    monkeypatch.setenv("ADAPTERGATE_MANIFEST", str(mpath(repo)))
    assert run(["manifest", "validate"], capsys)[0] == 0
    monkeypatch.delenv("ADAPTERGATE_MANIFEST")
    one_line_error(*run(["manifest", "validate"], capsys)[::2], "adaptergate.yaml", "not found")


def test_validate_catches_tampered_weights(repo, capsys):
    m = load_manifest(mpath(repo))
    want = m.tenants["beta"].adapter.sha256
    weights = repo / "adapters/beta/2.1.0/adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")
    got = hashlib.sha256(weights.read_bytes()).hexdigest()
    code, out, err = run(["manifest", "validate", "--manifest", mpath(repo)], capsys)
    line = one_line_error(code, err, "tenant beta", "adapter.sha256", want, got)
    assert line.index(want) < line.index(got) and out == ""
    # two problems: a count, then one line each
    (repo / "holdouts/gamma.jsonl").unlink()
    code, _, err = run(["manifest", "validate", "--manifest", mpath(repo)], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 3 and "2 problems" in lines[0]
    assert "tenant beta: adapter.sha256" in lines[1] and "tenant gamma: holdout" in lines[2]


@pytest.mark.parametrize("text,needle", [
    ("tenants: [1, 2\n", "not valid YAML"),
    ("schema_version: 1\ntenants:\n  acme: {holdout: h, base_model: {id: b}}\n", "tenants.acme.adapter"),
    ("- 1\n", "expected a mapping"),
])
def test_bad_manifest_is_one_line(tmp_path, capsys, text, needle):
    p = tmp_path / "m.yaml"
    p.write_text(text)
    for cmd in (["manifest", "validate"], ["manifest", "show"], ["manifest", "export"]):
        one_line_error(*run([*cmd, "--manifest", p], capsys)[::2], needle)


def test_show_human_and_json(repo, capsys):
    code, out, _ = run(["manifest", "show", "--manifest", mpath(repo)], capsys)
    assert code == 0
    m = load_manifest(mpath(repo))
    sha = m.tenants["acme"].adapter.sha256
    assert f"acme: 1.0.0  adapters/acme/1.0.0  sha256 {sha[:12]}" in out
    assert "approval: reject < 0.7; 0.7 <= review < 0.85; approve >= 0.85" in out
    assert "gate:     epsilon=0.02 metric=exact" in out and "card:     task=support language=en" in out
    assert "(served as gamma-support)" in out and "beta: 2.1.0" in out
    code, out, _ = run(["manifest", "show", "--manifest", mpath(repo), "--tenant", "gamma", "--json"], capsys)
    data = json.loads(out)
    assert list(data) == ["gamma"] and data["gamma"]["adapter"]["name"] == "gamma-support"
    one_line_error(*run(["manifest", "show", "--manifest", mpath(repo), "--tenant", "nope"], capsys)[::2],
                   "no tenant 'nope'", "acme, beta, gamma")


def test_schema_file_is_up_to_date(capsys):
    committed = (REPO_ROOT / "schemas" / "manifest.schema.json").read_text(encoding="utf-8")
    code, out, _ = run(["manifest", "schema"], capsys)
    assert code == 0 and out == schema_text()
    assert committed == out, "regenerate: adaptergate manifest schema > schemas/manifest.schema.json"
    assert json.loads(out)["title"] == "adaptergate tenant adapter manifest"


# ---------------------------------------------------------------- export


def test_export_vllm_exact(repo, capsys):
    code, out, err = run(["manifest", "export", "--manifest", mpath(repo), "--format", "vllm"], capsys)
    assert code == 0, err
    a = (repo / "adapters").resolve()
    # beta: r=16 with rank_pattern v_proj=24 -> max rank 24 -> vLLM's next allowed value is 32
    assert out == (f"--enable-lora --max-loras 3 --max-lora-rank 32 --lora-modules acme={a}/acme/1.0.0"
                   f" beta={a}/beta/2.1.0 gamma-support={a}/gamma/0.3.0\n")
    code, out, _ = run(["manifest", "export", "--manifest", mpath(repo), "--tenant", "gamma",
                        "--tenant", "acme", "--max-loras", "4"], capsys)
    assert out == (f"--enable-lora --max-loras 4 --max-lora-rank 8 --lora-modules"
                   f" gamma-support={a}/gamma/0.3.0 acme={a}/acme/1.0.0\n")
    code, out, _ = run(["manifest", "export", "--manifest", mpath(repo), "--format", "json"], capsys)
    rows = json.loads(out)
    m = load_manifest(mpath(repo))
    assert rows[1] == {"tenant": "beta", "name": "beta", "path": f"{a}/beta/2.1.0", "version": "2.1.0",
                       "sha256": m.tenants["beta"].adapter.sha256, "rank": 24, "base_model": BASE}
    assert [r["rank"] for r in rows] == [8, 24, 4]


def test_export_refuses_tampered_mixed_and_hub(repo, capsys, tmp_path):
    m = mpath(repo)
    (repo / "adapters/gamma/0.3.0/adapter_model.safetensors").write_bytes(b"x" * 64)
    one_line_error(*run(["manifest", "export", "--manifest", m], capsys)[::2], "tenant gamma", "adapter.sha256")
    assert run(["manifest", "export", "--manifest", m, "--no-verify"], capsys)[0] == 0
    data = yaml.safe_load(m.read_text())
    data["tenants"]["beta"]["base_model"]["id"] = "org/other-13b"
    make_adapter(repo / "adapters/beta/2.1.0", r=16, seed=2, base="org/other-13b", rank_pattern={"v_proj": 24})
    data["tenants"]["beta"]["adapter"]["sha256"] = hashlib.sha256(
        (repo / "adapters/beta/2.1.0/adapter_model.safetensors").read_bytes()).hexdigest()
    m.write_text(yaml.safe_dump(data, sort_keys=False))
    code, _, err = run(["manifest", "export", "--manifest", m, "--no-verify"], capsys)
    one_line_error(code, err, "2 base models", "org/other-13b: beta", "--base-model")
    assert run(["manifest", "export", "--manifest", m, "--no-verify", "--format", "json"], capsys)[0] == 0
    # a Hub adapter: exported at the hub cache's snapshot of its pinned revision, in vLLM's JSON form
    rev = "a" * 40
    data["tenants"]["acme"]["adapter"] = {"version": "1.0.0", "hf_repo": "org/acme-lora", "revision": rev,
                                          "sha256": data["tenants"]["acme"]["adapter"]["sha256"]}
    m.write_text(yaml.safe_dump(data, sort_keys=False))
    cache = tmp_path / "hub"
    snap = hub_snapshot(cache, "org/acme-lora", rev)
    assert snap == cache / "models--org--acme-lora" / "snapshots" / rev
    # not downloaded and no rank in its card: nothing to size --max-lora-rank with
    one_line_error(*run(["manifest", "export", "--manifest", m, "--tenant", "acme", "--hub-cache", cache],
                        capsys)[::2], "tenant acme: rank", f"huggingface-cli download org/acme-lora --revision {rev}")
    make_adapter(snap, r=8, seed=1)
    code, out, err = run(["manifest", "export", "--manifest", m, "--base-model", BASE, "--hub-cache", cache,
                          "--no-verify"], capsys)
    assert code == 0, err
    args = shlex.split(out)
    assert args[:7] == ["--enable-lora", "--max-loras", "2", "--max-lora-rank", "8", "--lora-modules",
                        json.dumps({"name": "acme", "path": str(snap), "base_model_name": BASE},
                                   separators=(",", ":"))]
    assert args[7] == f"gamma-support={(repo / 'adapters/gamma/0.3.0').resolve()}"
    # the hub snapshot's weights are checked too when verifying
    code, _, err = run(["manifest", "export", "--manifest", m, "--base-model", BASE, "--hub-cache", cache,
                        "--tenant", "acme"], capsys)
    assert code == 0, err
    (snap / "adapter_model.safetensors").write_bytes(b"y" * 64)
    one_line_error(*run(["manifest", "export", "--manifest", m, "--hub-cache", cache, "--tenant", "acme"],
                        capsys)[::2], "tenant acme", "adapter.sha256")


def test_vllm_rank_rounding():
    assert VLLM_MAX_LORA_RANKS == (1, 8, 16, 32, 64, 128, 256, 320, 512)
    assert [vllm_max_lora_rank(r) for r in (1, 2, 8, 9, 24, 64, 300, 320, 321, 512)] == [
        1, 8, 8, 16, 32, 64, 320, 320, 512, 512]
    with pytest.raises(Exception, match="above the largest"):
        vllm_max_lora_rank(513)


# ---------------------------------------------------------------- promote


def test_promote_round_trip(repo, capsys, monkeypatch):
    monkeypatch.setenv("GITHUB_ACTOR", "release-bot")
    sha = make_adapter(repo / "adapters/acme/next", r=8, seed=7)
    code, out, err = promote(repo, capsys, "acme", repo / "adapters/acme/next", "--data-source", "tickets-2024q1",
                             "--dataset", "acme-support", "--dataset-size", "1200")
    assert code == 0, err
    before = load_manifest_at(repo, "HEAD")
    assert out.splitlines()[:3] == ["acme: 1.0.0 -> 1.1.0", "  adapter: adapters/acme/next",
                                    f"  sha256:  {before.tenants['acme'].adapter.sha256[:12]} -> {sha}"]
    text = mpath(repo).read_text()
    assert text.startswith("schema_version: 1\n") and not text.lstrip().startswith("{")  # still YAML
    after = load_manifest(mpath(repo))
    entry = after.tenants["acme"]
    assert entry.adapter.version == "1.1.0" and entry.adapter.sha256 == sha
    assert entry.adapter.path == "adapters/acme/next"
    t, p = entry.card.training, entry.card.provenance
    assert (t.rank, t.alpha, t.dropout, t.target_modules) == (8, 16.0, 0.05, ["q_proj", "v_proj"])
    assert (t.dataset, t.dataset_size) == ("acme-support", 1200)
    assert (p.creator, p.parent, p.data_source) == ("release-bot", "1.0.0", "tickets-2024q1")
    assert p.created_at is not None and p.created_at.utcoffset().total_seconds() == 0
    assert entry.card.task == "support" and entry.card.base_model == BASE  # carried / filled
    assert entry.gate.epsilon == 0.02 and entry.approval.auto_approve == 0.85  # settings kept
    assert entry.rollback is None
    assert not list(repo.glob("*.lock")) and not list(repo.glob(".*.tmp"))  # nothing stray to commit
    # what the gate will see: a promotion that verifies
    changes = {c.tenant: c for c in diff_manifests(before, after)}
    assert changes["acme"].kind == "promotion" and not verify_change(changes["acme"], repo).problems
    assert changes["beta"].kind == changes["gamma"].kind == "unchanged"
    # the same version again, and the same weights again, are refused
    make_adapter(repo / "adapters/acme/other", seed=8)
    one_line_error(*promote(repo, capsys, "acme", repo / "adapters/acme/other", "--version", "1.1.0")[::2],
                   "version 1.1.0 does not increase", "is at 1.1.0")
    one_line_error(*promote(repo, capsys, "acme", repo / "adapters/acme/next")[::2],
                   "version 1.1.0's", "nothing to promote")
    # --bump and --version: bump major from 1.1.0, explicit version
    assert promote(repo, capsys, "acme", repo / "adapters/acme/other", "--bump", "major")[1].startswith(
        "acme: 1.1.0 -> 2.0.0")
    one_line_error(*promote(repo, capsys, "acme", repo / "adapters/acme/other", "--version", "3.0.0",
                            "--bump", "patch")[::2], "--version or --bump")


def load_manifest_at(repo: Path, rev: str):
    return parse_manifest(git(repo, "show", f"{rev}:adaptergate.yaml"), "adaptergate.yaml")


def test_promote_json_manifest_keeps_json_and_merges_sidecar(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("GITHUB_ACTOR", raising=False)
    monkeypatch.setenv("USER", "dev")
    m = tmp_path / "tenants.json"
    (tmp_path / "h.jsonl").write_text("{}\n")
    sidecar = {"task": "billing", "training": {"learning_rate": 1e-4, "rank": 999, "epochs": 2},
               "provenance": {"commit": "abc123", "created_at": "2024-05-05T00:00:00Z"}, "notes": "kept"}
    sha = make_adapter(tmp_path / "ad", r=16, seed=5, card=sidecar)
    card = tmp_path / "card.yaml"
    card.write_text("domain: finance\nlanguage: de\n")
    # a new tenant in a new manifest (not in git: no history needed)
    code, out, err = run(["promote", "--manifest", m, "--tenant", "zeta", "--adapter", tmp_path / "ad",
                          "--base-model", BASE, "--holdout", tmp_path / "h.jsonl", "--card", card,
                          "--task", "refunds", "--json"], capsys)
    assert code == 0, err
    res = json.loads(out)
    assert res["old_version"] is None and res["new_version"] == "1.0.0" and res["new_sha256"] == sha
    assert res["path"] == "ad"
    data = json.loads(m.read_text())  # JSON stays JSON
    e = data["tenants"]["zeta"]
    assert e["holdout"] == "h.jsonl" and e["base_model"] == {"id": BASE} and "rollback" not in e
    c = e["card"]
    assert (c["task"], c["domain"], c["language"], c["notes"]) == ("refunds", "finance", "de", "kept")
    assert c["training"]["rank"] == 16 and c["training"]["learning_rate"] == 1e-4  # config wins on shape
    assert c["provenance"] == {"creator": "dev", "created_at": "2024-05-05T00:00:00Z", "commit": "abc123"}


def test_promote_new_tenant_in_repo(repo, capsys):
    make_adapter(repo / "adapters/delta/a", seed=9)
    one_line_error(*promote(repo, capsys, "delta", repo / "adapters/delta/a")[::2],
                   "tenant delta is new", "--base-model and --holdout")
    (repo / "holdouts/delta.jsonl").write_text("{}\n")
    code, out, err = promote(repo, capsys, "delta", repo / "adapters/delta/a", "--base-model", BASE,
                             "--holdout", repo / "holdouts/delta.jsonl", "--version", "0.1.0")
    assert code == 0 and out.startswith("delta: new tenant at 0.1.0"), err
    m = load_manifest(mpath(repo))
    assert list(m.tenants) == ["acme", "beta", "gamma", "delta"]
    assert m.tenants["delta"].holdout == "holdouts/delta.jsonl" and m.tenants["delta"].card.provenance.parent is None
    assert run(["manifest", "validate", "--manifest", mpath(repo)], capsys)[1].strip() == "manifest OK: 4 tenants"


def test_promote_dry_run_writes_nothing(repo, capsys):
    before = mpath(repo).read_bytes()
    make_adapter(repo / "adapters/beta/next", r=16, seed=21)
    code, out, _ = promote(repo, capsys, "beta", repo / "adapters/beta/next", "--bump", "patch", "--dry-run")
    assert code == 0 and out.splitlines()[0] == "beta: 2.1.0 -> 2.1.1" and "dry run" in out
    assert mpath(repo).read_bytes() == before


def _bad_adapters(root: Path) -> dict[str, tuple[Path, str]]:
    out = {}
    out["missing"] = (root / "nope", "does not exist")
    f = root / "file"
    f.write_text("x")
    out["file"] = (f, "not a directory")
    d = root / "noconfig"
    d.mkdir()
    out["noconfig"] = (d, "no adapter_config.json")
    for name, cfg, needle in [
        ("badjson", "{", "not valid JSON"),
        ("norank", json.dumps({"lora_alpha": 8, "target_modules": ["q_proj"]}), "r must be a positive integer"),
        ("notlora", json.dumps({"peft_type": "IA3", "r": 8}), "is not LORA"),
        ("notargets", json.dumps({"r": 8, "lora_alpha": 8}), "target_modules"),
        ("noalpha", json.dumps({"r": 8, "target_modules": ["q_proj"]}), "lora_alpha"),
    ]:
        d = root / name
        d.mkdir()
        (d / "adapter_config.json").write_text(cfg)
        out[name] = (d, needle)
    d = root / "noweights"
    make_adapter(d)
    (d / "adapter_model.safetensors").unlink()
    (d / "adapter_model.bin").write_bytes(b"pickle")
    out["noweights"] = (d, "a pickle")
    d = root / "garbage"
    make_adapter(d)
    (d / "adapter_model.safetensors").write_bytes(b"\x01\x02")
    out["garbage"] = (d, "truncated")
    d = root / "notlora_tensors"
    make_adapter(d)
    (d / "adapter_model.safetensors").write_bytes(safetensors_bytes({"model.embed.weight": (2, 2)}, 0))
    out["notlora_tensors"] = (d, "no LoRA tensors")
    return out


def test_promote_bad_inputs_are_one_line(repo, capsys, tmp_path):
    for name, (path, needle) in _bad_adapters(tmp_path).items():
        one_line_error(*promote(repo, capsys, "acme", path)[::2], needle)
    make_adapter(repo / "adapters/acme/ok", seed=33)
    ok = repo / "adapters/acme/ok"
    one_line_error(*promote(repo, capsys, "acme", ok, "--version", "one")[::2], "not a semantic version")
    one_line_error(*promote(repo, capsys, "acme", ok, "--version", "0.9.0")[::2], "does not increase")
    usage_error(*promote(repo, capsys, "acme", ok, "--bump", "huge")[::2], "'huge' is not one of")
    usage_error(*run(["promote", "--tenant", "acme"], capsys)[::2], "--adapter")
    one_line_error(*promote(repo, capsys, "acme", ok, "--card", tmp_path / "nocard.json")[::2], "not found")
    (tmp_path / "bad_card.json").write_text(json.dumps({"training": {"rank": "eight"}}))
    one_line_error(*promote(repo, capsys, "acme", ok, "--card", tmp_path / "bad_card.json")[::2],
                   "training.rank")
    # new weights written over the current version's directory
    make_adapter(repo / "adapters/acme/1.0.0", seed=35)
    one_line_error(*promote(repo, capsys, "acme", repo / "adapters/acme/1.0.0")[::2],
                   "is version 1.0.0's directory", "a rollback needs the old weights")
    # an adapter trained on another base than the tenant's
    make_adapter(repo / "adapters/acme/wrongbase", seed=34, base="org/unrelated-3b")
    one_line_error(*promote(repo, capsys, "acme", repo / "adapters/acme/wrongbase")[::2],
                   "tenant acme: base_model", "org/unrelated-3b")
    assert yaml.safe_load(mpath(repo).read_text())["tenants"]["acme"]["adapter"]["version"] == "1.0.0"


# ---------------------------------------------------------------- history


def test_history_lists_commits_and_decisions(repo, capsys):
    two_promotions(repo, capsys)
    audit = repo.parent / "audit.jsonl"
    log = AuditLog(audit)
    log.append(decision("acme", "1.1.0", False, "2024-01-31T09:00:00+00:00"))  # rejected first ...
    log.append(decision("acme", "1.1.0", True, "2024-01-31T12:00:00+00:00"))  # ... then accepted
    log.append(decision("beta", "1.2.0", False, "2024-02-28T12:00:00+00:00"))  # another tenant
    log.append(decision("acme", "1.2.0", False, "2024-02-28T12:00:00+00:00"))
    code, out, err = run(["manifest", "history", "--manifest", mpath(repo), "--tenant", "acme", "--json",
                          "--audit-log", audit], capsys)
    assert code == 0, err
    ev = json.loads(out)
    shorts = git(repo, "log", "--format=%h").splitlines()
    assert [(e["kind"], e["version_before"], e["version_after"]) for e in ev] == [
        ("promotion", "1.1.0", "1.2.0"), ("promotion", "1.0.0", "1.1.0"), ("new", None, "1.0.0")]
    assert [e["short"] for e in ev] == shorts
    assert [e["author"] for e in ev] == ["Carol", "Bob", "Alice"]
    assert [e["date"][:10] for e in ev] == ["2024-03-01", "2024-02-01", "2024-01-01"]
    assert ev[0]["subject"] == "promote acme 1.2.0"
    assert ev[1]["decision"]["verdict"] == "ACCEPTED" and ev[1]["decision"]["timestamp"].startswith("2024-01-31T12")
    assert ev[0]["decision"]["accepted"] is False and ev[2]["decision"] is None
    # readable form, --limit
    code, out, _ = run(["manifest", "history", "--manifest", mpath(repo), "--tenant", "acme", "--audit-log",
                        audit, "--limit", "2"], capsys)
    lines = out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"2024-03-01  {shorts[0]}  promotion  1.1.0 -> 1.2.0")
    assert "Carol: promote acme 1.2.0" in lines[0] and lines[0].endswith("[gate: REJECTED 2024-02-28]")
    assert "[gate: ACCEPTED 2024-01-31]" in lines[1]
    # beta never changed after it was added
    code, out, _ = run(["manifest", "history", "--manifest", mpath(repo), "--tenant", "beta"], capsys)
    assert len(out.splitlines()) == 1 and "new" in out and "-> 2.1.0" in out


def test_history_bad_inputs(repo, capsys, tmp_path):
    one_line_error(*run(["manifest", "history", "--manifest", mpath(repo), "--tenant", "nobody"], capsys)[::2],
                   "no tenant 'nobody' in any commit")
    one_line_error(*run(["manifest", "history", "--manifest", mpath(repo), "--tenant", "acme", "--audit-log",
                         tmp_path / "none.jsonl"], capsys)[::2], "audit log", "not found")
    (tmp_path / "broken.jsonl").write_text("{not json\n")
    one_line_error(*run(["manifest", "history", "--manifest", mpath(repo), "--tenant", "acme", "--audit-log",
                         tmp_path / "broken.jsonl"], capsys)[::2], "broken.jsonl:1")
    one_line_error(*run(["manifest", "history", "--manifest", mpath(repo), "--tenant", "acme", "--limit", "0"],
                        capsys)[::2], "--limit")
    outside = tmp_path / "plain"
    outside.mkdir()
    (outside / "adaptergate.yaml").write_text(mpath(repo).read_text())
    for argv in (["manifest", "history", "--tenant", "acme"], ["rollback", "--tenant", "acme", "--reason", "x"]):
        one_line_error(*run([*argv, "--manifest", outside / "adaptergate.yaml"], capsys)[::2],
                       "not in a git repository")


# ---------------------------------------------------------------- rollback


def test_rollback_round_trip(repo, capsys, monkeypatch):
    monkeypatch.setenv("GITHUB_ACTOR", "oncall-bot")
    s1, s2 = two_promotions(repo, capsys)
    code, out, err = run(["rollback", "--manifest", mpath(repo), "--tenant", "acme", "--reason",
                          "billing answers regressed in prod", "--by", "dana"], capsys)
    assert code == 0, err
    assert out.splitlines()[0].startswith("acme: 1.2.0 -> 1.1.0 (rollback, from commit ")
    m = load_manifest(mpath(repo))
    e = m.tenants["acme"]
    assert (e.adapter.version, e.adapter.sha256, e.adapter.path) == ("1.1.0", s1, "adapters/acme/1.1.0")
    assert e.rollback.from_version == "1.2.0" and e.rollback.by == "dana"
    assert e.rollback.reason == "billing answers regressed in prod" and e.rollback.at is not None
    assert e.card.provenance.parent == "1.0.0"  # 1.1.0's own card
    assert e.gate.epsilon == 0.02  # tenant settings kept
    # what the gate will see: a rollback that verifies
    (change,) = [c for c in diff_manifests(load_manifest_at(repo, "HEAD"), m) if c.tenant == "acme"]
    assert change.kind == "rollback" and not verify_change(change, repo).problems
    commit(repo, "rollback acme", "2024-03-02T10:00:00+00:00", author="Dana")
    code, out, _ = run(["manifest", "history", "--manifest", mpath(repo), "--tenant", "acme", "--json"], capsys)
    top = json.loads(out)[0]
    assert (top["kind"], top["version_before"], top["version_after"]) == ("rollback", "1.2.0", "1.1.0")
    assert top["rollback_reason"] == "billing answers regressed in prod"
    # a later promotion never reuses the rolled-back version number, and clears the rollback
    make_adapter(repo / "adapters/acme/1.3.0", seed=13)
    one_line_error(*promote(repo, capsys, "acme", repo / "adapters/acme/1.3.0", "--version", "1.2.0")[::2],
                   "does not increase", "has had 1.2.0")
    code, out, _ = promote(repo, capsys, "acme", repo / "adapters/acme/1.3.0")
    assert code == 0 and out.startswith("acme: 1.1.0 -> 1.3.0")
    assert load_manifest(mpath(repo)).tenants["acme"].rollback is None


def test_rollback_default_skips_higher_and_to_picks(repo, capsys):
    two_promotions(repo, capsys)
    assert run(["rollback", "--manifest", mpath(repo), "--tenant", "acme", "--reason", "r1"], capsys)[0] == 0
    commit(repo, "rollback to 1.1.0", "2024-03-02T10:00:00+00:00")
    # from 1.1.0 the most recent *lower* version is 1.0.0 (1.2.0 is newer in history but higher)
    code, out, _ = run(["rollback", "--manifest", mpath(repo), "--tenant", "acme", "--reason", "r2", "--dry-run"],
                       capsys)
    assert code == 0 and out.startswith("acme: 1.1.0 -> 1.0.0") and "dry run" in out
    assert load_manifest(mpath(repo)).tenants["acme"].adapter.version == "1.1.0"
    code, out, _ = run(["rollback", "--manifest", mpath(repo), "--tenant", "acme", "--reason", "r2", "--to",
                        "v1.0.0", "--json"], capsys)
    assert code == 0 and json.loads(out)["new_version"] == "1.0.0"
    e = load_manifest(mpath(repo)).tenants["acme"]
    assert e.rollback.from_version == "1.1.0" and e.card.task == "support"


def test_rollback_bad_inputs(repo, capsys):
    two_promotions(repo, capsys)
    m = mpath(repo)
    before = m.read_bytes()
    base = ["rollback", "--manifest", m, "--tenant", "acme", "--reason", "bad"]
    one_line_error(*run([*base, "--to", "0.5.0"], capsys)[::2], "--to 0.5.0", "never had that version",
                   "1.0.0, 1.1.0")
    one_line_error(*run([*base, "--to", "1.2.0"], capsys)[::2], "must be below", "1.2.0")
    one_line_error(*run([*base, "--to", "9.9.9"], capsys)[::2], "must be below")
    one_line_error(*run([*base, "--to", "latest"], capsys)[::2], "not a semantic version")
    one_line_error(*run(["rollback", "--manifest", m, "--tenant", "beta", "--reason", "x"], capsys)[::2],
                   "no version below 2.1.0")
    one_line_error(*run(["rollback", "--manifest", m, "--tenant", "zed", "--reason", "x"], capsys)[::2],
                   "no tenant 'zed'")
    one_line_error(*run(["rollback", "--manifest", m, "--tenant", "acme", "--reason", "  "], capsys)[::2],
                   "--reason")
    # the old weights were changed after they were pinned
    w = repo / "adapters/acme/1.1.0/adapter_model.safetensors"
    w.write_bytes(w.read_bytes() + b"\0")
    one_line_error(*run(base, capsys)[::2], "cannot roll tenant acme back to 1.1.0", str(w), "pinned")
    w.unlink()
    one_line_error(*run(base, capsys)[::2], str(w), "is gone")
    assert m.read_bytes() == before


def test_rollback_only_to_accepted_versions(repo, capsys):
    two_promotions(repo, capsys)
    audit = repo.parent / "audit.jsonl"
    AuditLog(audit).append(decision("acme", "1.0.0", True, "2023-12-31T00:00:00+00:00"))
    AuditLog(audit).append(decision("acme", "1.1.0", False, "2024-01-31T00:00:00+00:00"))
    base = ["rollback", "--manifest", mpath(repo), "--tenant", "acme", "--reason", "r", "--audit-log", audit]
    one_line_error(*run([*base, "--to", "1.1.0"], capsys)[::2], "no accepted gate decision", "1.1.0")
    code, out, err = run(base, capsys)
    assert code == 0 and out.startswith("acme: 1.2.0 -> 1.0.0"), err
