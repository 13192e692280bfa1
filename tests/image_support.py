"""Build the action's image with buildah and run its entrypoint like the runner.

No container engine is needed: ``buildah bud --isolation chroot`` builds, and
``buildah run --isolation chroot`` runs a command in a container's filesystem
(a chroot with /proc, /sys and /dev set up, the image's environment applied and
bind mounts made), which is all a GitHub container action step needs.

Everything lives in a private store under a temporary directory (its own
storage.conf, graph root and run root): nothing is read from or left in the
host's container storage (only buildah's blob-info cache, a small digest
database that root's buildah always keeps in /var/lib/containers/cache, is
touched). ``ImageLab.close`` removes containers, images, mounts and the store.
"""

from __future__ import annotations

import configparser
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import uuid
from contextlib import contextmanager
from pathlib import Path

DEBIAN_SUITE = "bookworm"  # its python3 is 3.11, like the project's CI
DEBIAN_MIRROR = os.environ.get("ADAPTERGATE_IMAGE_DEBIAN_MIRROR", "http://deb.debian.org/debian")
# What a PyTorch runtime image has that matters here: Python with pip, CA
# certificates, and (installed into it below) torch.
DEBIAN_PACKAGES = ("python3", "python3-pip", "ca-certificates")

ROOTFS_IMAGE = "localhost/adaptergate-test-rootfs:latest"
BASE_IMAGE = "localhost/adaptergate-test-base:latest"
ACTION_IMAGE = "localhost/adaptergate-test-action:latest"

# pip settings carried from the host's pip configuration into the build (the
# indexes, local wheel directories and CA bundle the host uses; nothing else).
PIP_KEYS = (
    "index-url", "extra-index-url", "find-links", "no-index", "cert", "client-cert",
    "trusted-host", "proxy", "default-timeout", "timeout", "retries", "prefer-binary",
)
PIP_CONF_IN_BUILD = "/etc/xdg/pip"  # a site config directory every pip reads
LOG_TAIL_LINES = 60
NOISE = ("WARNING: Location 'file://", "WARNING: Running pip as the 'root' user")


def missing_prerequisites() -> str | None:
    """Why the image test cannot run here, or None when it can."""
    if sys.platform != "linux":
        return "the image test needs Linux (buildah, debootstrap, chroot)"
    if os.geteuid() != 0:
        return "the image test needs root (debootstrap and buildah's chroot isolation)"
    missing = [tool for tool in ("buildah", "debootstrap") if shutil.which(tool) is None]
    if missing:
        return (
            f"the image test needs {' and '.join(missing)} "
            "(apt-get install buildah debootstrap; .ci/run installs them)"
        )
    return None


class ImageTestError(AssertionError):
    """A phase failed; the message carries the tail of its log."""


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    kept = [line for line in text if not line.startswith(NOISE)]
    return "\n".join(kept[-lines:])


def _mount_points_under(root: Path, include_root: bool) -> list[str]:
    top = str(root.resolve())
    points = []
    with open("/proc/self/mounts") as f:
        for line in f:
            point = line.split()[1].encode().decode("unicode_escape")
            if point.startswith(top + "/") or (include_root and point == top):
                points.append(point)
    return sorted(points, key=len, reverse=True)  # deepest first


def unmount_under(root: Path, include_root: bool = True) -> None:
    """Lazily unmount everything mounted below root (and root itself)."""
    for point in _mount_points_under(root, include_root):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)


