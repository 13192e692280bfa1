"""Side-by-side benchmark: adaptergate 0.5.4 (from PyPI) vs this package.

Runs the same command lines through both CLIs on the same synthetic data and
prints wall time, peak RSS of the CLI process, the ratios and whether the
verdicts (exit codes) agree:

1. ``adaptergate gate ... --slice-epsilon 0.10 --format json`` for
   N = 1k, 10k, 100k, 1M (0.5.4 reads its wrapped holdout file, the new
   package the raw one, and the wrapped one too at 100k);
2. the same gate on a holdout with 5,050 distinct slice tags (N = 10k);
3. ``adaptergate holdout import`` of 1k, 10k and 1M rows (0.5.4: 1k fully,
   10k under a timeout; its import is quadratic).

Then it prints each target as MET / NOT MET and writes everything to
``bench/_work/results.json``. Nothing here asserts on timings.

    python bench/bench_vs_054.py            # everything (takes a while)
    python bench/bench_vs_054.py --quick    # N = 1k, 10k; short 0.5.4 timeouts
    python bench/bench_vs_054.py --sizes 1k,100k --sections gate
    # smoke test of the scripts themselves, 0.5.4 on both sides:
    python bench/bench_vs_054.py --new-cmd bench/_work/venv054/bin/adaptergate \\
        --new-reads wrapped --quick
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import os
import platform
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import synth  # noqa: E402
from _common import (  # noqa: E402
    BENCH_DIR,
    DEFAULT_VENV054,
    OLD_VERSION,
    REPO_ROOT,
    TIME_BIN,
    WORK_DIR,
    RunResult,
    median_of,
    child_env,
    ensure_venv054,
    fmt_mem_ratio,
    fmt_n,
    fmt_rss,
    fmt_speedup,
    fmt_time,
    mem_ratio,
    parse_size,
    print_table,
    run_measured,
    speedup,
    write_json,
)

TENANT = synth.TENANT
CANDIDATE = "cand_v2"
BASELINE = "base_v1"
SCORER = "scorer_bench:score"
EPSILON = "0.02"
SLICE_EPSILON = "0.10"
SLICE_MIN_SIZE = "3"

REPEAT_UNDER_S = 30.0  # runs longer than this are not repeated

TARGET_SPEEDUP_100K = 5.0
TARGET_1M_S = 7.0
TARGET_TAGS_S = 2.0
TARGET_IMPORT_10K_S = 1.0


class Side:
    """One CLI under test: its argv prefix and its environment."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str]):
        self.name = name
        self.cmd = cmd
        self.env = env
        self.available = True
        self.version = "?"
        self.module_file = "?"
        self.problem = ""

    def probe(self) -> None:
        try:
            h = subprocess.run(
                [*self.cmd, "--help"], cwd=BENCH_DIR, env=self.env,
                capture_output=True, text=True, timeout=300,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            self.available, self.problem = False, str(exc)
            return
        if h.returncode != 0:
            self.available = False
            self.problem = (h.stderr or h.stdout).strip().splitlines()[-1:] or [f"rc={h.returncode}"]
            self.problem = self.problem[0]
            return
        v = subprocess.run([*self.cmd, "version"], cwd=BENCH_DIR, env=self.env,
                           capture_output=True, text=True, timeout=300)
        if v.returncode == 0 and v.stdout.strip():
            self.version = v.stdout.strip().splitlines()[-1]

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "cmd": self.cmd,
            "pythonpath": self.env.get("PYTHONPATH", ""),
            "available": self.available,
            "version": self.version,
            "problem": self.problem,
        }


# --------------------------------------------------------------------------
# output parsing
# --------------------------------------------------------------------------

_HEAD_RE = {
    "accepted": re.compile(r'"accepted"\s*:\s*(true|false)'),
    "holdout_size": re.compile(r'"holdout_size"\s*:\s*(\d+)'),
    "delta": re.compile(r'"delta"\s*:\s*(-?[0-9][0-9.eE+-]*)'),
}


