"""`benchmarks/train_step.py --write-rates` updates the plan's step-rate table (tiny sizes)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(240)
def test_write_rates_replaces_its_own_rows_and_keeps_the_rest(tmp_path):
    table = tmp_path / "step_rates.json"
    shutil.copy(ROOT / "sciml" / "sweeps" / "step_rates.json", table)
    before = json.loads(table.read_text())
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "benchmarks/train_step.py", "--write-rates", "--rates-file", str(table), "--presets", "64K",
         "--grids", "16", "--table-presets", "64K", "--batch", "2", "--steps", "1", "--repeats", "1", "--warmup", "0",
         "--threads", "1"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=200)
    assert done.returncode == 0, done.stderr[-2000:]
    after = json.loads(table.read_text())
    rows = {(r["preset"], r["resolution"], r["device"]): r for r in after["rates"]}
    new = rows["64K", 16, "cpu"]
    assert new["source"].startswith("measured:") and "--rates-file" in new["source"] and new["batch"] == 2
    assert new["step_s"] > 0 and new["step_s"] == pytest.approx(new["fixed_s"] + 2 * new["per_example_s"])
    # Rows measured before (another pair, the recorded H100 runs) and the 256M counts are kept.
    old = {(r["preset"], r["resolution"], r["device"]): r for r in before["rates"]}
    for key in (("d16m8", 32, "cpu"), ("1M", 128, "h100")):
        assert rows[key] == old[key]
    assert after["models"]["256M@128"] == before["models"]["256M@128"]
    assert rows["256M", 128, "h100"]["source"].startswith("estimated:")
