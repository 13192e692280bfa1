"""Simulation: false-reject and detection rates of the gate's decision rules.

For N in {25, 100, 1000, 10000}, 50 overlapping slices (intent x30, lang x10,
difficulty x10; each query carries one of each) and slice gating on
(--epsilon 0.02 --slice-epsilon 0.10, --slice-min-size 3):

* false-reject rate at equal quality: baseline and candidate scores are
  independent Bernoulli(0.8) per query (the issue's null);
* detection (a): inside N=300, one 20-query slice collapses 0.95 -> 0.30;
* detection (b): a uniform 5-point drop at N=1000 (0.80 -> 0.75).

Alternatives are simulated two ways: "independent" (candidate drawn
independently of the baseline at its own rate: the noisiest case) and
"paired" (the candidate keeps the baseline's outcome except for the queries
the update changed: how adapter updates behave, most answers are unchanged).

The 0.5.4 column is adaptergate 0.5.4's rule as reproduced by
``decide_threshold`` (bit-identical to 0.5.4 on its own outputs:
tests/test_compat054.py); run with ``--check-054 VENV`` to also run
0.5.4's own RegressionGate on the first trials of each scenario and confirm
it agrees.

    python bench/sim_decisions.py [--trials 200] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from adaptergate.decide.rules import build_slice_index, decide_stat, decide_threshold  # noqa: E402
from adaptergate.models import GateConfig  # noqa: E402

EPS, SLICE_EPS, MIN_SIZE, ALPHA = 0.02, 0.10, 3, 0.05


def slices_for(n: int, rng: np.random.Generator) -> list[tuple[str, ...]]:
    i = rng.integers(30, size=n)
    lg = rng.integers(10, size=n)
    d = rng.integers(10, size=n)
    return [(f"intent=i{a}", f"lang=l{b}", f"difficulty=d{c}") for a, b, c in zip(i, lg, d)]


def draw(kind: str, n: int, rng: np.random.Generator):
    sl = slices_for(n, rng)
    if kind == "null":
        b = (rng.random(n) < 0.8).astype(float)
        c = (rng.random(n) < 0.8).astype(float)
        return b, c, sl
    if kind.startswith("slice"):
        # 20 queries form intent=broken; it collapses 0.95 -> 0.30
        sl = [("intent=broken", s[1], s[2]) if k < 20 else s for k, s in enumerate(sl)]
        p_b = np.where(np.arange(n) < 20, 0.95, 0.8)
        b = (rng.random(n) < p_b).astype(float)
        if kind.endswith("independent"):
            p_c = np.where(np.arange(n) < 20, 0.30, 0.8)
            c = (rng.random(n) < p_c).astype(float)
        else:
            c = b.copy()
            broken = np.arange(n) < 20
            # keep each baseline pass with prob 0.30/0.95 in the broken slice
            c[broken & (b == 1) & (rng.random(n) >= 0.30 / 0.95)] = 0.0
            other = ~broken  # elsewhere: 5% churn both ways at equal quality
            flip_down = other & (b == 1) & (rng.random(n) < 0.05)
            flip_up = other & (b == 0) & (rng.random(n) < 0.20)
            c[flip_down] = 0.0
            c[flip_up] = 1.0
        return b, c, sl
    if kind.startswith("uniform"):
        b = (rng.random(n) < 0.8).astype(float)
        if kind.endswith("independent"):
            c = (rng.random(n) < 0.75).astype(float)
        else:
            c = b.copy()
            # 7.5% of passes break, 5% of failures get fixed: net -0.05
            c[(b == 1) & (rng.random(n) < 0.075)] = 0.0
            c[(b == 0) & (rng.random(n) < 0.05)] = 1.0
        return b, c, sl
    raise ValueError(kind)


def rates(kind: str, n: int, trials: int, seed: int, dump: list | None = None) -> dict:
    rng = np.random.default_rng(seed)
    stat_cfg = GateConfig(epsilon=EPS, slice_epsilon=SLICE_EPS, slice_min_size=MIN_SIZE, alpha=ALPHA,
                          min_holdout_size=1)
    thr_cfg = stat_cfg.model_copy(update={"decision": "threshold"})
    rej_stat = rej_thr = inconclusive = fail = 0
    t0 = time.perf_counter()
    for t in range(trials):
        b, c, sl = draw(kind, n, rng)
        idx = build_slice_index(sl)
        sd = decide_stat(b, c, idx, stat_cfg)
        td = decide_threshold(b, c, idx, thr_cfg)
        rej_stat += not sd.accepted
        fail += sd.verdict == "FAIL"
        inconclusive += sd.verdict == "INCONCLUSIVE"
        rej_thr += not td.accepted
        if dump is not None and t < 20:
            dump.append({"b": b.tolist(), "c": c.tolist(), "slices": [list(s) for s in sl],
                         "thr_accepted": td.accepted})
    return {
        "stat_reject": rej_stat / trials, "stat_fail": fail / trials,
        "stat_inconclusive": inconclusive / trials, "v054_reject": rej_thr / trials,
        "seconds": time.perf_counter() - t0,
    }


CHECK_054 = r'''
import json, sys
from adaptergate.gating import GateConfig, RegressionGate
cases = json.load(open(sys.argv[1]))
out = []
for case in cases:
    table = {}
    qs = []
    for k, (b, c, s) in enumerate(zip(case["b"], case["c"], case["slices"])):
        qs.append({"question_id": f"q{k}", "slices": s})
        table[("base", f"q{k}")] = b
        table[("cand", f"q{k}")] = c
    gate = RegressionGate(GateConfig(epsilon=%r, slice_epsilon=%r, slice_min_size=%r, min_holdout_size=1))
    d = gate.evaluate(tenant_id="t", candidate_id="cand", baseline_id="base", holdout=qs,
                      scorer=lambda a, q: table[(a, q["question_id"])])
    out.append(d.accepted)
print(json.dumps(out))
''' % (EPS, SLICE_EPS, MIN_SIZE)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--check-054", metavar="VENV", help="venv with adaptergate 0.5.4 to cross-check its rule")
    args = ap.parse_args()
    rows = []
    scenarios = [("null", n, "<= alpha + 0.02 = 0.07") for n in (25, 100, 1000, 10000)]
    scenarios += [("slice-paired", 300, ">= 0.95"), ("slice-independent", 300, ">= 0.95"),
                  ("uniform-paired", 1000, ">= 0.90"), ("uniform-independent", 1000, ">= 0.90")]
    checks = []
    for k, (kind, n, target) in enumerate(scenarios):
        dump: list = []
        r = rates(kind, n, args.trials, args.seed + k, dump if args.check_054 else None)
        rows.append((kind, n, target, r))
        if args.check_054:
            with open("/tmp/_sim054.json", "w") as fh:
                json.dump(dump, fh)
            exe = Path(args.check_054) / "bin" / "python"
            res = subprocess.run([str(exe), "-c", CHECK_054, "/tmp/_sim054.json"], capture_output=True,
                                 text=True, check=True)
            theirs = json.loads(res.stdout)
            ours = [d["thr_accepted"] for d in dump]
            checks.append((kind, n, sum(a == b for a, b in zip(theirs, ours)), len(ours)))
    metric = {"null": "false-reject"}
    print(f"trials per row: {args.trials}; epsilon={EPS}, slice_epsilon={SLICE_EPS}, alpha={ALPHA},"
          f" 50 overlapping slices, slice-min-size={MIN_SIZE}\n")
    head = f"{'scenario':<22}{'N':>7}  {'measure':<13}{'stat rule':>10}{'(FAIL/INC)':>14}{'0.5.4 rule':>12}  target (stat rule)"
    print(head)
    print("-" * len(head))
    for kind, n, target, r in rows:
        what = metric.get(kind, "detection")
        ok = (r["stat_reject"] <= 0.07) if kind == "null" else (r["stat_reject"] >= float(target.split()[-1]))
        print(f"{kind:<22}{n:>7}  {what:<13}{r['stat_reject']:>10.3f}"
              f"{r['stat_fail']:>7.3f}/{r['stat_inconclusive']:<6.3f}{r['v054_reject']:>12.3f}  {target}"
              f" {'MET' if ok else 'NOT MET'}")
    if checks:
        print("\n0.5.4's own RegressionGate vs decide_threshold on the first trials:")
        for kind, n, agree, tot in checks:
            print(f"  {kind:<22}{n:>7}: {agree}/{tot} verdicts identical")


if __name__ == "__main__":
    main()
