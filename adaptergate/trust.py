"""The trust boundary: what content under review can and cannot decide.

Adapters, manifests and holdouts arrive in the pull request the gate reviews,
so they are untrusted. This module holds the few mechanisms every reader of
such content goes through:

* :func:`confine` — a path from PR content (a manifest entry, a path input
  pointing into the workspace) is resolved, symlinks included, and must lie
  inside the checkout; for a directory every symlink inside it is checked
  too. Otherwise one exit-2 line naming the path (never its content).
* :class:`BaseTree` — the trusted side of a pull request, its base commit:
  the files that decide *how* a candidate is judged (holdout, settings file,
  judge criteria, scorer module, baseline adapter) are read as they are
  there, and every difference from the checkout is a :class:`PolicyChange`
  the report shows.
* :func:`register_secret` / :func:`scrub` — every secret value the process
  holds (token, API keys) is registered once and replaced by ``***`` in
  every line a user can see (the error printer, the job log, the step
  summary, comments and check runs).
* :func:`inert` — user text that goes into a workflow command, an
  annotation title or the job log has its control characters (C0/C1, ANSI
  escapes, bidi overrides, zero-width marks) made visible instead of obeyed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adaptergate.errors import InvalidInputError
from adaptergate.models import PolicyChange

__all__ = [
    "MAX_JSON_DEPTH",
    "BaseTree",
    "YamlRefusal",
    "json_loads_bounded",
    "nesting_exceeds",
    "yaml_loads_bounded",
    "Pinned",
    "confine",
    "inert",
    "public_url",
    "register_secret",
    "scrub",
]

MAX_TREE_ENTRIES = 100_000
"""A directory from PR content with more entries than this is refused (bounded walk)."""


# --------------------------------------------------------------------------
# Secrets
# --------------------------------------------------------------------------

_SECRETS: set[str] = set()
MASK = "***"


def register_secret(value: str | None) -> None:
    """Remember a secret value so :func:`scrub` hides it (values under 4 characters are not
    secrets worth masking and would blank ordinary text)."""
    if value and len(value.strip()) >= 4:
        _SECRETS.add(value.strip())


def scrub(text: str) -> str:
    """``text`` with every registered secret replaced by ``***`` (longest first)."""
    if not _SECRETS or not text:
        return text
    for secret in sorted(_SECRETS, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def public_url(url: str) -> str:
    """``url`` without credentials, query or fragment: what logs and reports may show."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


# --------------------------------------------------------------------------
# Inert text
# --------------------------------------------------------------------------

# C0 controls but tab/newline, DEL, C1 controls, and the format characters that
# reorder or hide text: bidi embeddings/overrides/isolates, zero-width marks, BOM.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
_CONTROL_NL = re.compile(_CONTROL.pattern[:-1] + "\n\t]")


