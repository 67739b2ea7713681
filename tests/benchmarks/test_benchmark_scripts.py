"""The benchmark scripts still run end to end (tiny sizes; the figures come from real runs)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str, ray_address: str | None = None) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if ray_address:  # the session's Ray: an embedded one costs its start (10-30 s on 2 cores)
        env["RAY_ADDRESS"] = ray_address
    done = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_datagen_benchmark_reports_every_system_and_the_targets(tmp_path):
    out = _run("benchmarks/datagen.py", "--resolution", "16", "--examples", "8", "--reference-examples", "2",
               "--repeats", "1", "--dir", str(tmp_path))
    for system in ("SYS-1(1,5)", "SYS-2(0.2,1)", "SYS-3(1,10)"):
        row = next(line for line in out.splitlines() if line.startswith(system))
        assert all(float(value) > 0 for value in row.split()[1:8])
    assert "target >= 1000 examples/s/core" in out and "target >= 60% of the floor" in out


def test_train_step_benchmark_times_our_model():
    out = _run("benchmarks/train_step.py", "--no-neuralop", "--grids", "16", "--presets", "64K", "--steps", "1",
               "--repeats", "1", "--warmup", "0", "--batch", "2", "--threads", "1")
    row = next(line for line in out.splitlines() if line.startswith("64K"))
    assert row.split()[4] == "67,329" and float(row.split()[5]) > 0


def test_sweep_efficiency_quick_compares_grid_and_opt_in_search(ray_address, tmp_path):
    out = _run("benchmarks/sweep_efficiency.py", "--quick", "--out", str(tmp_path), ray_address=ray_address)
    for label in ("grid/fifo", "opt-in"):
        row = next(line for line in out.splitlines() if line.startswith(label))
        assert int(row.split()[1]) > 0 and int(row.split()[2].replace(",", "")) > 0
    for line in ("ratio steps (opt-in / grid)", "ratio wall time", "cells within 10% of the grid", "agrees"):
        assert line in out
    # The race policies replayed on the first seed's full curves, scored against that grid half.
    out = _run("benchmarks/race_policies.py", "--quick", "--out", str(tmp_path), ray_address=ray_address)
    assert "ranks first from validation" in out and "cells_agreeing" in out
    policies = (tmp_path / "race_policies.csv").read_text().splitlines()
    assert policies[0].startswith("rank_by,grace,factor,cells_agreeing,steps_ratio") and len(policies) > 1
    assert {line.split(",")[0] for line in policies[1:]} == {"averaged", "best"}


def test_trial_overhead_quick_times_both_variants(ray_address, tmp_path):
    out = _run("benchmarks/trial_overhead.py", "--quick", "--out", str(tmp_path), ray_address=ray_address)
    for variant in ("before", "after"):
        row = next(line for line in out.splitlines() if line.startswith(variant))
        wall, train = float(row.split()[1]), float(row.split()[2])
        assert wall > train > 0
    assert "ratio overhead (after / before)" in out
