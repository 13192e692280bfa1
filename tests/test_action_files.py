"""action.yml, the repo's workflows and the example gate workflows.

Lints them with the tools GitHub users would (check-jsonschema's built-in
SchemaStore schemas, actionlint) and pins the action's contract: the input and
output names that ``adaptergate.action`` (the container's entry point) reads
and writes. The linters come from the ``test`` extra; a lint test skips only
when its tool is not installed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml")

REPO = Path(__file__).resolve().parents[1]
ACTION_YML = REPO / "action.yml"
ACTIONLINT_CONFIG = REPO / ".github" / "actionlint.yaml"
CI_YML = REPO / ".github" / "workflows" / "ci.yml"
RELEASE_YML = REPO / ".github" / "workflows" / "release.yml"
EXAMPLE_GATE = REPO / "examples" / "workflows" / "adaptergate-gate.yml"
EXAMPLE_CONTAINER = REPO / "examples" / "workflows" / "adaptergate-gate-container.yml"
EXAMPLE_PUBLISH = REPO / "examples" / "workflows" / "adaptergate-publish.yml"

IMAGE = "ghcr.io/adaptergate/adaptergate-action:v1"
PUBLISHED_ACTION = "adaptergate/adaptergate-action@v1"

# The action's contract (names must match adaptergate.action exactly).
CONTRACT_INPUTS = {
    "tenant", "holdout",
    "scorer", "candidate", "baseline",
    "base-model", "baseline-adapter", "candidate-adapter", "metric", "eval-mode",
    "max-new-tokens", "batch-size", "stop", "chat-template",
    "dtype", "device", "quantize", "base-sha256", "allow-pickle", "cache-dir",
    "epsilon", "slice-epsilon", "slice-min-size", "min-holdout-size", "decision", "alpha",
    "on-inconclusive", "multiplicity", "repeats", "strict", "pass-threshold",
    "config", "sample", "sample-seed",
    "audit-log", "replay-path", "report-dir", "show-failures",
    "github-token", "comment", "check-run", "check-name",
    "manifest", "base-ref", "recipes",
    "judge-criteria", "judge-model", "judge-url", "judge-name", "judge-api-key-env", "judge-pairwise",
    "judge-retries",
    "backend", "server-url", "server-api-key-env", "server-concurrency", "tensor-parallel-size", "parity-sample",
}  # fmt: skip
# tenant and holdout are required unless a manifest names them: checked at run time.
REQUIRED_INPUTS: set[str] = set()
# Inputs whose default is not '' ('' means "the tool's default").
NON_EMPTY_DEFAULTS = {
    "metric": "exact",
    "eval-mode": "auto",
    "batch-size": "16",
    "chat-template": "false",
    "allow-pickle": "false",
    "repeats": "1",
    "report-dir": "adaptergate-report",
    "show-failures": "5",
    "github-token": "${{ github.token }}",
    "comment": "true",
    "check-run": "true",
}
CONTRACT_OUTPUTS = {
    "decision", "verdict", "delta", "driver-slice",
    "report-path", "comment-url", "check-run-url", "exit-code", "approval", "tenants",
}  # fmt: skip


def workflow_files() -> list[Path]:
    files = sorted((REPO / ".github" / "workflows").glob("*.yml"))
    files += sorted((REPO / "examples" / "workflows").glob("*.yml"))
    return files


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path.name}: not a YAML mapping"
    return data


def triggers(workflow: dict[str, Any]) -> Any:
    # PyYAML reads the bare key `on` as the boolean True (YAML 1.1).
    return workflow["on"] if "on" in workflow else workflow[True]


def tool(name: str) -> Path:
    """A console script of the test extra, from the venv running the tests."""
    exe = Path(sys.executable).parent / name
    if exe.is_file():
        return exe
    found = shutil.which(name)
    if found:
        return Path(found)
    pytest.skip(f"{name} is not installed (pip install -e '.[test]')")


def run(*args: str | Path, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def explain(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"


def steps_using(job: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    return [s for s in job.get("steps", []) if str(s.get("uses", "")).startswith(prefix)]


@pytest.fixture(scope="module")
def action() -> dict[str, Any]:
    return load(ACTION_YML)


# --------------------------------------------------------------------------
# Schemas (check-jsonschema's vendored SchemaStore schemas; no network)
# --------------------------------------------------------------------------


def test_action_yml_matches_the_github_actions_schema():
    proc = run(tool("check-jsonschema"), "--builtin-schema", "vendor.github-actions", ACTION_YML)
    assert proc.returncode == 0, explain(proc)


def test_workflows_match_the_github_workflows_schema():
    files = workflow_files()
    assert {CI_YML, RELEASE_YML, EXAMPLE_GATE, EXAMPLE_CONTAINER, EXAMPLE_PUBLISH} <= set(files)
    proc = run(tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *files)
    assert proc.returncode == 0, explain(proc)


def test_schema_check_rejects_a_broken_action(tmp_path: Path):
    """Control: the schema check fails on an invalid branding icon."""
    text = ACTION_YML.read_text(encoding="utf-8")
    bad = re.sub(r"(?m)^(\s+icon:).*$", r"\1 not-a-feather-icon", text)
    assert bad != text
    (tmp_path / "action.yml").write_text(bad, encoding="utf-8")
    proc = run(
        tool("check-jsonschema"), "--builtin-schema", "vendor.github-actions",
        tmp_path / "action.yml",
    )  # fmt: skip
    assert proc.returncode != 0, explain(proc)
    assert "icon" in proc.stdout + proc.stderr


# --------------------------------------------------------------------------
# actionlint
# --------------------------------------------------------------------------


def actionlint(*files: Path, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return run(tool("actionlint"), "-no-color", "-config-file", ACTIONLINT_CONFIG, *files, cwd=cwd)


def test_actionlint_passes_on_workflows_and_examples():
    proc = actionlint(*workflow_files())
    assert proc.returncode == 0, explain(proc)


def test_actionlint_config_knows_the_gpu_label():
    labels = load(ACTIONLINT_CONFIG)["self-hosted-runner"]["labels"]
    assert "gpu" in labels


def fake_project(tmp_path: Path, workflow: Path, text: str) -> Path:
    """A checkout holding this action.yml and ``workflow`` using it as ``./``."""
    (tmp_path / ".git").mkdir()
    shutil.copy(ACTION_YML, tmp_path / "action.yml")
    wf_dir = tmp_path / ".github" / "workflows"
    wf_dir.mkdir(parents=True)
    target = wf_dir / workflow.name
    target.write_text(text, encoding="utf-8")
    return target


def test_example_inputs_and_outputs_exist_in_action_yml(tmp_path: Path):
    """actionlint checks `with:` keys, required inputs and `steps.<id>.outputs.*`
    against a local action's action.yml: point the example at this one."""
    text = EXAMPLE_GATE.read_text(encoding="utf-8")
    assert f"uses: {PUBLISHED_ACTION}" in text
    local = fake_project(tmp_path, EXAMPLE_GATE, text.replace(PUBLISHED_ACTION, "./"))
    proc = actionlint(local.relative_to(tmp_path), cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)