def parse_gate_output(path: Path) -> dict[str, Any]:
    """Top-level ``accepted``, ``holdout_size``, ``delta`` of a ``--format json``
    decision. Small files are parsed whole; for large ones the first match in
    the head is used (both versions write these fields before ``per_query``)."""
    info: dict[str, Any] = {"stdout_bytes": path.stat().st_size if path.exists() else 0}
    if not path.exists() or info["stdout_bytes"] == 0:
        return info
    if info["stdout_bytes"] <= 64 * 1024 * 1024:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, dict):
                for k in ("accepted", "holdout_size", "delta"):
                    if k in data:
                        info[k] = data[k]
                return info
        except (ValueError, UnicodeDecodeError):
            pass
    with open(path, "rb") as fh:
        head = fh.read(256 * 1024).decode("utf-8", "replace")
    for k, rx in _HEAD_RE.items():
        m = rx.search(head)
        if m:
            v = m.group(1)
            info[k] = v == "true" if k == "accepted" else int(v) if k == "holdout_size" else float(v)
    return info


def count_lines(path: Path) -> int | None:
    if not path.exists():
        return None
    n = 0
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            n += block.count(b"\n")
    return n


def gate_outcome(r: RunResult | None) -> int | None:
    """0 (accepted) or 1 (rejected) when the run printed a decision that
    matches its exit code; None otherwise. An uncaught exception also exits
    with 1, so the exit code alone does not prove a REJECT."""
    if r is None or not r.ok or r.rc not in (0, 1):
        return None
    acc = r.extra.get("accepted")
    if acc is None or bool(acc) != (r.rc == 0):
        return None
    return r.rc


def verdict(r: RunResult | None) -> str:
    if r is None:
        return "-"
    if r.timed_out:
        return "timeout"
    out = gate_outcome(r)
    if out is not None:
        return {0: "ACCEPT (0)", 1: "REJECT (1)"}[out]
    if r.rc in (0, 1) and r.extra.get("accepted") is None:
        return f"error rc={r.rc}, no decision"
    if r.rc in (0, 1):
        return f"rc={r.rc} vs accepted={r.extra.get('accepted')}"
    return f"error rc={r.rc}"


def agree(a: RunResult | None, b: RunResult | None) -> str:
    if a is None or b is None or not a.ok or not b.ok:
        return "-"
    va, vb = gate_outcome(a), gate_outcome(b)
    if va is None or vb is None:
        return "NO (error)"
    return "yes" if va == vb else "NO"


# --------------------------------------------------------------------------
# runs
# --------------------------------------------------------------------------


def gate_argv(holdout: Path) -> list[str]:
    return [
        "gate", "--tenant", TENANT, "--candidate", CANDIDATE, "--baseline", BASELINE,
        "--holdout", str(holdout), "--scorer", SCORER, "--epsilon", EPSILON,
        "--slice-epsilon", SLICE_EPSILON, "--slice-min-size", SLICE_MIN_SIZE,
        "--format", "json",
    ]


def _load_txt(r: RunResult) -> str:
    load = r.extra.get("load1_before")
    return "" if load is None else f"  [load before: {load:.2f}]"


def repeats(args, n: int) -> int:
    if args.repeat is not None:
        return max(1, args.repeat)
    return 5 if n <= 100_000 else 3


_TIMESTAMP_RE = re.compile(rb'\n  "timestamp": "[^"]*",\n')


def output_digest(path: Path) -> str | None:
    """SHA-256 of a ``--format json`` decision without its ``timestamp`` line: two runs
    (or two versions of the code) that print the same decision give the same digest."""
    if not path.exists():
        return None
    data = path.read_bytes()
    head, sep, tail = data.partition(b'\n  "per_query"')
    return hashlib.sha256(_TIMESTAMP_RE.sub(b"\n", head, count=1) + sep + tail).hexdigest()


