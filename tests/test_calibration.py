"""--repeats noise floor, `adaptergate calibrate`, and the per-tenant --config file."""

from __future__ import annotations

import json

import numpy as np
import pytest

from adaptergate.decide.calibration import noise_floor, suggest_margins
from adaptergate.cli.app import main
from adaptergate.examples import EXAMPLE_HOLDOUT

NOISY = (
    "import hashlib, itertools\n"
    "_calls = itertools.count()\n"
    "def score(adapter, q):\n"
    "    # deterministic across test runs, different on every call (a sampling scorer)\n"
    "    k = next(_calls)\n"
    "    h = int(hashlib.sha256(f'{adapter}|{q[\"id\"]}|{k}'.encode()).hexdigest()[:8], 16)\n"
    "    return 1.0 if h / 0xFFFFFFFF < 0.8 else 0.0\n"
)
STEADY = "def score(adapter, q):\n    return 1.0 if len(q['id']) % 3 else 0.0\n"


def test_noise_floor_of_a_deterministic_scorer_is_zero():
    runs = np.tile(np.array([1.0, 0.0, 1.0, 1.0]), (3, 1))
    nf = noise_floor(runs, None, 0.05)
    assert nf.deterministic and nf.per_query_sd == 0.0 and nf.null_delta == 0.0
    assert "deterministic" in nf.statement


def test_noise_floor_measures_spread_and_null_run():
    rng = np.random.default_rng(3)
    runs = (rng.random((4, 2000)) < 0.7).astype(float)
    nf = noise_floor(runs, None, 0.05)
    # Bernoulli(0.7): per-query sd sqrt(0.21) ~ 0.458
    assert nf.per_query_sd == pytest.approx(np.sqrt(0.21), abs=0.02)
    assert nf.null_lower <= nf.null_delta <= nf.null_upper
    assert nf.null_lower < 0 < nf.null_upper  # the baseline against itself: no drop
    assert not nf.deterministic and "4 repeats" in nf.statement


def test_margins_shrink_with_size_and_grow_with_noise():
    kw = dict(repeats=1, churn=0.1, score_sd=0.4, binary=True, alpha=0.05)
    small = suggest_margins(100, [], noise_sd=0.0, **kw)
    big = suggest_margins(10_000, [], noise_sd=0.0, **kw)
    noisy = suggest_margins(100, [], noise_sd=0.4, **kw)
    assert big.epsilon < small.epsilon < noisy.epsilon
    assert small.slice_epsilon is None
    # 100 queries, churn 0.1 -> sd 0.316; z(0.95)+z(0.8) = 2.486 -> 0.0786 -> rounded up to 0.08
    assert small.epsilon == pytest.approx(0.08)
    with_slices = suggest_margins(1000, [50] * 10 + [2], noise_sd=0.0, **kw)
    assert with_slices.n_slices == 10 and with_slices.median_slice == 50
    assert with_slices.slice_epsilon > with_slices.epsilon


def test_repeats_record_noise_and_average(tmp_path, capsys, monkeypatch):
    (tmp_path / "noisy_scorer_a.py").write_text(NOISY)
    monkeypatch.chdir(tmp_path)
    code = main(["gate", "--tenant", "acme", "--candidate", "v2", "--baseline", "v1", "--holdout",
                 str(EXAMPLE_HOLDOUT), "--scorer", "noisy_scorer_a:score", "--repeats", "4", "--format", "json"])
    d = json.loads(capsys.readouterr().out)
    assert code in (0, 1)
    assert d["noise"]["repeats"] == 4 and d["noise"]["per_query_sd"] > 0.2
    # means of 4 draws of 0/1 scores: multiples of 0.25, so the continuous method is used
    scores = {row["score_baseline"] for row in d["per_query"]}
    assert scores <= {0.0, 0.25, 0.5, 0.75, 1.0} and d["binary_scores"] is False
    assert d["evidence"]["method"] == "paired t"


def test_calibrate_writes_config_that_gate_reads(tmp_path, capsys, monkeypatch):
    (tmp_path / "noisy_scorer_b.py").write_text(NOISY)
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "adaptergate.json"
    assert main(["calibrate", "--tenant", "acme", "--holdout", str(EXAMPLE_HOLDOUT), "--scorer",
                 "noisy_scorer_b:score", "--baseline", "v1", "--config", str(cfg), "--write", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    saved = json.loads(cfg.read_text())["tenants"]["acme"]
    assert saved["epsilon"] == report["epsilon"] > 0
    assert saved["slice_epsilon"] == report["slice_epsilon"]
    assert "noise sd" in saved["calibration"]["basis"]
    # gate picks the file up; an explicit option still wins
    base = ["gate", "--tenant", "acme", "--candidate", "v2", "--baseline", "v1", "--holdout",
            str(EXAMPLE_HOLDOUT), "--scorer", "noisy_scorer_b:score", "--config", str(cfg), "--format", "json"]
    main(base)
    assert json.loads(capsys.readouterr().out)["config"]["epsilon"] == saved["epsilon"]
    main([*base, "--epsilon", "0.3"])
    d = json.loads(capsys.readouterr().out)
    assert d["config"]["epsilon"] == 0.3 and d["config"]["slice_epsilon"] == saved["slice_epsilon"]
    # another tenant in the same file is untouched by a second calibration
    main(["calibrate", "--tenant", "globex", "--holdout", str(EXAMPLE_HOLDOUT), "--scorer",
          "noisy_scorer_b:score", "--baseline", "v1", "--config", str(cfg), "--write", "--json"])
    capsys.readouterr()
    # (the example holdout says tenant=acme on every line: globex is refused)
    assert "globex" not in json.loads(cfg.read_text())["tenants"]


@pytest.mark.parametrize("argv,needle", [
    (["--repeats", "1"], "--repeats >= 2"),
    (["--churn", "2"], "--churn"),
    (["--write"], "--write needs --config"),
])
def test_calibrate_bad_input(argv, needle, tmp_path, capsys, monkeypatch):
    (tmp_path / "steady_scorer.py").write_text(STEADY)
    monkeypatch.chdir(tmp_path)
    code = main(["calibrate", "--tenant", "acme", "--holdout", str(EXAMPLE_HOLDOUT), "--scorer",
                 "steady_scorer:score", "--baseline", "v1", *argv])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and "Traceback" not in err


def test_bad_config_file_is_exit_2(tmp_path, capsys):
    cfg = tmp_path / "c.json"
    cfg.write_text('{"tenants": {"acme": {"epsilon": "lots"}}}')
    code = main(["gate", "--tenant", "acme", "--candidate", "v2", "--baseline", "v1", "--holdout",
                 str(EXAMPLE_HOLDOUT), "--scorer", "adaptergate.examples.mock_scorer:score", "--config", str(cfg)])
    err = capsys.readouterr().err
    assert code == 2 and "tenants.acme.epsilon" in err
    cfg.write_text("{nope")
    code = main(["gate", "--tenant", "acme", "--candidate", "v2", "--baseline", "v1", "--holdout",
                 str(EXAMPLE_HOLDOUT), "--scorer", "adaptergate.examples.mock_scorer:score", "--config", str(cfg)])
    assert code == 2 and "invalid JSON" in capsys.readouterr().err