def test_actionlint_catches_an_unknown_input(tmp_path: Path):
    """Control for the test above: a misspelt input fails actionlint."""
    text = EXAMPLE_GATE.read_text(encoding="utf-8").replace(PUBLISHED_ACTION, "./")
    bad = text.replace("slice-epsilon:", "slice-epsilom:")
    assert bad != text
    local = fake_project(tmp_path, EXAMPLE_GATE, bad)
    proc = actionlint(local.relative_to(tmp_path), cwd=tmp_path)
    assert proc.returncode != 0, explain(proc)
    assert "slice-epsilom" in proc.stdout


# --------------------------------------------------------------------------
# action.yml: the contract
# --------------------------------------------------------------------------


def test_metadata(action: dict[str, Any]):
    assert action["name"]
    assert action["author"]
    assert 0 < len(action["description"]) <= 125
    assert action["branding"]["icon"] and action["branding"]["color"]


def test_input_names_are_the_contract(action: dict[str, Any]):
    names = set(action["inputs"])
    assert names == CONTRACT_INPUTS, (
        f"missing: {sorted(CONTRACT_INPUTS - names)}, unexpected: {sorted(names - CONTRACT_INPUTS)}"
    )


def test_inputs_defaults_and_descriptions(action: dict[str, Any]):
    for name, spec in action["inputs"].items():
        assert len(str(spec.get("description", "")).strip()) >= 10, f"{name}: no description"
        required = bool(spec.get("required", False))
        assert required == (name in REQUIRED_INPUTS), f"{name}: required={required}"
        if required:
            assert "default" not in spec, f"{name}: a required input has no default"
            continue
        assert "default" in spec, f"{name}: every optional input spells out its default"
        default = spec["default"]
        # YAML would read on/off/true/16 unquoted as bool or int; the runner
        # passes strings, and the contract says every default is a string.
        assert isinstance(default, str), f"{name}: default {default!r} is not a string"
        assert default == NON_EMPTY_DEFAULTS.get(name, ""), f"{name}: default {default!r}"