class GateCase:
    """One gate command line of one side, run several times; reported by its median run."""

    def __init__(self, side: Side, holdout: Path, label: str, timeout: float | None):
        self.side, self.holdout, self.label, self.timeout = side, holdout, label, timeout
        self.runs: list[RunResult] = []
        self.done = not side.available

    def run_once(self, i: int, n_runs: int, args) -> None:
        out_dir = WORK_DIR / "out"
        out_dir.mkdir(parents=True, exist_ok=True)
        out = out_dir / f"gate_{self.label}_{self.side.name}.json"
        print(f"  [{self.side.name}] gate {self.label} (run {i + 1}/{n_runs}) ...", end=" ", flush=True)
        r = run_measured([*self.side.cmd, *gate_argv(self.holdout)], cwd=BENCH_DIR, env=self.side.env,
                         timeout=self.timeout, stdout_path=out)
        r.extra.update(parse_gate_output(out))
        # (the digest is of this package's output format: 0.5.4's is not compared)
        r.extra["digest"] = output_digest(out) if r.ok and self.side.name == "new" else None
        if not args.keep_outputs:
            out.unlink(missing_ok=True)
            r.stdout_path = None
        print(f"{fmt_time(r)}, {fmt_rss(r)}, {verdict(r)}{_load_txt(r)}", flush=True)
        if r.ok and gate_outcome(r) is None and r.stderr_tail:
            print("    stderr: ..." + "\n    ".join(r.stderr_tail.splitlines()[-3:]))
        self.runs.append(r)
        if r.timed_out or (r.wall_s or 0.0) > REPEAT_UNDER_S:
            self.done = True  # a timeout, or long enough that noise does not matter

    def result(self) -> RunResult | None:
        if not self.runs:
            return None
        r = median_of(self.runs)
        digests = {x.extra.get("digest") for x in self.runs if x.ok}
        r.extra.update({
            "label": self.label, "side": self.side.name, "holdout": str(self.holdout),
            "all_walls_s": [x.wall_s for x in self.runs],
            "all_peak_rss_kb": [x.peak_rss_kb for x in self.runs],
            "runs": len(self.runs), "stat": "median",
            "digests_agree": len(digests) <= 1,
        })
        return r


def run_alternating(cases: list[GateCase], n: int, args) -> list[RunResult | None]:
    """Run the cases in turn (0.5.4, new, 0.5.4, new, ...) so that both sides see the
    same machine; each reported by its median run (the machine is shared and noisy)."""
    n_runs = repeats(args, n)
    for i in range(n_runs):
        for case in cases:
            if not case.done:
                case.run_once(i, n_runs, args)
    return [case.result() for case in cases]


def _remove_holdout(dest: Path) -> None:
    """The holdout file, its ``.lock`` and any temp file beside it."""
    for pattern in (f"{dest.name}*", f".{dest.name}*"):
        for p in dest.parent.glob(pattern):
            if p.is_file():
                p.unlink()


def run_import(side: Side, src: Path, n: int, timeout: float | None, args) -> RunResult | None:
    if not side.available:
        return None
    n_runs = repeats(args, n)
    dest_dir = WORK_DIR / "import"
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / f"{side.name}_{fmt_n(n)}.jsonl"
    runs = []
    for i in range(n_runs):
        _remove_holdout(dest)
        print(f"  [{side.name}] holdout import {fmt_n(n)} (run {i + 1}/{n_runs}) ...",
              end=" ", flush=True)
        out = dest_dir / f"{dest.stem}.stdout"
        r = run_measured(
            [*side.cmd, "holdout", "import", "--tenant", TENANT, "--holdout", str(dest),
             "--from-jsonl", str(src)],
            cwd=BENCH_DIR, env=side.env, timeout=timeout, stdout_path=out,
        )
        if r.timed_out:
            # 0.5.4 rewrites the whole file for every row: killed mid-rewrite, the
            # file may hold far fewer lines than were imported. Not a progress count.
            r.extra["rows_written"] = None
            r.extra["lines_in_file_at_kill"] = count_lines(dest)
        else:
            r.extra["rows_written"] = count_lines(dest)
        try:
            r.extra["stdout_tail"] = out.read_bytes()[-500:].decode("utf-8", "replace").strip()
        except OSError:
            r.extra["stdout_tail"] = ""
        out.unlink(missing_ok=True)
        print(f"{fmt_time(r)}, {fmt_rss(r)}, rc={r.rc}, rows written {_rows(r)}"
              f"{_load_txt(r)}", flush=True)
        if r.ok and r.rc != 0 and r.stderr_tail:
            print("    stderr: ..." + "\n    ".join(r.stderr_tail.splitlines()[-3:]))
        runs.append(r)
        if r.timed_out or (r.wall_s or 0.0) > REPEAT_UNDER_S:
            break
    if not args.keep_outputs:
        _remove_holdout(dest)
    r = median_of(runs)
    r.extra.update({"side": side.name, "n": n, "all_walls_s": [x.wall_s for x in runs]})
    return r


