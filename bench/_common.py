"""Shared helpers for the side-by-side benchmarks in ``bench/``.

* :func:`ensure_venv054` builds (or reuses) a throwaway virtualenv holding the
  public ``adaptergate==0.5.4`` from PyPI, so the old CLI can be run next to
  the new one.
* :func:`run_measured` runs one command and records its wall time and the peak
  resident set size (RSS) of the child process, with an optional timeout. A
  command that runs past its timeout is killed and recorded as timed out
  ("> T s (timed out)"), never as a number.
* :func:`print_table` prints a plain-text table with aligned columns.

These are benchmark scripts: they print numbers, they assert nothing about
timings.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
WORK_DIR = BENCH_DIR / "_work"  # git-ignored
DEFAULT_VENV054 = WORK_DIR / "venv054"
OLD_VERSION = "0.5.4"

TIME_BIN = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None

# Fallback when /usr/bin/time is missing: a fresh wrapper process runs the
# command as its only child and reads getrusage(RUSAGE_CHILDREN) afterwards,
# which then describes exactly that child (Linux reports ru_maxrss in KiB).
_RUSAGE_WRAPPER = r"""
import resource, subprocess, sys, time
out, cmd = sys.argv[1], sys.argv[2:]
t0 = time.perf_counter()
rc = subprocess.call(cmd)
wall = time.perf_counter() - t0
maxrss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
with open(out, "w") as fh:
    fh.write(f"{wall:.2f} {maxrss}\n")
sys.exit(rc if rc >= 0 else 128 - rc)
"""


# --------------------------------------------------------------------------
# the 0.5.4 virtualenv
# --------------------------------------------------------------------------


def _venv_bin(venv: Path, name: str) -> Path:
    sub = "Scripts" if os.name == "nt" else "bin"
    return venv / sub / name


def _installed_version(python: Path) -> str | None:
    try:
        out = subprocess.run(
            [str(python), "-c", "import adaptergate; print(adaptergate.__version__)"],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tempfile.gettempdir(),  # never pick up a checkout from the cwd
            env=child_env(pythonpath=[]),
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def ensure_venv054(
    venv: Path = DEFAULT_VENV054,
    *,
    spec: str = f"adaptergate=={OLD_VERSION}",
    python: str = sys.executable,
    quiet: bool = False,
) -> Path:
    """Return the ``adaptergate`` console script of a venv holding 0.5.4.

    Reuses ``venv`` when it already holds adaptergate 0.5.4; otherwise creates
    it with ``python -m venv`` and ``pip install <spec>`` (``spec`` may also be
    a path to the 0.5.4 wheel). pip pulls typer, pydantic and rich.
    """
    venv = Path(venv)
    vpython = _venv_bin(venv, "python")
    script = _venv_bin(venv, "adaptergate")
    if script.exists() and _installed_version(vpython) == OLD_VERSION:
        return script
    if venv.exists():
        if not quiet:
            print(f"[venv] {venv} exists but holds no adaptergate {OLD_VERSION}: recreating")
        shutil.rmtree(venv)
    venv.parent.mkdir(parents=True, exist_ok=True)
    if not quiet:
        print(f"[venv] creating {venv} and installing {spec} ...", flush=True)
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(vpython), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", spec],
        check=True,
    )
    got = _installed_version(vpython)
    if got != OLD_VERSION or not script.exists():
        raise RuntimeError(f"{venv}: expected adaptergate {OLD_VERSION}, found {got!r}")
    return script


# --------------------------------------------------------------------------
# child environment
# --------------------------------------------------------------------------


def child_env(pythonpath: Sequence[str | Path] = (), extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for a benchmarked child: single-threaded BLAS/OpenMP.

    ``PYTHONPATH`` is *replaced* by ``pythonpath`` (an inherited one could
    make the 0.5.4 venv import the working tree's package, or vice versa).
    Bytecode is cached under ``bench/_work/pycache`` (``PYTHONPYCACHEPREFIX``)
    even when the caller's environment says ``PYTHONDONTWRITEBYTECODE``, so a
    run measures what an installed package costs, not recompiling sources.
    """
    env = dict(os.environ)
    # PYTHONPATH is set below; the others would skew the comparison: no
    # bytecode cache means recompiling a checkout on every start, and
    # unbuffered stdio penalises whichever side writes in small pieces.
    for var in ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "PYTHONPROFILEIMPORTTIME",
                "PYTHONDEVMODE", "PYTHONMALLOC", "PYTHONTRACEMALLOC", "PYTHONWARNINGS"):
        env.pop(var, None)
    # Bytecode for both sides goes to bench/_work/pycache, not into the source tree.
    env["PYTHONPYCACHEPREFIX"] = str(WORK_DIR / "pycache")
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(str(p) for p in pythonpath)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        env[var] = "1"
    env["COLUMNS"] = "120"  # rich/typer: stable layout when not on a TTY
    if extra:
        env.update(extra)
    return env