def test_empty_defaults_are_explained(action: dict[str, Any]):
    for name, spec in action["inputs"].items():
        if spec.get("default") == "":
            assert "''" in spec["description"], f"{name}: say what '' means"


def test_github_token_default(action: dict[str, Any]):
    assert action["inputs"]["github-token"]["default"] == "${{ github.token }}"


def test_output_names_are_the_contract(action: dict[str, Any]):
    outputs = action["outputs"]
    assert set(outputs) == CONTRACT_OUTPUTS
    for name, spec in outputs.items():
        assert spec.get("description"), f"{name}: no description"
        # A Docker action's outputs come from $GITHUB_OUTPUT, not `value:`.
        assert "value" not in spec, f"{name}: `value` is only for composite actions"


def test_runs_the_prebuilt_image(action: dict[str, Any]):
    runs = action["runs"]
    assert runs["using"] == "docker"
    assert runs["image"].startswith("docker://ghcr.io/")
    assert runs["image"] == f"docker://{IMAGE}"


def test_runner_env_names_are_distinct(action: dict[str, Any]):
    """The runner passes input NAME as INPUT_<NAME upper-cased, spaces -> _>."""
    env = {"INPUT_" + name.replace(" ", "_").upper() for name in action["inputs"]}
    assert len(env) == len(action["inputs"])
    assert "INPUT_BASE-MODEL" in env and "INPUT_GITHUB-TOKEN" in env
    for name in action["inputs"]:
        assert re.fullmatch(r"[a-z][a-z0-9]*(-[a-z0-9]+)*", name), name


def action_module() -> Any:
    """adaptergate.action, the container's entry point (fails, never skips)."""
    try:
        import adaptergate.action as module
    except ModuleNotFoundError as exc:
        problem = str(exc)
    else:
        return module
    pytest.fail(
        f"adaptergate.action cannot be imported ({problem}); it is the container's "
        "entry point and must expose INPUT_NAMES and OUTPUT_NAMES"
    )


def test_action_module_reads_every_input(action: dict[str, Any]):
    names = tuple(action_module().INPUT_NAMES)
    assert len(set(names)) == len(names), "INPUT_NAMES has duplicates"
    assert set(names) == set(action["inputs"]), (
        f"only in action.yml: {sorted(set(action['inputs']) - set(names))}, "
        f"only in adaptergate.action: {sorted(set(names) - set(action['inputs']))}"
    )