def _d(r: RunResult | None) -> dict[str, Any] | None:
    return None if r is None else r.to_dict()


# --------------------------------------------------------------------------
# sections
# --------------------------------------------------------------------------

GATE_HEADERS = [
    "case", "new reads", "0.5.4 time", "new time", "speed 0.5.4/new",
    "0.5.4 peak RSS", "new peak RSS", "mem new/0.5.4", "verdict 0.5.4", "verdict new", "agree",
]


def _decided(r: RunResult | None) -> RunResult | None:
    """``r`` if it produced a decision (ratios against a crash mean nothing)."""
    return r if gate_outcome(r) is not None else None


def gate_row(case: str, reads: str, old: RunResult | None, new: RunResult | None) -> list[str]:
    o, n = (old if old is not None and old.timed_out else _decided(old)), _decided(new)
    return [
        case, reads, fmt_time(old), fmt_time(new), fmt_speedup(o, n),
        fmt_rss(old), fmt_rss(new), fmt_mem_ratio(o, n), verdict(old), verdict(new),
        agree(old, new),
    ]


def gate_record(n: int, reads: str, old: RunResult | None, new: RunResult | None) -> dict[str, Any]:
    o, nw = (old if old is not None and old.timed_out else _decided(old)), _decided(new)
    x, lower = speedup(o, nw)
    return {"n": n, "new_reads": reads, "old": _d(old), "new": _d(new), "speedup": x,
            "speedup_is_lower_bound": lower, "mem_ratio": mem_ratio(o, nw),
            "verdicts_agree": agree(old, new)}


def consistency_notes(old: RunResult | None, new: RunResult | None, case: str) -> list[str]:
    notes = []
    if old is None or new is None or not old.ok or not new.ok:
        return notes
    for k in ("holdout_size", "delta"):
        a, b = old.extra.get(k), new.extra.get(k)
        if a is None or b is None:
            notes.append(f"{case}: could not read {k!r} from both outputs ({a!r} vs {b!r})")
        elif k == "holdout_size" and a != b:
            notes.append(f"{case}: holdout_size differs: 0.5.4 {a} vs new {b}")
        elif k == "delta" and abs(a - b) > 1e-9:
            notes.append(f"{case}: aggregate delta differs: 0.5.4 {a!r} vs new {b!r}")
    return notes


def section_gate(old: Side, new: Side, args, results: dict) -> None:
    print(f"\n## gate, N in {[fmt_n(n) for n in args.sizes]}", flush=True)
    rows, notes, recs = [], [], []
    for n in args.sizes:
        raw, wrapped = synth.ensure_dataset(n, "std")
        label = fmt_n(n)
        main_file = raw if args.new_reads == "raw" else wrapped
        cases = [GateCase(old, wrapped, f"{label}_wrapped", args.timeout_gate),
                 GateCase(new, main_file, f"{label}_{args.new_reads}", args.timeout_new)]
        if n == args.wrapped_at and args.new_reads == "raw":
            cases.append(GateCase(new, wrapped, f"{label}_wrapped", args.timeout_new))
        o, nw, *more = run_alternating(cases, n, args)
        rows.append(gate_row(f"N={label}", args.new_reads, o, nw))
        notes += consistency_notes(o, nw, f"N={label} {args.new_reads}")
        recs.append(gate_record(n, args.new_reads, o, nw))
        if more:
            nw2 = more[0]
            rows.append(gate_row(f"N={label}", "wrapped", o, nw2))
            notes += consistency_notes(o, nw2, f"N={label} wrapped")
            recs.append(gate_record(n, "wrapped", o, nw2))
        results["gate"] = recs
        write_json(args.results, results)
    print_table(GATE_HEADERS, rows,
                f"adaptergate gate --slice-epsilon {SLICE_EPSILON} --format json "
                f"(50 slice tags; 0.5.4 reads the wrapped file; median of alternating runs)")
    for line in notes:
        print("  note: " + line)