class ImageLab:
    """A private buildah store and the phases of the image test, timed."""

    def __init__(self, work: Path):
        self.work = work
        self.logs = work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.store = work / "store"
        self.timings: dict[str, float] = {}
        self.container = ""  # a working container of the action image, once built
        self.config: dict = {}  # that image's OCI config (Entrypoint, Cmd, Env, Labels)
        self.driver = self._pick_storage_driver()

    # ------------------------------------------------------------ plumbing

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["CONTAINERS_STORAGE_CONF"] = str(self.store / "storage.conf")
        env["BUILDAH_ISOLATION"] = "chroot"
        env.setdefault("LC_ALL", "C.UTF-8")
        return env

    def _write_storage_conf(self, driver: str) -> None:
        self.store.mkdir(parents=True, exist_ok=True)
        (self.store / "storage.conf").write_text(
            "[storage]\n"
            f'driver = "{driver}"\n'
            f'graphroot = "{self.store / "root"}"\n'
            f'runroot = "{self.store / "run"}"\n'
        )

    def buildah(self, *args: str, log: str, timeout: float, check: bool = True,
                extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        cmd = ["buildah", "--root", str(self.store / "root"), "--runroot", str(self.store / "run"),
               "--storage-driver", self.driver, *args]
        return self.run(cmd, log=log, timeout=timeout, check=check, extra_env=extra_env)

    def run(self, cmd: list[str], *, log: str, timeout: float, check: bool = True,
            extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """Run cmd, stdout and stderr appended to logs/<log>.log; raise with its tail."""
        env = self._env()
        env.update(extra_env or {})
        path = self.logs / f"{log}.log"
        with path.open("ab") as out:
            out.write(("\n$ " + " ".join(cmd) + "\n").encode())
            out.flush()
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
            try:
                rc = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise ImageTestError(
                    f"{cmd[0]} ... timed out after {timeout:.0f}s ({log}); "
                    f"log tail:\n{log_tail(path)}"
                ) from None
        if check and rc != 0:
            raise ImageTestError(
                f"`{' '.join(cmd)}` exited {rc} ({log}); log tail:\n{log_tail(path)}")
        return subprocess.CompletedProcess(cmd, rc)

    def output(self, *args: str, log: str, timeout: float = 120) -> str:
        """A buildah command's stdout (stderr to the log)."""
        cmd = ["buildah", "--root", str(self.store / "root"), "--runroot", str(self.store / "run"),
               "--storage-driver", self.driver, *args]
        path = self.logs / f"{log}.log"
        with path.open("ab") as err:
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=err, env=self._env(),
                                  stdin=subprocess.DEVNULL, timeout=timeout, check=False)
        if proc.returncode != 0:
            raise ImageTestError(
                f"`{' '.join(cmd)}` exited {proc.returncode}; log tail:\n{log_tail(path)}")
        return proc.stdout.decode().strip()

    @contextmanager
    def phase(self, name: str):
        start = time.monotonic()
        try:
            yield
        finally:
            self.timings[name] = round(time.monotonic() - start, 1)

    def _pick_storage_driver(self) -> str:
        """overlay when this kernel and file system allow it (fast), else vfs."""
        wanted = os.environ.get("ADAPTERGATE_IMAGE_STORAGE_DRIVER")
        for driver in ([wanted] if wanted else ["overlay", "vfs"]):
            self.driver = driver
            self._write_storage_conf(driver)
            try:
                ctr = self.output("from", "scratch", log="storage-probe")
                self.output("mount", ctr, log="storage-probe")
                self.output("rm", ctr, log="storage-probe")
                return driver
            except (ImageTestError, subprocess.TimeoutExpired):
                self._wipe_store()
        raise ImageTestError(f"no buildah storage driver works here; log tail:\n"
                             f"{log_tail(self.logs / 'storage-probe.log')}")

    def _wipe_store(self) -> None:
        unmount_under(self.store)
        shutil.rmtree(self.store / "root", ignore_errors=True)
        shutil.rmtree(self.store / "run", ignore_errors=True)

    def close(self) -> None:
        """Remove containers, images, mounts and the store (gigabytes)."""
        for args in (("rm", "--all"), ("rmi", "--all", "--force")):
            try:
                self.buildah(*args, log="cleanup", timeout=300, check=False)
            except ImageTestError:
                pass
        self._wipe_store()

    # -------------------------------------------------------------- phases

    def debootstrap_rootfs(self, attempts: int = 2) -> None:
        """A minimal Debian with Python, straight into a scratch container.

        A second attempt, in a fresh container, absorbs a transient mirror error.
        """
        for attempt in range(1, attempts + 1):
            ctr = self.output("from", "scratch", log="debootstrap")
            mnt = Path(self.output("mount", ctr, log="debootstrap"))
            try:
                self.run(["debootstrap", "--variant=minbase",
                          f"--include={','.join(DEBIAN_PACKAGES)}",
                          DEBIAN_SUITE, str(mnt), DEBIAN_MIRROR], log="debootstrap", timeout=1200)
                break
            except ImageTestError:
                if attempt == attempts:
                    raise
                unmount_under(mnt, include_root=False)
                self.buildah("rm", ctr, log="debootstrap", timeout=120, check=False)
            finally:
                # what debootstrap can leave mounted in the target (/proc, /sys)
                unmount_under(mnt, include_root=False)
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (mnt / junk).glob("*"):
                if entry.is_file() and entry.name != "lock":
                    entry.unlink()
        self.buildah("umount", ctr, log="debootstrap", timeout=120)
        path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        self.buildah("config", "--env", f"PATH={path}", "--env", "LANG=C.UTF-8", ctr,
                     log="debootstrap", timeout=120)
        self.buildah("commit", "--quiet", "--rm", ctr, ROOTFS_IMAGE, log="debootstrap", timeout=600)

    def pip_mounts(self) -> list[str]:
        """`--volume` arguments giving RUN steps the host's pip configuration.

        The host's effective pip settings (indexes, local wheel directories,
        CA bundle) go into a pip.conf mounted at /etc/xdg/pip; local index
        and wheel directories are mounted read-only at their own paths. On
        this project's machines that is the local wheel of CPU torch and the
        local mirrors; elsewhere it is whatever pip uses there.
        """
        settings = host_pip_settings()
        conf_dir = self.work / "pip-conf"
        conf_dir.mkdir(exist_ok=True)
        dirs: set[str] = set()
        out = configparser.ConfigParser(interpolation=None)
        out["global"] = {}
        for key, value in settings.items():
            if key in ("cert", "client-cert"):
                if Path(value).is_file():
                    name = "ca.pem" if key == "cert" else "client.pem"
                    shutil.copyfile(value, conf_dir / name)
                    out["global"][key] = f"{PIP_CONF_IN_BUILD}/{name}"
                continue
            for item in value.split():
                local = urllib.parse.urlparse(item).path if item.startswith("file:") else item
                if local.startswith("/") and os.path.exists(local):
                    # a PEP 503 index links to its files beside it: mount its parent
                    top = os.path.dirname(local.rstrip("/")) if key.endswith("index-url") else local
                    if os.path.isfile(top):
                        top = os.path.dirname(top)
                    dirs.add(os.path.realpath(top))
            out["global"][key] = value
        with (conf_dir / "pip.conf").open("w") as f:
            out.write(f)
        mounts = [f"{conf_dir}:{PIP_CONF_IN_BUILD}:ro"]
        # keep only outermost directories (a mount inside another is redundant)
        for d in sorted(dirs):
            if not any(d != o and d.startswith(o.rstrip("/") + "/") for o in dirs):
                mounts.append(f"{d}:{d}:ro")
        return [arg for m in mounts for arg in ("--volume", m)]

    def build_base(self, torch_spec: str, pip_args: list[str] = ()) -> None:
        """The stand-in for a PyTorch runtime image: that Debian plus CPU torch.

        Like pytorch/pytorch 2.10 and later (Ubuntu's system Python, marked
        externally managed), torch goes into the system Python and the
        EXTERNALLY-MANAGED marker stays, so the Dockerfile must cope with it.
        """
        ctx = self.work / "base-context"
        ctx.mkdir(exist_ok=True)
        (ctx / "Containerfile").write_text(
            f"FROM {ROOTFS_IMAGE}\n"
            "RUN python3 -m pip install --no-cache-dir --no-compile --quiet --break-system-packages"
            f" {' '.join(pip_args)} '{torch_spec}' && python3 -c 'import torch'\n"
        )
        self.buildah("bud", "--isolation", "chroot", "--pull=never", *self.pip_mounts(),
                     "--tag", BASE_IMAGE, "--file", str(ctx / "Containerfile"), str(ctx),
                     log="base", timeout=1800)

    def build_action(self, repo: Path) -> None:
        """The project's Dockerfile, as is, on the stand-in base."""
        self.buildah("bud", "--isolation", "chroot", "--pull=never", *self.pip_mounts(),
                     "--build-arg", f"BASE_IMAGE={BASE_IMAGE}",
                     "--tag", ACTION_IMAGE, "--file", str(repo / "Dockerfile"), str(repo),
                     log="build", timeout=1800)

    def inspect(self, image: str) -> dict:
        return json.loads(self.output("inspect", "--type", "image", image, log="inspect"))

    def image_size(self, image: str) -> str:
        """buildah's human-readable size of an image (all its layers, uncompressed)."""
        rows = json.loads(self.output("images", "--json", image, log="inspect"))
        return str(rows[0]["size"])


def host_pip_settings() -> dict[str, str]:
    """The host's effective pip settings among PIP_KEYS (files, then PIP_* vars)."""
    code = (
        "import json\n"
        "from pip._internal.configuration import Configuration\n"
        "c = Configuration(isolated=False)\n"
        "c.load()\n"
        "print(json.dumps(list(c.items())))\n"
    )
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=60, check=True)
        items = json.loads(proc.stdout)
    except (subprocess.SubprocessError, ValueError, OSError):
        return {}
    merged: dict[str, str] = {}
    for section in ("global", "install", ":env:"):  # pip's own precedence, lowest first
        for full_key, value in items:
            sect, _, key = full_key.partition(".")
            if sect == section and key in PIP_KEYS:
                merged[key] = str(value)
    return merged