def test_action_module_writes_every_output(action: dict[str, Any]):
    names = tuple(action_module().OUTPUT_NAMES)
    assert len(set(names)) == len(names), "OUTPUT_NAMES has duplicates"
    assert set(names) == set(action["outputs"])


# --------------------------------------------------------------------------
# Workflows: every job bounded, every action pinned
# --------------------------------------------------------------------------


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_jobs_have_timeouts_and_pinned_actions(path: Path):
    workflow = load(path)
    assert workflow.get("permissions"), f"{path.name}: set least-privilege permissions"
    for job_id, job in workflow["jobs"].items():
        assert isinstance(job.get("timeout-minutes"), int), f"{path.name}: {job_id} has no timeout"
        for step in job.get("steps", []):
            uses = step.get("uses")
            if not uses or uses.startswith("./"):
                continue
            ref = uses.partition("@")[2]
            assert ref and ref not in {"main", "master", "latest", "HEAD"}, (
                f"{path.name}: {job_id}: {uses} is not pinned"
            )


def test_ci_workflow():
    ci = load(CI_YML)
    on = triggers(ci)
    assert "push" in on and "pull_request" in on
    assert ci["permissions"] == {"contents": "read"}
    assert ci["concurrency"]["group"]
    assert "pull_request" in str(ci["concurrency"]["cancel-in-progress"])
    text = CI_YML.read_text(encoding="utf-8")
    assert "actions/checkout@v4" in text and "actions/setup-python@v5" in text

    lint = ci["jobs"]["lint"]
    lint_runs = "\n".join(s.get("run", "") for s in lint["steps"])
    for command in ("ruff check", "actionlint", "hadolint Dockerfile",
                    "vendor.github-actions action.yml", "vendor.github-workflows"):  # fmt: skip
        assert command in lint_runs, f"lint job does not run {command!r}"

    test = ci["jobs"]["test"]
    assert test["runs-on"] == "ubuntu-latest"
    pythons = [s["with"]["python-version"] for s in steps_using(test, "actions/setup-python@")]
    assert pythons == ["3.11"]
    runs = [s for s in test["steps"] if "run" in s]
    apt = "\n".join(s["run"] for s in runs if "apt-get install" in s["run"])
    assert all(pkg in apt for pkg in ("podman", "buildah", "debootstrap"))
    (ci_run,) = [s for s in runs if ".ci/run" in s["run"]]
    # .ci/run pins torch==2.13.0; on GitHub's runners only PyTorch's CPU index
    # has a CPU build of it.
    cpu_index = "https://download.pytorch.org/whl/cpu"
    env = {**ci.get("env", {}), **test.get("env", {}), **ci_run.get("env", {})}
    assert env.get("PIP_EXTRA_INDEX_URL") == cpu_index or env.get("PIP_INDEX_URL") == cpu_index


def test_release_workflow():
    release = load(RELEASE_YML)
    assert triggers(release) == {"push": {"tags": ["v*.*.*"]}}
    assert release["permissions"] == {"contents": "read"}
    jobs = release["jobs"]

    image_jobs = [j for j in jobs.values() if steps_using(j, "docker/build-push-action@")]
    assert len(image_jobs) == 1
    image = image_jobs[0]
    assert image["permissions"] == {"contents": "read", "packages": "write"}
    assert "check-version" in str(image.get("needs"))
    (login,) = steps_using(image, "docker/login-action@")
    assert login["with"]["registry"] == "ghcr.io"
    assert login["with"]["password"] == "${{ secrets.GITHUB_TOKEN }}"
    (meta,) = steps_using(image, "docker/metadata-action@")
    # Same repository name and major tag as action.yml's image.
    assert meta["with"]["images"] == "ghcr.io/${{ github.repository_owner }}/adaptergate-action"
    assert IMAGE.rpartition(":")[0].endswith("/adaptergate-action")
    tags = meta["with"]["tags"]
    assert "type=semver,pattern={{version}}" in tags
    assert "type=semver,pattern=v{{major}}" in tags
    (build,) = steps_using(image, "docker/build-push-action@")
    assert build["with"]["push"] is True
    assert build["with"]["tags"] == "${{ steps.meta.outputs.tags }}"
    assert build["with"]["labels"] == "${{ steps.meta.outputs.labels }}"
    assert build["with"]["cache-from"] == "type=gha"
    assert build["with"]["cache-to"].startswith("type=gha")

    # id-token: write only where PyPI's trusted publishing needs it.
    for job_id, job in jobs.items():
        publishes = bool(steps_using(job, "pypa/gh-action-pypi-publish@"))
        oidc = job.get("permissions", {}).get("id-token") == "write"
        assert publishes == oidc, f"{job_id}: id-token: write only on the PyPI job"


