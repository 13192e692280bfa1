"""Benchmark of the duplicate-tag check (``adaptergate.holdout.tags.find_duplicate_slices``).

The check reads slice tags that arrive in a pull request (a holdout file), so
its cost must stay linear in the total tag bytes whatever the tags look like.
Each case runs in a fresh child process (``python bench_tag_duplicates.py
--worker CASE``) that builds its tags, then times the check alone; this
script records the child's peak resident memory (``/usr/bin/time`` ``%M``, or
``getrusage(RUSAGE_CHILDREN)`` of a wrapper process when that is missing, see
``_common.run_measured``) and kills it after ``--timeout`` seconds.

Cases:

* ``hostile-10k``: 12 distinct values of 10 KB of random letters under one
  key (``note=...``);
* ``hostile-400k``: the same with 400 KB values (4.8 MB of tags);
* ``tags5050``: the 5,050 distinct realistic tags of ``synth.py``
  (``topic=<six letters>`` x 5,020 plus the intents and langs) with a few
  planted near-duplicates (case/separator variants, typos, a bare tag, one
  value under two keys), so that the findings column shows the check at work.

Peak RSS is that of the whole child: interpreter, imports (pydantic, via
``adaptergate.models``) and the tags included; ``RSS before`` is the child's
peak just before the check started, so the difference is what the check
itself added. Targets on ``hostile-400k``: check under 2 s, peak RSS under
200 MB. Nothing asserts on a timing: this is a script, not a test.

    python bench/bench_tag_duplicates.py
    python bench/bench_tag_duplicates.py --cases hostile-400k --timeout 60
    python bench/bench_tag_duplicates.py --pythonpath /tmp/old   # another checkout's package
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import string
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from _common import (  # noqa: E402
    REPO_ROOT,
    WORK_DIR,
    child_env,
    fmt_rss,
    fmt_time,
    print_table,
    run_measured,
    write_json,
)

CASES = ("hostile-10k", "hostile-400k", "tags5050")
HOSTILE_VALUES = 12
TARGET_S = 2.0
TARGET_MB = 200
_LETTERS = bytes(ord(string.ascii_lowercase[i % 26]) for i in range(256))


def _random_letters(rng: random.Random, n: int) -> str:
    """``n`` pseudo-random lowercase letters (fast: bytes, then a translate)."""
    return rng.randbytes(n).translate(_LETTERS).decode("ascii")


def build_tags(case: str) -> list[str]:
    """The tags of one case, deterministic."""
    rng = random.Random(0x7A65)
    if case in ("hostile-10k", "hostile-400k"):
        size = 10_000 if case == "hostile-10k" else 400_000
        return [f"note={_random_letters(rng, size)}" for _ in range(HOSTILE_VALUES)]
    if case == "tags5050":
        import synth

        tags = synth.all_tags("tags5050")
        assert len(set(tags)) == 5050
        # Planted near-duplicates of existing tags (rules 1 to 4).
        return tags + [
            "intent=Refund-Request",  # rule 1
            "refund_request",  # rule 2
            "topic=refund_request",  # rule 3
            "intent=refund_requst",  # rule 4
        ]
    raise ValueError(f"unknown case {case!r}")


def worker(case: str) -> int:
    from adaptergate.holdout.tags import find_duplicate_slices

    tags = build_tags(case)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    findings = find_duplicate_slices(tags)
    check_s = time.perf_counter() - t0
    print(json.dumps({
        "case": case,
        "tags": len(set(tags)),
        "tag_bytes": sum(len(t.encode("utf-8")) for t in set(tags)),
        "check_s": check_s,
        "rss_before_kb": rss_before,
        "findings": [f.model_dump() for f in findings],
    }))
    return 0


def _fmt_bytes(n: int) -> str:
    if n >= 1 << 20:
        return f"{n / (1 << 20):.1f} MiB"
    if n >= 1 << 10:
        return f"{n / (1 << 10):.0f} KiB"
    return f"{n} B"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, from {', '.join(CASES)}")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds before a case is killed")
    ap.add_argument("--pythonpath", default=str(REPO_ROOT),
                    help="where the child imports adaptergate from (default: this checkout)")
    ap.add_argument("--results", type=Path, default=WORK_DIR / "tag_duplicates_results.json")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args.worker)

    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        ap.error(f"unknown case(s): {', '.join(unknown)}")
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    env = child_env(pythonpath=[args.pythonpath, BENCH])
    rows, records = [], []
    for case in cases:
        out = WORK_DIR / f"tagdup_{case}.json"
        r = run_measured([sys.executable, __file__, "--worker", case], cwd=BENCH, env=env,
                         timeout=args.timeout, stdout_path=out)
        info = {}
        if r.ok and r.rc == 0:
            info = json.loads(out.read_text(encoding="utf-8"))
        elif not r.timed_out:
            print(f"[{case}] exit {r.rc}: {r.stderr_tail}", file=sys.stderr)
        if info:
            check = f"{info['check_s']:.3f} s"
        elif r.timed_out:
            check = fmt_time(r)
        else:  # the child failed (a MemoryError under a ulimit, an import error, ...)
            check = f"error (exit {r.rc} after {r.elapsed_s:.1f} s)"
        rows.append([
            case,
            f"{info['tags']:,}" if info else "-",
            _fmt_bytes(info["tag_bytes"]) if info else "-",
            check,
            f"{info['rss_before_kb'] / 1024:.0f} MiB" if info else "-",
            fmt_rss(r),
            str(len(info["findings"])) if info else "-",
        ])
        records.append({"case": case, "run": r.to_dict(), "result": info})

    headers = ["case", "tags", "tag bytes", "check time", "RSS before", "peak RSS", "findings"]
    print_table(headers, rows, title="find_duplicate_slices")

    target_rows = []
    for rec, row in zip(records, rows):
        if rec["case"] != "hostile-400k":
            continue
        info, peak_kb = rec["result"], rec["run"]["peak_rss_kb"]
        t_ok = bool(info) and info["check_s"] < TARGET_S
        m_ok = bool(info) and peak_kb is not None and peak_kb * 1024 < TARGET_MB * 1_000_000
        target_rows.append(["hostile-400k: check time", f"< {TARGET_S:g} s", row[3], "MET" if t_ok else "NOT MET"])
        target_rows.append(["hostile-400k: peak RSS", f"< {TARGET_MB} MB", row[5], "MET" if m_ok else "NOT MET"])
    if target_rows:
        print_table(["target", "goal", "measured", "status"], target_rows, title="Targets")
    write_json(args.results, {"pythonpath": args.pythonpath, "cases": records})
    print(f"results: {args.results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