def section_tags(old: Side, new: Side, args, results: dict) -> None:
    n = args.tags_n
    print(f"\n## gate with 5,050 distinct slice tags, N={fmt_n(n)}", flush=True)
    raw, wrapped = synth.ensure_dataset(n, "tags5050")
    main_file = raw if args.new_reads == "raw" else wrapped
    o, nw = run_alternating([
        GateCase(old, wrapped, f"tags5050_{fmt_n(n)}_wrapped", args.timeout_tags),
        GateCase(new, main_file, f"tags5050_{fmt_n(n)}_{args.new_reads}", args.timeout_new),
    ], n, args)
    print_table(GATE_HEADERS, [gate_row(f"5,050 tags N={fmt_n(n)}", args.new_reads, o, nw)],
                "adaptergate gate, 5,050 distinct slice tags (0.5.4: pairwise duplicate-tag check)")
    for line in consistency_notes(o, nw, "5,050 tags"):
        print("  note: " + line)
    results["tags5050"] = gate_record(n, args.new_reads, o, nw)
    write_json(args.results, results)


def _rows(r: RunResult | None) -> str:
    if r is None:
        return "-"
    if r.timed_out:
        return "(killed)"
    n = r.extra.get("rows_written")
    return "-" if n is None else f"{n:,}"


def section_import(old: Side, new: Side, args, results: dict) -> None:
    print(f"\n## holdout import, N in {[fmt_n(n) for n in args.import_sizes]}", flush=True)
    rows, recs = [], []
    for n in args.import_sizes:
        src, _wrapped = synth.ensure_dataset(n, "std")
        o = None
        if n <= args.old_import_max:
            t = args.timeout_import_full if n <= args.old_import_full_max else args.timeout_import
            o = run_import(old, src, n, t, args)
        nw = run_import(new, src, n, args.timeout_new, args)
        # ratios only between runs that imported (or, for 0.5.4, timed out)
        o_ok = o if o is not None and (o.timed_out or o.rc == 0) else None
        n_ok = nw if nw is not None and nw.ok and nw.rc == 0 else None
        rows.append([
            f"N={fmt_n(n)}", fmt_time(o) if o else "(not run)", fmt_time(nw),
            fmt_speedup(o_ok, n_ok), fmt_rss(o), fmt_rss(nw), fmt_mem_ratio(o_ok, n_ok),
            _rows(o), _rows(nw),
            "-" if o is None else ("timeout" if o.timed_out else str(o.rc)),
            "-" if nw is None else ("timeout" if nw.timed_out else str(nw.rc)),
        ])
        x, lower = speedup(o_ok, n_ok)
        recs.append({"n": n, "old": _d(o), "new": _d(nw), "speedup": x,
                     "speedup_is_lower_bound": lower, "mem_ratio": mem_ratio(o_ok, n_ok)})
        results["import"] = recs
        write_json(args.results, results)
    print_table(
        ["case", "0.5.4 time", "new time", "speed 0.5.4/new", "0.5.4 peak RSS", "new peak RSS",
         "mem new/0.5.4", "rows 0.5.4", "rows new", "rc 0.5.4", "rc new"],
        rows, "adaptergate holdout import --from-jsonl (raw query lines, into a fresh holdout)",
    )
    done = [r for r in recs if r["old"] and not r["old"]["timed_out"] and r["old"]["rc"] == 0]
    if done:
        base = min(done, key=lambda r: r["n"])
        t1 = base["old"]["wall_s"]
        for r in recs:
            if r["old"] and r["n"] > base["n"]:
                f = (r["n"] / base["n"]) ** 2
                got = r["old"]
                seen = (f"it timed out after {got['timeout_s']:g} s" if got["timed_out"]
                        else f"measured {got['wall_s']:.1f} s")
                print(f"  0.5.4 import grows quadratically (each row rescans and rewrites the file):"
                      f" {fmt_n(base['n'])} rows took {t1:.1f} s, so {fmt_n(r['n'])} rows"
                      f" ~ {f:.0f} x {t1:.1f} = {f * t1:.0f} s ({seen}).")


# --------------------------------------------------------------------------
# targets
# --------------------------------------------------------------------------


def _find_gate(results: dict, n: int, reads: str = "raw") -> dict | None:
    for r in results.get("gate", []):
        if r["n"] == n and r["new_reads"] == reads:
            return r
    return None


