"""The package's shape, held by tests: the stages' one-way flow (import-linter's contract in
``.importlinter``), file sizes, and which modules may import the heavy stacks."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "adaptergate"

HEAVY = ("torch", "transformers", "peft", "vllm", "accelerate", "bitsandbytes")
"""Imported only inside the functions of the modules below (lazily, when a model is scored)."""
HEAVY_ALLOWED = {
    "backends/peft.py", "backends/vllm.py", "demos/tinymodel.py",
}


def test_import_contracts_hold():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    if not Path(exe).exists():
        pytest.fail("import-linter is part of the test extra: pip install -e '.[test]'")
    got = subprocess.run([exe, "--no-cache"], capture_output=True, text=True, cwd=PKG.parent)
    assert got.returncode == 0, got.stdout[-4000:] + got.stderr[-2000:]
    assert "0 broken" in got.stdout


def test_no_module_is_over_900_lines_and_the_top_level_stays_small():
    sizes = {p.relative_to(PKG).as_posix(): len(p.read_text(encoding="utf-8").splitlines())
             for p in PKG.rglob("*.py")}
    assert {p: n for p, n in sizes.items() if n > 900} == {}
    top = sorted(p.name for p in PKG.glob("*.py"))
    assert len(top) <= 12, top


def _heavy_imports(path: Path) -> list[tuple[int, str, bool]]:
    """(line, module, at module level) of every heavy import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top_level = {id(node) for node in tree.body}
    out = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            if name.split(".")[0] in HEAVY:
                out.append((node.lineno, name, id(node) in top_level))
    return out


def test_the_ml_stack_is_imported_only_by_backends_and_only_lazily():
    offenders = []
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG).as_posix()
        for line, name, top in _heavy_imports(path):
            if top or rel not in HEAVY_ALLOWED:
                offenders.append(f"{rel}:{line}: {name}{' (module level)' if top else ''}")
    # the judge's local model and the test-only helpers are the known exceptions, listed here on purpose
    allowed_elsewhere = {o for o in offenders if o.startswith(("metrics/judge", "backends/base_model.py"))
                         and "(module level)" not in o}
    assert sorted(set(offenders) - allowed_elsewhere) == []