def _visible(m: re.Match[str]) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def inert(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with control and bidi characters shown as ``\\x1b`` / ``\\u202e`` escapes.

    With ``keep_newlines`` line breaks and tabs stay (a multi-line report);
    otherwise they are escaped too (one workflow command, one title)."""
    return (_CONTROL if keep_newlines else _CONTROL_NL).sub(_visible, text)


_LINE_BREAKS = re.compile(r"[\r\n\t\v\f\x85\u2028\u2029]+")
_SURROGATE = re.compile("[\ud800-\udfff]")


def plain_line(value: Any, limit: int | None = None) -> str:
    """User text as one printable line: line breaks as spaces, control, bidi and zero-width
    characters shown as ``\\xNN`` / ``\\uNNNN`` (:func:`inert`), lone surrogates as ``\\uNNNN``
    (unencodable), cut at ``limit`` (with an ellipsis)."""
    text = "" if value is None else value if isinstance(value, str) else str(value)
    text = inert(_LINE_BREAKS.sub(" ", text))
    text = _SURROGATE.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text)
    return text[:limit] + "…" if limit and len(text) > limit else text


# --------------------------------------------------------------------------
# Bounded parsing of content under review
# --------------------------------------------------------------------------

MAX_JSON_DEPTH = 64
"""Deepest nesting of arrays/objects accepted in JSON (or YAML) from a pull request.

Real files nest a handful of levels (a safetensors header 3, a PEFT or
transformers config 4 or 5); far deeper input only exists to exhaust the
parser's recursion (100,000 levels make ``json.loads`` raise RecursionError).
"""

_CONTAINERS = (dict, list, tuple, set, frozenset)


def nesting_exceeds(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the containers of parsed JSON/YAML ``value`` nest deeper than ``limit``.

    A top-level object or array is level 1. Iterative (no recursion), linear
    in the number of containers.
    """
    if not isinstance(value, _CONTAINERS):
        return False
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((c, depth + 1) for c in children if isinstance(c, _CONTAINERS))
    return False


def _may_nest_deeper(text: str | bytes, limit: int) -> bool:
    """False when ``text`` holds too few brackets to nest deeper than ``limit`` (C speed)."""
    if isinstance(text, bytes):
        return text.count(b"[") + text.count(b"{") > limit
    return text.count("[") + text.count("{") > limit


def json_loads_bounded(text: str | bytes, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` of untrusted text, refusing nesting deeper than ``max_depth``.

    Raises :class:`json.JSONDecodeError` for a syntax error and
    :class:`ValueError` with a one-line reason for the rest (too deep, an
    integer beyond Python's digit limit, out of memory), never
    RecursionError or MemoryError.
    """
    too_deep = f"nested deeper than {max_depth} levels"
    try:
        data = json.loads(text)
    except RecursionError:
        raise ValueError(too_deep) from None
    except MemoryError:
        raise ValueError("too large to parse") from None
    if _may_nest_deeper(text, max_depth) and nesting_exceeds(data, max_depth):
        raise ValueError(too_deep)
    return data


class YamlRefusal(Exception):
    """A construct the manifest loader refuses, at a 1-based line."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(reason)
        self.line = line
        self.reason = reason


_yaml_loader_class: Any = None


def _bounded_yaml_loader() -> Any:
    """``yaml.SafeLoader`` without aliases and with bounded nesting, for YAML under review.

    SafeLoader already refuses ``!!python/...`` tags (no object is ever
    constructed from a tag). On top: an alias (``*name``) is refused, since a
    few lines of anchors and aliases stand for an exponentially large
    document (a "billion laughs" card took minutes to dump) and a manifest
    has no use for them; and collections nested deeper than
    :data:`MAX_JSON_DEPTH` are refused while composing,
    before the composer's recursion reaches Python's limit. Both raise
    :class:`YamlRefusal` with the line.
    """
    global _yaml_loader_class
    if _yaml_loader_class is None:
        import yaml

        class ManifestLoader(yaml.SafeLoader):  # type: ignore[misc]
            _depth = 0

            def compose_node(self, parent: Any, index: Any) -> Any:
                if self.check_event(yaml.AliasEvent):
                    event = self.peek_event()
                    raise YamlRefusal(
                        event.start_mark.line + 1,
                        f"YAML alias *{event.anchor} is not allowed"
                        " (write the value out)",
                    )
                nests = self.check_event(yaml.SequenceStartEvent, yaml.MappingStartEvent)
                if nests:
                    self._depth += 1
                    if self._depth > MAX_JSON_DEPTH:
                        line = self.peek_event().start_mark.line + 1
                        raise YamlRefusal(line, f"nested deeper than {MAX_JSON_DEPTH} levels")
                try:
                    return super().compose_node(parent, index)
                finally:
                    if nests:
                        self._depth -= 1

        _yaml_loader_class = ManifestLoader
    return _yaml_loader_class


def yaml_loads_bounded(text: str) -> Any:
    """``yaml.safe_load`` of untrusted text: no aliases, nesting at most :data:`MAX_JSON_DEPTH`
    (:class:`YamlRefusal` with the line), ``!!python`` tags refused (``yaml.YAMLError``)."""
    import yaml

    return yaml.load(text, Loader=_bounded_yaml_loader())  # noqa: S506 - a SafeLoader


# --------------------------------------------------------------------------
# Paths
# --------------------------------------------------------------------------


def _inside(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


def confine(path: Path, root: Path, what: str) -> Path:
    """``path`` resolved (symlinks included), which must lie inside ``root``.

    For a directory, every symlink inside it must resolve inside ``root``
    too (an adapter directory whose weights link to a file elsewhere is as
    much outside as a linked directory). Returns the resolved path; a path
    outside is one exit-2 line naming ``what`` and the path. A path that does
    not exist is returned resolved: the reader reports it missing.
    """
    root_r = root.resolve()
    lexical = path if path.is_absolute() else root / path
    try:
        resolved = lexical.resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise InvalidInputError(f"{what}: cannot resolve {path} ({type(exc).__name__})") from None
    if not _inside(resolved, root_r):
        shown = path.as_posix()
        hint = " (it is a symlink)" if _has_link(lexical) else ""
        raise InvalidInputError(
            f"{what}: {shown} lies outside the checkout {root}{hint}: paths in content under review"
            " must stay inside the repository"
        )
    if resolved.is_dir():
        _check_tree(resolved, root_r, what, path)
    return resolved


def _has_link(path: Path) -> bool:
    p = path
    for _ in range(256):
        if p.is_symlink():
            return True
        if p.parent == p:
            return False
        p = p.parent
    return False


def _check_tree(directory: Path, root: Path, what: str, shown: Path) -> None:
    entries = 0
    for top, dirs, files in os.walk(directory, followlinks=False):
        for name in (*dirs, *files):
            entries += 1
            if entries > MAX_TREE_ENTRIES:
                raise InvalidInputError(f"{what}: {shown} holds more than {MAX_TREE_ENTRIES:,} entries")
            p = Path(top) / name
            if p.is_symlink():
                try:
                    target = p.resolve()
                except (OSError, RuntimeError):
                    raise InvalidInputError(f"{what}: {p} is a symlink that cannot be resolved") from None
                if not _inside(target, root):
                    rel = p.relative_to(directory).as_posix()
                    raise InvalidInputError(
                        f"{what}: {shown.as_posix()}/{rel} is a symlink to a path outside the checkout {root}:"
                        " paths in content under review must stay inside the repository"
                    )


# --------------------------------------------------------------------------
# The base commit of a pull request
# --------------------------------------------------------------------------

_LFS_POINTER = re.compile(rb"^version https://git-lfs\.github\.com/spec/v1\n(?:.*\n)*?oid sha256:([0-9a-f]{64})\n")


@dataclass(frozen=True)
class Pinned:
    """A file or directory as the trusted side has it."""

    path: Path
    """What to read: the checkout's own path when it matches the base commit, else a copy."""
    shown: str
    """The path as the repository names it (for reports and annotations)."""
    change: PolicyChange | None = None
    """What the pull request changed in it (None: unchanged, or not part of the repository)."""

    @property
    def changed(self) -> bool:
        return self.change is not None


@dataclass
class BaseTree:
    """The pull request's base commit in the checkout at ``root``.

    ``commit`` is None when there is no pull request (push, schedule: the
    checkout itself is trusted). When a base commit is named but the clone does
    not hold it, :meth:`pin_file` and friends refuse (exit 2) to read a tracked
    file they cannot verify, naming the file and ``fetch-depth: 0``.
    """

    root: Path
    commit: str | None
    label: str = "the base commit"
    _repo: object | None = None
    _missing: str | None = None
    _workdir: Path | None = None
    _pinned: dict[tuple[str, str], Pinned] = field(default_factory=dict)

    @classmethod
    def open(cls, root: Path, commit: str | None, *, label: str | None = None) -> "BaseTree":
        from adaptergate.gitrepo import GitRepo

        tree = cls(root=root.resolve(), commit=commit, label=label or (f"base commit {commit[:7]}" if commit else ""))
        if commit is None:
            return tree
        try:
            tree._repo = repo = GitRepo(root)
        except InvalidInputError:
            tree._missing = f"{root} is not a git checkout"
            return tree
        res = repo.run("rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}", check=False)  # type: ignore[attr-defined]
        if res.returncode != 0:
            tree._missing = f"the base commit {commit[:12]} is not in this clone"
        else:
            tree.commit = res.stdout.decode().strip()
        return tree

    @property
    def active(self) -> bool:
        """Whether there is a base commit to compare with (a pull request)."""
        return self.commit is not None

    def cleanup(self) -> None:
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    # ---------------------------------------------------------------- helpers

    def _tmp(self) -> Path:
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="adaptergate-base-"))
        return self._workdir

    def _rel(self, path: Path) -> str | None:
        """``path`` relative to the repository, or None when it is not inside it."""
        repo = self._repo
        top = Path(repo.top).resolve() if repo is not None else self.root  # type: ignore[attr-defined]
        try:
            return path.resolve().relative_to(top).as_posix()
        except ValueError:
            return None

    def _tracked_at_head(self, rel: str) -> bool:
        repo = self._repo
        if repo is None:
            return False
        res = repo.run("ls-files", "--error-unmatch", "--", rel, check=False)  # type: ignore[attr-defined]
        return res.returncode == 0

    def _refuse_unverifiable(self, shown: str, what: str) -> None:
        raise InvalidInputError(
            f"{what} {shown}: cannot verify it against the pull request's base commit ({self._missing});"
            " check out with `fetch-depth: 0` (actions/checkout) so the gate can read its policy from the"
            " trusted side"
        )

    def _blob(self, rel: str) -> bytes | None:
        return self._repo.show(self.commit, rel)  # type: ignore[attr-defined,union-attr]

    def _lfs_content(self, blob: bytes, rel: str, what: str) -> bytes:
        """A Git LFS pointer's content from the local LFS store (the base version of a changed file)."""
        m = _LFS_POINTER.match(blob)
        if m is None:
            return blob
        oid = m.group(1).decode()
        git_dir = self._repo.text("rev-parse", "--git-common-dir").strip()  # type: ignore[attr-defined,union-attr]
        gd = Path(git_dir)
        if not gd.is_absolute():
            gd = Path(self._repo.top) / gd  # type: ignore[attr-defined,union-attr]
        obj = gd / "lfs" / "objects" / oid[:2] / oid[2:4] / oid
        if not obj.is_file():
            raise InvalidInputError(
                f"{what} {rel}: changed in this pull request, and the base commit's version is a Git LFS object"
                f" that is not fetched ({oid[:12]}): run `git lfs fetch origin {self.commit}` before the gate"
            )
        return obj.read_bytes()

    @staticmethod
    def _same(blob: bytes, here: bytes) -> bool:
        if blob == here:
            return True
        m = _LFS_POINTER.match(blob)
        return m is not None and hashlib.sha256(here).hexdigest() == m.group(1).decode()

    # ---------------------------------------------------------------- files

    def pin_file(self, path: Path, what: str) -> Pinned:
        """A policy file as the base commit has it.

        * no pull request, or the file is not part of the repository (staged by the
          workflow): the checkout's file, unchanged;
        * identical at the base commit: the checkout's file;
        * changed by the pull request: a copy of the base version, with the change noted;
        * added by the pull request: the checkout's file, noted as added (there is
          no trusted version: a human must review it).
        """
        return self._memo("file", path, what, self._pin_file)

    def _memo(self, kind: str, path: Path, what: str, pin: Any) -> Pinned:
        key = (kind, str(path))
        if key not in self._pinned:
            self._pinned[key] = pin(path, what, self._rel(path) or path.as_posix())
        return self._pinned[key]

    def _pin_file(self, path: Path, what: str, shown: str) -> Pinned:
        if not self.active:
            return Pinned(path, shown)
        rel = self._rel(path)
        if rel is None:
            return Pinned(path, shown)  # outside the repository: the workflow staged it
        if self._missing is not None:
            if self._repo is None or self._tracked_at_head(rel):
                self._refuse_unverifiable(shown, what)
            return Pinned(path, shown)
        blob = self._blob(rel)
        if blob is None:
            if not self._tracked_at_head(rel):
                # untracked (staged by the workflow, not content under review), or absent on
                # both sides (the reader reports it missing)
                return Pinned(path, shown)
            return Pinned(path, shown, _file_change(what, shown, "added"))
        try:
            here = path.read_bytes() if path.is_file() else None
        except OSError:
            here = None
        if here is not None and self._same(blob, here):
            return Pinned(path, shown)
        content = self._lfs_content(blob, shown, what)
        copy = self._tmp() / "files" / rel
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_bytes(content)
        return Pinned(copy, shown, _file_change(what, shown, "removed" if here is None else "changed"))

    def pin_dir(self, path: Path, what: str) -> Pinned:
        """A directory (a baseline adapter) as the base commit has it: every tracked file
        compared; a copy of the base version when the pull request changed any."""
        return self._memo("dir", path, what, self._pin_dir)

    def _pin_dir(self, path: Path, what: str, shown: str) -> Pinned:
        if not self.active:
            return Pinned(path, shown)
        rel = self._rel(path)
        if rel is None:
            return Pinned(path, shown)
        repo = self._repo
        if self._missing is not None:
            if repo is not None:
                listed = repo.run("ls-files", "-z", "--", rel, check=False)  # type: ignore[attr-defined]
                if listed.stdout.strip(b"\0"):
                    self._refuse_unverifiable(shown, what)
                return Pinned(path, shown)
            self._refuse_unverifiable(shown, what)
        listing = repo.run("ls-tree", "-r", "-z", "--name-only", self.commit, "--", rel, check=False)  # type: ignore[attr-defined,union-attr]
        names = [n for n in listing.stdout.decode("utf-8", "replace").split("\0") if n]
        if not names:
            at_head = repo.run("ls-files", "-z", "--", rel, check=False)  # type: ignore[attr-defined,union-attr]
            if at_head.stdout.strip(b"\0"):
                return Pinned(path, shown, _file_change(what, shown, "added"))
            return Pinned(path, shown)
        changed = False
        for name in names:
            here = path / Path(name).relative_to(rel)
            try:
                data = here.read_bytes() if here.is_file() and not here.is_symlink() else None
            except OSError:
                data = None
            blob = self._blob(name)
            if data is None or blob is None or not self._same(blob, data):
                changed = True
                break
        if not changed:
            head_files = repo.run("ls-files", "-z", "--", rel, check=False)  # type: ignore[attr-defined,union-attr]
            changed = sorted(n for n in head_files.stdout.decode("utf-8", "replace").split("\0") if n) != sorted(names)
        if not changed:
            return Pinned(path, shown)
        dest = self._tmp() / "dirs" / rel
        for name in names:
            target = dest / Path(name).relative_to(rel)
            target.parent.mkdir(parents=True, exist_ok=True)
            blob = self._blob(name) or b""
            target.write_bytes(self._lfs_content(blob, name, what))
        return Pinned(dest, shown, _file_change(what, shown, "changed"))

    def refuse_tracked(self, path: Path, what: str) -> None:
        """In a pull request, a directory the gate keeps its own state in (the result cache) may
        hold no file of the repository: a pull request could otherwise plant cached scores."""
        if not self.active or self._repo is None:
            return
        rel = self._rel(path)
        if rel is None:
            return
        res = self._repo.run("ls-files", "-z", "--", rel, check=False)  # type: ignore[attr-defined]
        if res.stdout.strip(b"\0"):
            raise InvalidInputError(
                f"{what}: {rel} holds files committed to the repository — the gate's result cache cannot be"
                " content under review (use a directory outside the checkout, or an untracked one)"
            )

    def pin_module(self, module: str, what: str) -> tuple[Path | None, PolicyChange | None]:
        """Where to import a workflow-named ``module`` from: a fresh directory holding only its
        top-level module or package — as the base commit has it in a pull request, as the
        checkout has it otherwise. ``(None, None)`` when the checkout does not hold it (an
        installed package). The checkout itself is never importable, so a file the pull
        request adds (``jinja2.py``, ``github.py``) can never shadow a library.

        A module the pull request added is refused: a pull request cannot bring the code
        it is judged by.
        """
        top = module.split(".", 1)[0]
        for cand in (self.root / f"{top}.py", self.root / top):
            if not (cand.exists() or cand.is_symlink()):
                continue
            if cand.is_dir() and not (cand / "__init__.py").exists():
                continue  # a namespace directory is not the module
            src = confine(cand, self.root, what)
            pinned = self.pin_file(src, what) if cand.suffix == ".py" else self.pin_dir(src, what)
            if pinned.change is not None and pinned.change.after == "added in this pull request":
                raise InvalidInputError(
                    f"{what} {pinned.shown}: not in the pull request's base commit — a pull request cannot"
                    " bring the code it is judged by; merge the module first"
                )
            dest = self._tmp() / "code" / top
            dest.mkdir(parents=True, exist_ok=True)
            if cand.suffix == ".py":
                shutil.copyfile(pinned.path, dest / cand.name)
            else:
                shutil.copytree(pinned.path, dest / top, dirs_exist_ok=True, symlinks=False)
            return dest, pinned.change
        return None, None


def _file_change(what: str, shown: str, how: str) -> PolicyChange:
    return PolicyChange(kind="file", what=f"{what} {shown}", after=f"{how} in this pull request")