def _new_ok(rec: dict | None, *, gate: bool) -> tuple[bool, str]:
    if rec is None or rec.get("new") is None:
        return False, "NOT RUN"
    new = rec["new"]
    if new["timed_out"]:
        return False, "NOT MET"
    if gate and gate_outcome(RunResult(**new)) is None:
        return False, f"NOT MET (new failed, rc={new['rc']})"
    if not gate and new["rc"] != 0:
        return False, f"NOT MET (new failed, rc={new['rc']})"
    return True, ""


def evaluate_targets(results: dict) -> list[dict[str, Any]]:
    out = []

    rec = _find_gate(results, 100_000, results["meta"]["args"]["new_reads"])
    ok, status = _new_ok(rec, gate=True)
    measured = "-"
    if ok:
        old, new = rec["old"], rec["new"]
        if old is None:
            status = "NOT RUN"
        else:
            x, lower = rec["speedup"], rec["speedup_is_lower_bound"]
            if old["peak_rss_kb"] and new["peak_rss_kb"] is not None:
                # a timed-out 0.5.4's RSS is a lower bound of its peak: comparing against it is safe
                mem_ok = new["peak_rss_kb"] <= old["peak_rss_kb"]
                mem_txt = f"mem new/0.5.4 {new['peak_rss_kb'] / old['peak_rss_kb']:.2f}"
            else:
                mem_ok, mem_txt = False, "mem ?"
            speed_txt = "-" if x is None else f"{'> ' if lower else ''}{x:.1f}x"
            measured = f"{speed_txt} faster, {mem_txt}"
            status = "MET" if (x is not None and x >= TARGET_SPEEDUP_100K and mem_ok) else "NOT MET"
    out.append({"target": f"gate N=100k: >= {TARGET_SPEEDUP_100K:g}x faster than 0.5.4, peak RSS no higher",
                "measured": measured, "status": status})

    rec = _find_gate(results, 1_000_000, results["meta"]["args"]["new_reads"])
    ok, status = _new_ok(rec, gate=True)
    measured = "-" if rec is None or rec.get("new") is None else fmt_time(RunResult(**rec["new"]))
    if ok:
        status = "MET" if rec["new"]["wall_s"] < TARGET_1M_S else "NOT MET"
    out.append({"target": f"gate N=1M (new): < {TARGET_1M_S:g} s", "measured": measured, "status": status})

    rec = results.get("tags5050")
    ok, status = _new_ok(rec, gate=True)
    measured = "-" if rec is None or rec.get("new") is None else fmt_time(RunResult(**rec["new"]))
    if ok:
        status = "MET" if rec["new"]["wall_s"] < TARGET_TAGS_S else "NOT MET"
    n_txt = fmt_n(rec["n"]) if rec else "10k"
    out.append({"target": f"gate, 5,050 tags, N={n_txt} (new): < {TARGET_TAGS_S:g} s",
                "measured": measured, "status": status})

    rec = next((r for r in results.get("import", []) if r["n"] == 10_000), None)
    ok, status = _new_ok(rec, gate=False)
    measured = "-" if rec is None or rec.get("new") is None else fmt_time(RunResult(**rec["new"]))
    if ok:
        status = "MET" if rec["new"]["wall_s"] < TARGET_IMPORT_10K_S else "NOT MET"
    out.append({"target": f"holdout import N=10k (new): < {TARGET_IMPORT_10K_S:g} s",
                "measured": measured, "status": status})

    gates = list(results.get("gate", [])) + ([results["tags5050"]] if results.get("tags5050") else [])
    compared = [g["verdicts_agree"] for g in gates if g["verdicts_agree"] != "-"]
    if compared:
        out.append({"target": "gate verdicts (exit codes) agree with 0.5.4",
                    "measured": f"{sum(c == 'yes' for c in compared)}/{len(compared)} cases",
                    "status": "MET" if all(c == "yes" for c in compared) else "NOT MET"})
    return out


def _gate_digests(results: dict) -> dict[str, tuple[str | None, bool]]:
    """(digest, every run agreed) of the new CLI's output, per gate case."""
    out = {}
    recs = list(results.get("gate", [])) + ([results["tags5050"]] if results.get("tags5050") else [])
    for rec in recs:
        new = rec.get("new")
        if new:
            extra = new.get("extra", {})
            out[extra.get("label", "?")] = (extra.get("digest"), bool(extra.get("digests_agree", True)))
    return out


