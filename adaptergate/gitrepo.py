"""Reading the git repository that holds a manifest (the one module that runs git).

Every call is ``git -c safe.directory=<top> -C <top> …`` with no prompt, the C
locale and a time limit. ``safe.directory``: in a container action the
workspace belongs to the runner's user, not to root, and git refuses such a
repository otherwise.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from adaptergate.errors import InvalidInputError

__all__ = ["GitRepo"]

GIT_TIMEOUT_S = 120


def _run(cwd: Path, safe: Path, args: tuple[str, ...], stdin: bytes | None) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    try:
        return subprocess.run(
            ["git", "-c", f"safe.directory={safe}", "-C", str(cwd), *args], input=stdin, capture_output=True,
            env=env, timeout=GIT_TIMEOUT_S, check=False,
        )
    except FileNotFoundError:
        raise InvalidInputError("git is not installed (the manifest's history is its git log)") from None
    except subprocess.TimeoutExpired:
        raise InvalidInputError(f"git {args[0]} in {cwd} did not finish within {GIT_TIMEOUT_S} s") from None


def error_line(res: subprocess.CompletedProcess[bytes]) -> str:
    """git's first error line, without ``fatal:``."""
    lines = res.stderr.decode("utf-8", "replace").strip().splitlines()
    return lines[0].removeprefix("fatal: ") if lines else f"exit status {res.returncode}"


class GitRepo:
    """The repository holding ``path`` (a file or a directory); ``why`` completes the error."""

    def __init__(self, path: Path, *, why: str = "") -> None:
        start = path if path.is_dir() else path.parent
        if not start.is_dir():
            raise InvalidInputError(f"{path}: directory {start} not found")
        res = _run(start, start.resolve(), ("rev-parse", "--show-toplevel"), None)
        if res.returncode != 0:
            raise InvalidInputError(f"{path} is not in a git repository{why}: {error_line(res)}")
        self.top = Path(res.stdout.decode("utf-8").strip())

    def run(self, *args: str, stdin: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        res = _run(self.top, self.top, args, stdin)
        if check and res.returncode != 0:
            raise InvalidInputError(f"git {args[0]} in {self.top} failed: {error_line(res)}")
        return res

    def text(self, *args: str) -> str:
        return self.run(*args).stdout.decode("utf-8", "replace")

    def relative(self, path: Path) -> str:
        return path.resolve().relative_to(self.top.resolve()).as_posix()

    def contains(self, path: Path) -> bool:
        return path.resolve().is_relative_to(self.top.resolve())

    def resolve_ref(self, ref: str) -> str:
        res = self.run("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
        if res.returncode != 0:
            raise InvalidInputError(
                f"--base-ref {ref!r} is not a commit in {self.top} (in a workflow, check out with"
                " `fetch-depth: 0` so the pull request's base commit is there)"
            )
        return res.stdout.decode("utf-8").strip()

    def show(self, ref: str, relpath: str) -> bytes | None:
        """The file at ``ref``; None when it did not exist there."""
        res = self.run("show", f"{ref}:{relpath}", check=False)
        if res.returncode == 0:
            return res.stdout
        if self.run("cat-file", "-e", f"{ref}:{relpath}", check=False).returncode == 0:
            raise InvalidInputError(f"git show {ref}:{relpath}: {error_line(res)}")
        return None

    def export(self, ref: str, relpath: str, dest: Path) -> Path | None:
        """Extract directory ``relpath`` as it was at ``ref`` into ``dest``; None if absent there."""
        listing = self.run("ls-tree", "-r", "-z", "--name-only", ref, "--", relpath, check=False)
        names = [n for n in listing.stdout.decode("utf-8").split("\0") if n]
        if listing.returncode != 0 or not names:
            return None
        for name in names:
            target = dest / Path(name).relative_to(relpath)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(self.run("show", f"{ref}:{name}").stdout)
        return dest
