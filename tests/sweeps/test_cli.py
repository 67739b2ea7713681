"""The sweep command line: an --out/--cache that cannot be created exits 2 before Ray, MLflow or a state file."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _sweep(*args, cwd):
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI")}
    return subprocess.run([sys.executable, str(ROOT / "sweeps" / "q1_data_scaling.py"), "--profile", "smoke", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("flag", ["--out", "--cache"])
def test_an_out_or_cache_under_a_file_exits_2_before_any_run_or_state(flag, tmp_path):
    (tmp_path / "file").write_text("not a directory")
    paths = {"--out": str(tmp_path / "o"), "--cache": str(tmp_path / "c"), flag: str(tmp_path / "file" / "sub")}
    result = _sweep("--out", paths["--out"], "--cache", paths["--cache"], cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{flag}: cannot create" in lines[0] and "is a file" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # no mlruns.db, no state file, no out/cache


def test_check_creatable(tmp_path):
    from sciml.sweeps.cli import check_creatable

    check_creatable("out", str(tmp_path / "new" / "deeper"))
    check_creatable("out", str(tmp_path))
    (tmp_path / "f").write_text("")
    with pytest.raises(ValueError, match="^cache: .* exists and is not a directory"):
        check_creatable("cache", str(tmp_path / "f"))
    if os.geteuid() != 0:  # root writes anywhere: a read-only directory only stops other users
        (tmp_path / "ro").mkdir(mode=0o555)
        with pytest.raises(ValueError, match="^out: cannot create .* no write permission"):
            check_creatable("out", str(tmp_path / "ro" / "x"))
    assert not (tmp_path / "new").exists()