# ------------------------------------------------------------- the runner


class RunnerStep:
    """One container action step, laid out as the GitHub runner lays it out.

    The runner bind-mounts its work directories at /github/workspace,
    /github/home, /github/workflow and /github/file_commands, sets the
    working directory to /github/workspace, passes every input as
    INPUT_<NAME> (upper case, hyphens kept, defaults from action.yml filled
    in) and the GITHUB_* / RUNNER_* variables, and runs the image's
    ENTRYPOINT (plus its CMD, if any) as root.
    """

    def __init__(self, root: Path):
        self.root = root
        self.workspace = root / "workspace"
        self.home = root / "_github_home"
        self.workflow = root / "_github_workflow"
        self.file_commands = root / "_runner_file_commands"
        for d in (self.workspace, self.home, self.workflow, self.file_commands):
            d.mkdir(parents=True, exist_ok=True)
        (self.workflow / "event.json").write_text("{}\n")
        self.files = {}
        for var, stem in (("GITHUB_OUTPUT", "set_output"), ("GITHUB_STEP_SUMMARY", "step_summary"),
                          ("GITHUB_ENV", "set_env"), ("GITHUB_PATH", "add_path"),
                          ("GITHUB_STATE", "save_state")):
            name = f"{stem}_{uuid.uuid4()}"
            (self.file_commands / name).touch()
            self.files[var] = name

    def volumes(self) -> list[str]:
        pairs = ((self.home, "/github/home"), (self.workflow, "/github/workflow"),
                 (self.file_commands, "/github/file_commands"),
                 (self.workspace, "/github/workspace"))
        return [arg for host, ctr in pairs for arg in ("--volume", f"{host}:{ctr}")]

    def env(self, inputs: dict[str, str]) -> dict[str, str]:
        env = {f"INPUT_{name.replace(' ', '_').upper()}": value for name, value in inputs.items()}
        env.update({
            "HOME": "/github/home",
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "GITHUB_WORKSPACE": "/github/workspace",
            "GITHUB_EVENT_PATH": "/github/workflow/event.json",
            "GITHUB_EVENT_NAME": "workflow_dispatch",
            "GITHUB_REPOSITORY": "acme/adapters",
            "GITHUB_REPOSITORY_OWNER": "acme",
            "GITHUB_REF": "refs/heads/main",
            "GITHUB_REF_NAME": "main",
            "GITHUB_REF_TYPE": "branch",
            "GITHUB_SHA": "0123456789abcdef0123456789abcdef01234567",
            "GITHUB_RUN_ID": "4242",
            "GITHUB_RUN_NUMBER": "7",
            "GITHUB_RUN_ATTEMPT": "1",
            "GITHUB_JOB": "gate",
            "GITHUB_ACTION": "__adaptergate_adaptergate",
            "GITHUB_ACTOR": "octocat",
            "GITHUB_WORKFLOW": "adapter gate",
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_API_URL": "https://api.github.com",
            "GITHUB_GRAPHQL_URL": "https://api.github.com/graphql",
            # runner-side paths: they do not exist inside the container
            "RUNNER_OS": "Linux",
            "RUNNER_ARCH": "X64",
            "RUNNER_NAME": "gpu-runner-1",
            "RUNNER_ENVIRONMENT": "self-hosted",
            "RUNNER_TEMP": "/home/runner/work/_temp",
            "RUNNER_TOOL_CACHE": "/opt/hostedtoolcache",
            "RUNNER_WORKSPACE": "/home/runner/work/adapters",
        })
        for var, name in self.files.items():
            env[var] = f"/github/file_commands/{name}"
        return env

    def read(self, var: str) -> str:
        return (self.file_commands / self.files[var]).read_text(errors="replace")


