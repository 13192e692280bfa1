"""The action image: ./Dockerfile built for real, its entrypoint run as the runner runs it.

A minimal Debian (debootstrap) with CPU torch installed into its system Python
stands in for the PyTorch CUDA runtime base; the project's Dockerfile is built
on it unchanged (only BASE_IMAGE differs) with ``buildah bud``; then the
image's ENTRYPOINT runs in a container of it, laid out as a GitHub container
action step: inputs as INPUT_* (hyphens kept), the runner's GITHUB_* variables,
/github/workspace as the working directory, outputs and step summary in
/github/file_commands.

Needs root, buildah and debootstrap (``.ci/run`` installs them) and network
access to a Debian mirror and to the package indexes pip is configured with;
skipped, saying so, where the tools or root are missing. Takes a few minutes:
one build per session (module-scoped), nothing kept afterwards.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from image_support import (  # tests/ is on sys.path (no __init__.py: rootdir-relative)
    ACTION_IMAGE,
    BASE_IMAGE,
    ImageLab,
    RunnerStep,
    action_input_defaults,
    host_pip_settings,
    log_tail,
    missing_prerequisites,
    parse_github_output,
)

from adaptergate.examples import EXAMPLE_HOLDOUT

pytestmark = [pytest.mark.image, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
MOCK = "adaptergate.examples.mock_scorer:score"
BAD, GOOD, GOOD_NEXT = "adapter_bad_v19", "adapter_good_v18", "adapter_good_v19"
HOLDOUT_IN_WORKSPACE = "holdouts/acme_holdout.jsonl"


def base_torch_spec() -> tuple[str, list[str]]:
    """The CPU torch the stand-in base ships, and pip arguments to find it.

    The version of the torch under test (the project pins 2.13.0), CPU build.
    When no local wheel of it is on pip's find-links, PyTorch's CPU index is
    added; the +cpu pin means a CUDA build (gigabytes) can never be taken.
    """
    try:
        version = importlib.metadata.version("torch").split("+")[0]
    except importlib.metadata.PackageNotFoundError:
        version = "2.13.0"
    find_links = host_pip_settings().get("find-links", "").split()
    local = [w for d in find_links if os.path.isdir(d)
             for w in Path(d).glob(f"torch-{version}+cpu-*.whl")]
    extra = [] if local else ["--extra-index-url", "https://download.pytorch.org/whl/cpu"]
    return f"torch=={version}+cpu", extra


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    reason = missing_prerequisites()
    if reason:
        pytest.skip(reason)
    lab = ImageLab(tmp_path_factory.mktemp("image"))
    sizes: dict[str, str] = {}
    try:
        with lab.phase("debootstrap"):
            lab.debootstrap_rootfs()
        with lab.phase("base"):
            spec, extra = base_torch_spec()
            lab.build_base(spec, extra)
        with lab.phase("build"):
            lab.build_action(REPO)
        with lab.phase("container"):
            lab.container = lab.output("from", "--pull=never", "--quiet", ACTION_IMAGE,
                                       log="container")
        lab.config = lab.inspect(ACTION_IMAGE)["OCIv1"]["config"]
        sizes.update((image, lab.image_size(image)) for image in (BASE_IMAGE, ACTION_IMAGE))
        yield lab
    finally:
        with lab.phase("cleanup"):
            lab.close()
        timings = ", ".join(f"{k} {v:.0f}s" for k, v in lab.timings.items())
        sys.stderr.write(f"image test phases ({lab.driver} storage): {timings}\n")
        if sizes:
            sys.stderr.write(f"image sizes: {sizes}\n")


@pytest.fixture(scope="module")
def expected_driver() -> str:
    """The bundled example's driver slice, from the CLI on this machine."""
    proc = subprocess.run(
        [sys.executable, "-m", "adaptergate", "gate", "--tenant", "acme", "--candidate", BAD,
         "--baseline", GOOD, "--holdout", str(EXAMPLE_HOLDOUT), "--scorer", MOCK,
         "--slice-epsilon", "0.10", "--format", "json"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 1, proc.stderr
    return json.loads(proc.stdout)["driver_slice_tag"]


def run_action(lab: ImageLab, root: Path, **inputs: str) -> tuple[int, RunnerStep, str]:
    """Run the image's entrypoint as one action step given these inputs (its `with:`)."""
    step = RunnerStep(root)
    holdout = step.workspace / HOLDOUT_IN_WORKSPACE
    holdout.parent.mkdir(parents=True)
    shutil.copyfile(EXAMPLE_HOLDOUT, holdout)
    given = action_input_defaults(REPO / "action.yml")
    given.update({name.replace("_", "-"): value for name, value in inputs.items()})
    argv = list(lab.config.get("Entrypoint") or []) + list(lab.config.get("Cmd") or [])
    args = ["run", "--isolation", "chroot", "--workingdir", "/github/workspace", *step.volumes()]
    for name, value in step.env(given).items():
        args += ["--env", f"{name}={value}"]
    log = f"run-{root.name}"
    proc = lab.buildah(*args, lab.container, "--", *argv, log=log, timeout=900, check=False)
    rc = proc.returncode
    return rc, step, log_tail(lab.logs / f"{log}.log")


def gate_inputs(candidate: str) -> dict[str, str]:
    return {
        "tenant": "acme",
        "holdout": HOLDOUT_IN_WORKSPACE,
        "scorer": MOCK,
        "candidate": candidate,
        "baseline": GOOD,
        "slice_epsilon": "0.10",
        "comment": "off",
        "check_run": "off",
        "github_token": "",
        "report_dir": "adaptergate-report",
    }


def test_entrypoint_rejects_the_bundled_example(lab, expected_driver, tmp_path):
    with lab.phase("run"):
        rc, step, tail = run_action(lab, tmp_path / "rejected", **gate_inputs(BAD))
    context = f"entrypoint output tail:\n{tail}"
    assert rc == 1, f"exit {rc}, want 1 (rejected); {context}"
    outputs = parse_github_output(step.read("GITHUB_OUTPUT"))
    assert outputs.get("decision") == "rejected", f"GITHUB_OUTPUT: {outputs}; {context}"
    assert outputs.get("driver-slice") == expected_driver, f"GITHUB_OUTPUT: {outputs}; {context}"
    summary = step.read("GITHUB_STEP_SUMMARY")
    plain = re.sub(r"\\([\\`*_{}\[\]()#+\-.!|<>~])", r"\1", summary)  # Markdown escapes
    assert "REJECTED" in plain and expected_driver in plain, f"step summary:\n{summary[:3000]}"
    report_dir = step.workspace / "adaptergate-report"
    assert report_dir.is_dir() and any(report_dir.iterdir()), f"no report files; {context}"


def test_entrypoint_accepts_a_good_candidate(lab, tmp_path):
    rc, step, tail = run_action(lab, tmp_path / "accepted", **gate_inputs(GOOD_NEXT))
    assert rc == 0, f"exit {rc}, want 0 (accepted); entrypoint output tail:\n{tail}"
    outputs = parse_github_output(step.read("GITHUB_OUTPUT"))
    assert outputs.get("decision") == "accepted", f"GITHUB_OUTPUT: {outputs}; tail:\n{tail}"


def test_image_configuration(lab):
    config = lab.config
    assert config.get("Entrypoint") == ["python3", "/entrypoint.py"]
    assert not config.get("Cmd"), "a CMD would reach the entrypoint as arguments"
    env = dict(item.split("=", 1) for item in config.get("Env") or [])
    assert env.get("NVIDIA_VISIBLE_DEVICES") == "all"
    assert "compute" in env.get("NVIDIA_DRIVER_CAPABILITIES", "").split(",")
    assert env.get("PYTHONUNBUFFERED") == "1"
    labels = config.get("Labels") or {}
    for key in ("source", "description", "licenses"):
        assert labels.get(f"org.opencontainers.image.{key}"), key
    assert config.get("User") in (None, "", "root", "0"), "container actions run as root"


def test_image_keeps_the_base_torch_and_installs_the_package(lab):
    probe = (
        "import importlib.metadata as m, pathlib, adaptergate, json\n"
        "dists = sorted(d.metadata['Name'].lower() for d in m.distributions())\n"
        "pkg = pathlib.Path(adaptergate.__file__).parent\n"
        "print(json.dumps({'torch': m.version('torch'), 'dists': dists, 'pkg': str(pkg),\n"
        "  'templates': sorted(p.name for p in (pkg / 'report' / 'templates').glob('*')),\n"
        "  'src_left': pathlib.Path('/tmp/adaptergate-src').exists(),\n"
        "  'entrypoint': pathlib.Path('/entrypoint.py').is_file(),\n"
        "  'git': __import__('shutil').which('git')}))\n"
    )
    out = lab.output("run", "--isolation", "chroot", lab.container, "--", "python3", "-c", probe,
                     log="probe", timeout=300)
    facts = json.loads(out.splitlines()[-1])
    base_torch = base_torch_spec()[0].split("==", 1)[1]
    assert facts["torch"] == base_torch, f"torch was replaced: {facts['torch']} (base {BASE_IMAGE})"
    nvidia = [d for d in facts["dists"] if d.startswith("nvidia-")]
    assert not nvidia, f"CUDA wheels pulled in: {nvidia}"
    for dist in ("adaptergate", "peft", "transformers", "bitsandbytes"):
        assert dist in facts["dists"], dist
    assert "-packages/adaptergate" in facts["pkg"], f"not a regular install: {facts['pkg']}"
    assert {"report.md.j2", "junit.xml.j2"} <= set(facts["templates"])
    assert not facts["src_left"] and facts["entrypoint"]
    assert facts["git"], "git is missing: manifest mode reads the base commit's manifest with it"