def version_check_script() -> str:
    job = load(RELEASE_YML)["jobs"]["check-version"]
    (step,) = [s for s in job["steps"] if s.get("id") == "version"]
    assert step["env"]["TAG"] == "${{ github.ref_name }}"
    return step["run"]


@pytest.mark.skipif(sys.version_info < (3, 11), reason="the step uses tomllib (3.11+)")
@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_release_version_check_step(tmp_path: Path):
    """Runs the release's tag-vs-pyproject step as the runner would."""
    import tomllib

    version = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))["project"]["version"]
    assert version.split(".")[0] == IMAGE.rpartition(":v")[2], "image tag v<major> != version"
    script = tmp_path / "step.sh"
    script.write_text(version_check_script(), encoding="utf-8")
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"

    def step(tag: str) -> tuple[subprocess.CompletedProcess[str], str]:
        out = tmp_path / f"output-{tag}"
        out.write_text("")
        env = {**os.environ, "PATH": path, "TAG": tag, "GITHUB_OUTPUT": str(out)}
        proc = subprocess.run(
            ["bash", "-e", str(script)], cwd=REPO, env=env,
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        return proc, out.read_text()

    proc, output = step(f"v{version}")
    assert proc.returncode == 0, explain(proc)
    assert output.strip() == f"version={version}"

    proc, output = step("v9.9.9")
    assert proc.returncode != 0, explain(proc)
    assert "does not match" in proc.stdout and output == ""


# --------------------------------------------------------------------------
# The documented example workflows
# --------------------------------------------------------------------------


def gate_job(path: Path) -> dict[str, Any]:
    (job,) = load(path)["jobs"].values()
    return job


@pytest.mark.parametrize("path", [EXAMPLE_GATE, EXAMPLE_CONTAINER], ids=lambda p: p.name)
def test_example_runs_per_tenant_on_gpu_runners(path: Path):
    workflow = load(path)
    assert triggers(workflow) == {"pull_request": {"paths": ["adapters/**", "holdouts/**"]}}
    job = gate_job(path)
    assert job["runs-on"] == ["self-hosted", "gpu"]
    assert job["strategy"]["fail-fast"] is False
    assert len(job["strategy"]["matrix"]["tenant"]) >= 2
    assert job["concurrency"] == {
        "group": "adaptergate-${{ github.workflow }}-${{ github.event.pull_request.number }}"
        "-${{ matrix.tenant }}",
        "cancel-in-progress": True,
    }
    (checkout,) = steps_using(job, "actions/checkout@")
    assert checkout["with"]["lfs"] is True
    (upload,) = steps_using(job, "actions/upload-artifact@v4")
    assert upload["if"] == "always()"
    assert "${{ matrix.tenant }}" in upload["with"]["name"]  # unique per matrix job
    text = path.read_text(encoding="utf-8")
    assert "required" in text.lower() and "status" in text.lower()


def test_example_action_workflow():
    assert load(EXAMPLE_GATE)["permissions"] == {
        "contents": "read", "pull-requests": "write", "checks": "write",
    }  # fmt: skip
    job = gate_job(EXAMPLE_GATE)
    (gate,) = steps_using(job, "adaptergate/adaptergate-action@")
    assert gate["uses"] == PUBLISHED_ACTION
    with_ = gate["with"]
    assert with_["tenant"] == "${{ matrix.tenant }}"
    assert with_["holdout"] == "holdouts/${{ matrix.tenant }}.jsonl"
    assert with_["baseline-adapter"] == "adapters/${{ matrix.tenant }}/production"
    assert with_["candidate-adapter"] == "adapters/${{ matrix.tenant }}/candidate"
    assert with_["slice-epsilon"] == "0.10"
    assert with_["audit-log"]
    # A Docker action sees only the workspace: paths must be relative to it.
    for key in ("holdout", "base-model", "baseline-adapter", "candidate-adapter",
                "cache-dir", "audit-log", "report-dir"):  # fmt: skip
        value = with_[key]
        assert not value.startswith(("/", "~")) and ".." not in value.split("/"), (key, value)
    (upload,) = steps_using(job, "actions/upload-artifact@")
    assert upload["with"]["path"].rstrip("/") == with_["report-dir"]


def test_example_container_workflow():
    workflow = load(EXAMPLE_CONTAINER)
    assert workflow["permissions"]["contents"] == "read"
    job = gate_job(EXAMPLE_CONTAINER)
    assert job["container"]["image"] == IMAGE
    assert "--gpus all" in job["container"]["options"]
    commands = "\n".join(s.get("run", "") for s in job["steps"])
    assert "adaptergate gate" in commands and "--format pr-comment" in commands
    assert not steps_using(job, "adaptergate/adaptergate-action@")


# --------------------------------------------------------------------------
# Inputs and example commands against the CLI
# --------------------------------------------------------------------------

# Inputs the action handles itself; every other input is a `gate` option.
ACTION_ONLY_INPUTS = {"report-dir", "github-token", "comment", "check-run", "check-name"}


def gate_options() -> set[str]:
    import typer.main

    from adaptergate.cli.app import app

    gate = typer.main.get_command(app).commands["gate"]  # type: ignore[attr-defined]
    return {opt for p in gate.params for opt in (*p.opts, *p.secondary_opts)}


def test_every_gate_input_is_a_gate_option(action: dict[str, Any]):
    options = gate_options()
    missing = sorted(
        name for name in set(action["inputs"]) - ACTION_ONLY_INPUTS if f"--{name}" not in options
    )
    assert not missing, f"inputs with no `adaptergate gate --<name>` option: {missing}"


def test_container_example_uses_real_gate_options():
    job = gate_job(EXAMPLE_CONTAINER)
    (script,) = [s["run"] for s in job["steps"] if "adaptergate gate" in s.get("run", "")]
    command = script[script.index("adaptergate gate") :]
    used = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", command))
    assert {"--tenant", "--holdout", "--format"} <= used
    assert used <= gate_options(), sorted(used - gate_options())


def publish_options() -> set[str]:
    import typer.main

    from adaptergate.cli import publish
    from adaptergate.cli.app import app

    publish.register(app)  # idempotent: a no-op once the app wires it itself
    command = typer.main.get_command(app).commands["publish"]  # type: ignore[attr-defined]
    return {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}


def test_publish_example_posts_fork_reports_without_running_their_code():
    workflow = load(EXAMPLE_PUBLISH)
    assert triggers(workflow) == {"workflow_run": {"workflows": ["adaptergate"], "types": ["completed"]}}
    assert load(EXAMPLE_GATE)["name"] == "adaptergate"  # the workflow it follows
    assert workflow["permissions"] == {
        "contents": "read", "actions": "read", "pull-requests": "write", "checks": "write",
    }  # fmt: skip
    (job,) = workflow["jobs"].values()
    assert "head_repository.full_name != github.repository" in job["if"]  # forks only
    assert not steps_using(job, "actions/checkout@")  # never the pull request's code
    (download,) = steps_using(job, "actions/download-artifact@")
    assert download["with"]["run-id"] == "${{ github.event.workflow_run.id }}"
    assert download["with"]["pattern"] == "adaptergate-report-*"
    (gate_upload,) = steps_using(gate_job(EXAMPLE_GATE), "actions/upload-artifact@")
    assert gate_upload["with"]["name"].startswith("adaptergate-report-")
    (script,) = [s["run"] for s in job["steps"] if "adaptergate publish" in s.get("run", "")]
    command = script[script.index("adaptergate publish") :]
    used = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", command))
    assert {"--pr", "--sha", "--run-url"} <= used
    assert used <= publish_options(), sorted(used - publish_options())


# --------------------------------------------------------------------------
# README: the inputs and outputs tables are generated from action.yml
# --------------------------------------------------------------------------

TABLES_SCRIPT = REPO / "scripts" / "action_tables.py"


def test_readme_action_tables_match_action_yml():
    proc = run(sys.executable, TABLES_SCRIPT, "--check")
    assert proc.returncode == 0, explain(proc) + "\nrun: python scripts/action_tables.py"


def test_readme_action_tables_list_every_input_and_output(action: dict[str, Any]):
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    inputs = readme[readme.index("<!-- action-inputs:start"):readme.index("<!-- action-inputs:end -->")]
    outputs = readme[readme.index("<!-- action-outputs:start"):readme.index("<!-- action-outputs:end -->")]
    assert {m for m in re.findall(r"^\| `([a-z0-9-]+)` \|", inputs, re.M)} == set(action["inputs"])
    assert {m for m in re.findall(r"^\| `([a-z0-9-]+)` \|", outputs, re.M)} == set(action["outputs"])


def test_action_tables_check_catches_drift(tmp_path: Path):
    """Control: a description changed in action.yml and not in README fails --check."""
    text = ACTION_YML.read_text(encoding="utf-8")
    changed = text.replace("Candidate minus baseline aggregate score.", "Candidate minus baseline, changed.")
    assert changed != text
    (tmp_path / "action.yml").write_text(changed, encoding="utf-8")
    shutil.copy(REPO / "README.md", tmp_path / "README.md")
    args = ("--readme", tmp_path / "README.md", "--action", tmp_path / "action.yml")
    proc = run(sys.executable, TABLES_SCRIPT, "--check", *args)
    assert proc.returncode == 1 and "Candidate minus baseline, changed." in proc.stdout, explain(proc)
    proc = run(sys.executable, TABLES_SCRIPT, *args)  # rewrite, then it is in sync
    assert proc.returncode == 0, explain(proc)
    assert run(sys.executable, TABLES_SCRIPT, "--check", *args).returncode == 0


# --------------------------------------------------------------------------
# Release: action.yml pinned to the version's image, the tags moved
# --------------------------------------------------------------------------


def test_release_pins_the_image_and_moves_the_major_tag_after_pushing_it():
    jobs = load(RELEASE_YML)["jobs"]
    pin = jobs["pin-action"]
    assert set(pin["needs"]) == {"check-version", "image"}  # only once the image is pushed
    assert pin["permissions"] == {"contents": "write"}
    (step,) = [s for s in pin["steps"] if s.get("id") == "pin"]
    assert step["env"] == {"VERSION": "${{ needs.check-version.outputs.version }}",
                           "TAG": "${{ github.ref_name }}", "OWNER": "${{ github.repository_owner }}"}
    # the image job pushes the tag that the pinned action.yml names
    (meta,) = steps_using(jobs["image"], "docker/metadata-action@")
    assert "type=semver,pattern={{version}}" in meta["with"]["tags"]


@pytest.mark.skipif(shutil.which("bash") is None or shutil.which("git") is None, reason="needs bash and git")
@pytest.mark.parametrize("version, moves_major", [("1.2.3", True), ("1.3.0rc1", False)])
def test_release_pin_step_runs(tmp_path: Path, version: str, moves_major: bool):
    """Runs the release's pin step as the runner would: a checkout of the tag, a remote to push to."""
    (step,) = [s for s in load(RELEASE_YML)["jobs"]["pin-action"]["steps"] if s.get("id") == "pin"]
    genv = {"GIT_AUTHOR_NAME": "dev", "GIT_AUTHOR_EMAIL": "dev@example.com", "GIT_COMMITTER_NAME": "dev",
            "GIT_COMMITTER_EMAIL": "dev@example.com", "HOME": str(tmp_path), "GIT_CONFIG_NOSYSTEM": "1",
            "PATH": os.environ.get("PATH", "")}

    def git(*args: str, cwd: Path) -> str:
        return subprocess.run(["git", *args], cwd=cwd, env=genv, capture_output=True, text=True,
                              check=True).stdout.strip()

    remote, work = tmp_path / "remote.git", tmp_path / "work"
    git("init", "-q", "--bare", str(remote), cwd=tmp_path)
    work.mkdir()
    git("init", "-q", "-b", "main", cwd=work)
    shutil.copy(ACTION_YML, work / "action.yml")
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", "source", cwd=work)
    tag = f"v{version}"
    git("tag", "-a", tag, "-m", tag, cwd=work)
    git("remote", "add", "origin", str(remote), cwd=work)
    git("push", "-q", "origin", "main", f"refs/tags/{tag}", cwd=work)
    source = git("rev-parse", "HEAD", cwd=work)
    git("checkout", "-q", "--detach", tag, cwd=work)  # what actions/checkout does on a tag push
    out = tmp_path / "output"
    out.write_text("")
    script = tmp_path / "step.sh"
    script.write_text(step["run"], encoding="utf-8")
    env = {**os.environ, **genv, "VERSION": version, "TAG": tag, "OWNER": "AdapterGate",
           "GITHUB_OUTPUT": str(out), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{genv['PATH']}"}
    proc = subprocess.run(["bash", "-e", str(script)], cwd=work, env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, explain(proc)
    image = f"ghcr.io/adaptergate/adaptergate-action:{version}"
    assert out.read_text().strip() == f"image=docker://{image}"
    pinned = git("rev-parse", f"refs/tags/{tag}^{{commit}}", cwd=remote)
    assert git("rev-parse", f"{pinned}^", cwd=remote) == source  # one commit on top of the tagged one
    assert git("diff", "--name-only", source, pinned, cwd=remote) == "action.yml"
    text = git("show", f"{pinned}:action.yml", cwd=remote)
    assert yaml.safe_load(text)["runs"]["image"] == f"docker://{image}"
    assert text.replace(image, IMAGE) == ACTION_YML.read_text(encoding="utf-8").rstrip("\n")
    tags = git("tag", "--list", cwd=remote).split()
    if moves_major:
        assert git("rev-parse", "refs/tags/v1^{commit}", cwd=remote) == pinned
    else:
        assert "v1" not in tags and "pre-release" in proc.stdout


def test_changelog_keeps_a_changelog():
    text = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    assert text.startswith("# Changelog\n") and "keepachangelog.com" in text
    versions = re.findall(r"^## \[([^\]]+)\]", text, re.M)
    assert versions[0] == "Unreleased" and "0.5.4" in versions
    unreleased = text[text.index("## [Unreleased]"):text.index("## [0.5.4]")]
    kinds = re.findall(r"^### (.+)$", unreleased, re.M)
    assert kinds and set(kinds) <= {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}
    assert "README.md#migrating-from-054" in unreleased and "1.0.0" in unreleased
    for version in versions:  # every version heading has its link
        assert re.search(rf"^\[{re.escape(version)}\]: https://", text, re.M), version