def compare_digests(results: dict, reference: Path) -> dict[str, Any]:
    """Whether every gate case printed the same decision as in ``reference`` (and in every run)."""
    ref = _gate_digests(json.loads(reference.read_text(encoding="utf-8")))
    ours = _gate_digests(results)
    same, lines = 0, []
    for label, (digest, agreed) in ours.items():
        want = ref.get(label, (None, True))[0]
        ok = digest is not None and digest == want and agreed
        same += ok
        state = "identical" if ok else ("not in reference" if want is None else
                                         "runs disagree" if not agreed else "DIFFERENT")
        lines.append(f"{label}: {state}")
    print("\noutputs against " + str(reference) + ":\n  " + "\n  ".join(lines))
    return {"target": f"new --format json outputs identical to {reference.name}",
            "measured": f"{same}/{len(ours)} cases",
            "status": "MET" if ours and same == len(ours) else "NOT MET"}


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------


def resolve_new_side(args) -> Side:
    if args.new_cmd:
        cmd = shlex.split(args.new_cmd)
        # the CLIs run with cwd=bench/: make a relative program path absolute
        if cmd and os.sep in cmd[0] and not os.path.isabs(cmd[0]):
            cmd[0] = os.path.abspath(cmd[0])
        return Side("new", cmd, child_env([BENCH_DIR]))
    # The working tree is put on PYTHONPATH so the checkout is measured even
    # when it is not pip-installed.
    env = child_env([BENCH_DIR, args.new_path])
    script = Path(sys.executable).with_name("adaptergate")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "adaptergate.cli.app"]
    return Side("new", cmd, env)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="Benchmark adaptergate 0.5.4 against this package, side by side.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ap.add_argument("--sizes", default="1k,10k,100k,1M", help="gate sizes, comma-separated")
    ap.add_argument("--quick", action="store_true",
                    help="sizes 1k,10k; import sizes 1k,10k; 0.5.4 timeouts capped at 60 s")
    ap.add_argument("--sections", default="gate,tags,import",
                    help="which sections to run: gate, tags, import")
    ap.add_argument("--import-sizes", default="1k,10k,1M", help="holdout import sizes")
    ap.add_argument("--tags-n", default="10k", help="N of the 5,050-tag case")
    ap.add_argument("--wrapped-at", default="100k",
                    help="the gate size at which the new package also reads the wrapped file")
    ap.add_argument("--repeat", type=int, default=None,
                    help="runs per measurement, alternating 0.5.4 and new; the median run is reported "
                         "(default: 5 for N <= 100k, else 3); a run that timed out or took over 30 s "
                         "is not repeated")
    ap.add_argument("--timeout-gate", type=float, default=1800.0, help="0.5.4 gate timeout, s")
    ap.add_argument("--timeout-tags", type=float, default=300.0,
                    help="0.5.4 timeout for the 5,050-tag gate, s")
    ap.add_argument("--timeout-import", type=float, default=120.0,
                    help="0.5.4 import timeout for sizes above --old-import-full-max, s")
    ap.add_argument("--timeout-import-full", type=float, default=1800.0,
                    help="0.5.4 import safety timeout for sizes up to --old-import-full-max, s")
    ap.add_argument("--old-import-full-max", default="1k",
                    help="0.5.4 imports up to this size are measured fully")
    ap.add_argument("--old-import-max", default="10k", help="0.5.4 import is not run above this size")
    ap.add_argument("--timeout-new", type=float, default=600.0, help="timeout for every new-package run, s")
    ap.add_argument("--new-cmd", default=None,
                    help="command of the new CLI (default: the adaptergate console script next to "
                         "this interpreter, else `python -m adaptergate.cli.app`, with the checkout on "
                         "PYTHONPATH)")
    ap.add_argument("--new-path", type=Path, default=REPO_ROOT,
                    help="the checkout whose adaptergate package the new CLI imports (put on PYTHONPATH; "
                         "another copy of the code, e.g. an older commit, to compare outputs)")
    ap.add_argument("--compare-digests", type=Path, default=None, metavar="RESULTS_JSON",
                    help="a results.json of an earlier run: say, per gate case, whether the new CLI's "
                         "--format json output (all but its timestamp) is byte-identical to that run's")
    ap.add_argument("--new-reads", choices=["raw", "wrapped"], default="raw",
                    help="holdout format given to the new CLI (wrapped: for smoke tests with "
                         "--new-cmd pointing at 0.5.4, which cannot read raw lines)")
    ap.add_argument("--venv054", type=Path, default=DEFAULT_VENV054, help="0.5.4 virtualenv (reused)")
    ap.add_argument("--spec054", default=f"adaptergate=={OLD_VERSION}",
                    help="what pip installs into the 0.5.4 venv (a wheel path works too)")
    ap.add_argument("--results", type=Path, default=WORK_DIR / "results.json")
    ap.add_argument("--keep-outputs", action="store_true",
                    help="keep gate stdout and imported holdouts under bench/_work")
    args = ap.parse_args(argv)
    args.sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    args.import_sizes = [parse_size(s) for s in args.import_sizes.split(",") if s.strip()]
    if args.quick:
        given = set(a.split("=")[0] for a in (argv if argv is not None else sys.argv[1:]))
        if "--sizes" not in given:
            args.sizes = [1000, 10000]
        if "--import-sizes" not in given:
            args.import_sizes = [1000, 10000]
        for name in ("timeout_gate", "timeout_tags", "timeout_import"):
            if "--" + name.replace("_", "-") not in given:
                setattr(args, name, min(getattr(args, name), 60.0))
    args.tags_n = parse_size(args.tags_n)
    args.wrapped_at = parse_size(args.wrapped_at)
    args.old_import_full_max = parse_size(args.old_import_full_max)
    args.old_import_max = parse_size(args.old_import_max)
    args.sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    bad = set(args.sections) - {"gate", "tags", "import"}
    if bad:
        ap.error(f"unknown sections: {sorted(bad)}")
    return args