# --------------------------------------------------------------------------
# measured runs
# --------------------------------------------------------------------------


@dataclass
class RunResult:
    cmd: list[str]
    wall_s: float | None
    """Wall time measured by this process around the child (None if timed out)."""
    peak_rss_kb: int | None
    """Peak RSS of the child in KiB (at the moment of the kill when timed out)."""
    rc: int | None
    timed_out: bool = False
    timeout_s: float | None = None
    elapsed_s: float = 0.0
    """Wall time until the child finished or was killed."""
    stdout_path: str | None = None
    stderr_tail: str = ""
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.timed_out and self.rc is not None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def _kill(pid: int, sig: int = signal.SIGKILL) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _killpg(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_measured(
    cmd: Sequence[str | Path],
    *,
    cwd: str | Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
    stdout_path: str | Path | None = None,
) -> RunResult:
    """Run ``cmd``; return wall time, peak RSS of the child and exit status.

    stdout goes to ``stdout_path`` (or is discarded), stderr is kept (tail).
    On timeout the measured process is killed with SIGKILL (the whole process
    group, which was created for it) and the result says ``timed_out``.
    """
    cmd = [str(c) for c in cmd]
    try:
        load1 = os.getloadavg()[0]
    except OSError:
        load1 = None
    with tempfile.TemporaryDirectory(prefix="agbench-") as tmp:
        tfile = os.path.join(tmp, "rusage.txt")
        errfile = os.path.join(tmp, "stderr.txt")
        if TIME_BIN:
            full = [TIME_BIN, "-f", "%e %M", "-o", tfile, *cmd]
        else:
            full = [sys.executable, "-c", _RUSAGE_WRAPPER, tfile, *cmd]
        out_fh = open(stdout_path, "wb") if stdout_path else subprocess.DEVNULL
        err_fh = open(errfile, "wb")
        timed_out = False
        try:
            t0 = time.perf_counter()
            proc = subprocess.Popen(
                full,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out_fh,
                stderr=err_fh,
                start_new_session=True,  # own process group: a timeout kills it all
            )
            try:
                rc = proc.wait(timeout=timeout)
            except BaseException as exc:  # the timeout, or Ctrl-C / SIGTERM of the benchmark
                if not isinstance(exc, subprocess.TimeoutExpired):
                    _killpg(proc.pid)  # our child is in its own session: take it down with us
                    raise
                timed_out = True
                # Kill the measured child first so that time / the wrapper still
                # writes the peak RSS reached so far; then the whole group.
                for child in _children(proc.pid):
                    _kill(child)
                try:
                    rc = proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    _killpg(proc.pid)
                    rc = proc.wait()
            elapsed = time.perf_counter() - t0
            _killpg(proc.pid)  # stragglers, if the child forked any
        finally:
            if stdout_path:
                out_fh.close()
            err_fh.close()
        peak = None
        try:
            lines = [ln for ln in Path(tfile).read_text().splitlines() if ln.strip()]
            if lines:
                peak = int(float(lines[-1].split()[1]))
        except (OSError, ValueError, IndexError):
            peak = None
        stderr = Path(errfile).read_bytes().decode("utf-8", "replace")
    tail = "\n".join(stderr.strip().splitlines()[-15:])
    return RunResult(
        cmd=cmd,
        wall_s=None if timed_out else elapsed,
        peak_rss_kb=peak,
        rc=None if timed_out else rc,
        timed_out=timed_out,
        timeout_s=timeout,
        elapsed_s=elapsed,
        stdout_path=str(stdout_path) if stdout_path else None,
        stderr_tail=tail,
        extra={"load1_before": load1},
    )


def best_of(results: list[RunResult]) -> RunResult:
    """The fastest completed run (the first one if none completed)."""
    done = [r for r in results if r.ok]
    return min(done, key=lambda r: r.wall_s) if done else results[0]


def median_of(results: list[RunResult]) -> RunResult:
    """The completed run of median wall time (the lower middle one of an even number;
    the first run if none completed). A whole run, so its peak RSS and exit status go
    with its time."""
    done = sorted((r for r in results if r.ok), key=lambda r: r.wall_s)
    return done[(len(done) - 1) // 2] if done else results[0]


# --------------------------------------------------------------------------
# formatting
# --------------------------------------------------------------------------


def fmt_time(r: RunResult | None) -> str:
    if r is None:
        return "-"
    if r.timed_out:
        return f"> {r.timeout_s:g} s (timed out)"
    if r.wall_s is None:
        return "?"
    if r.wall_s < 10:
        return f"{r.wall_s:.2f} s"
    return f"{r.wall_s:.1f} s"


def fmt_rss(r: RunResult | None) -> str:
    if r is None or r.peak_rss_kb is None:
        return "-"
    mib = r.peak_rss_kb / 1024
    s = f"{mib / 1024:.2f} GiB" if mib >= 1024 else f"{mib:.0f} MiB"
    return f">= {s}" if r.timed_out else s


def speedup(old: RunResult | None, new: RunResult | None) -> tuple[float | None, bool]:
    """(0.5.4 time / new time, is_lower_bound). None when not computable."""
    if old is None or new is None or not new.ok or not new.wall_s:
        return None, False
    if old.timed_out:
        return old.timeout_s / new.wall_s, True
    if not old.ok or old.wall_s is None:
        return None, False
    return old.wall_s / new.wall_s, False


def fmt_speedup(old: RunResult | None, new: RunResult | None) -> str:
    x, lower = speedup(old, new)
    if x is None:
        return "-"
    return f"{'> ' if lower else ''}{x:.1f}x"


def mem_ratio(old: RunResult | None, new: RunResult | None) -> float | None:
    """new peak RSS / 0.5.4 peak RSS (below 1 = the new one uses less)."""
    if old is None or new is None or not old.peak_rss_kb or new.peak_rss_kb is None:
        return None
    if old.timed_out:  # 0.5.4's peak is only a lower bound then
        return None
    return new.peak_rss_kb / old.peak_rss_kb


def fmt_mem_ratio(old: RunResult | None, new: RunResult | None) -> str:
    x = mem_ratio(old, new)
    return "-" if x is None else f"{x:.2f}"


_NUMERIC_CELL = re.compile(
    r"^(>=?\s*)?-?[\d,]+(\.\d+)?\s*(s|ms|x|KiB|MiB|GiB)?(\s*\(timed out\))?$"
)


def _is_numeric(cell: str) -> bool:
    return bool(_NUMERIC_CELL.match(cell.strip()))


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> str:
    """Plain-text table; numeric-looking cells right-aligned, text left."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, c in enumerate(row):
            widths[i] = max(widths[i], len(c))
    numeric_col = [
        all(_is_numeric(row[i]) or row[i] in ("-", "") for row in cells) and any(_is_numeric(row[i]) for row in cells)
        for i in range(len(headers))
    ]

    def line(values: Sequence[str]) -> str:
        out = []
        for i, v in enumerate(values):
            out.append(v.rjust(widths[i]) if numeric_col[i] else v.ljust(widths[i]))
        return "  ".join(out).rstrip()

    parts = []
    if title:
        parts.append(title)
        parts.append("=" * len(title))
    parts.append(line(list(headers)))
    parts.append("  ".join("-" * w for w in widths))
    parts.extend(line(row) for row in cells)
    return "\n".join(parts)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> None:
    print()
    print(format_table(headers, rows, title))
    print(flush=True)


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def fmt_n(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


def parse_size(text: str) -> int:
    t = text.strip().lower().replace("_", "")
    mult = 1
    if t.endswith("k"):
        mult, t = 1000, t[:-1]
    elif t.endswith("m"):
        mult, t = 1_000_000, t[:-1]
    return int(float(t) * mult)