def action_input_defaults(action_yml: Path) -> dict[str, str]:
    """Inputs with a default in action.yml, as the runner passes them.

    An expression default (``${{ github.token }}``) becomes '' (the test
    overrides those it cares about). Without PyYAML or action.yml: {}.
    """
    try:
        import yaml  # transformers' dependency, so present with the peft extra
    except ImportError:
        return {}
    try:
        data = yaml.safe_load(action_yml.read_text())
    except (OSError, yaml.YAMLError):
        return {}
    defaults = {}
    for name, spec in ((data or {}).get("inputs") or {}).items():
        if isinstance(spec, dict) and "default" in spec and spec["default"] is not None:
            value = spec["default"]
            if isinstance(value, bool):
                value = "true" if value else "false"
            value = str(value)
            defaults[name] = "" if "${{" in value else value
    return defaults


def parse_github_output(text: str) -> dict[str, str]:
    """name=value lines and name<<DELIMITER blocks, as the runner reads them."""
    out: dict[str, str] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delim = line.split("<<", 1)
            body = []
            i += 1
            while i < len(lines) and lines[i] != delim:
                body.append(lines[i])
                i += 1
            out[name] = "\n".join(body)
        elif "=" in line:
            name, value = line.split("=", 1)
            out[name] = value
        i += 1
    return out