def _on_sigterm(signum, frame):  # turn SIGTERM into SystemExit so running children are killed
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    WORK_DIR.mkdir(parents=True, exist_ok=True)

    old_script = ensure_venv054(args.venv054, spec=args.spec054)
    old = Side("0.5.4", [str(old_script)], child_env([BENCH_DIR]))
    old.probe()
    new = resolve_new_side(args)
    new.probe()

    print(f"0.5.4: {' '.join(old.cmd)}  (version {old.version})")
    if not old.available:
        print(f"ERROR: the 0.5.4 CLI does not run: {old.problem}")
        return 2
    print(f"new:   {' '.join(new.cmd)}  (version {new.version}; PYTHONPATH={new.env.get('PYTHONPATH')})")
    if not new.available:
        print(f"WARNING: the new CLI is not runnable ({new.problem}); measuring 0.5.4 only."
              f" Use --new-cmd to point at another command.")
    if hasattr(os, "getloadavg"):
        print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs"
              " (anything else running skews the timings)")
    print(f"measuring with {TIME_BIN or 'getrusage(RUSAGE_CHILDREN) wrapper'}; "
          f"OMP_NUM_THREADS=1; cwd={BENCH_DIR}; "
          f"median of {args.repeat if args.repeat else '5 (N <= 100k) or 3'} alternating runs")

    results: dict[str, Any] = {
        "meta": {
            "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "host": platform.node(),
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "loadavg_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            "python": sys.version.split()[0],
            "old": old.describe(),
            "new": new.describe(),
            "timer": TIME_BIN or "rusage-wrapper",
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "gate_argv": gate_argv(Path("<holdout>")),
        },
    }
    write_json(args.results, results)

    if "gate" in args.sections:
        section_gate(old, new, args, results)
    if "tags" in args.sections:
        section_tags(old, new, args, results)
    if "import" in args.sections:
        section_import(old, new, args, results)

    targets = evaluate_targets(results)
    if args.compare_digests is not None:
        targets.append(compare_digests(results, args.compare_digests))
    results["targets"] = targets
    results["meta"]["finished"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    write_json(args.results, results)
    print_table(["target", "measured", "status"],
                [[t["target"], t["measured"], t["status"]] for t in targets], "Targets")
    print(f"results: {args.results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
