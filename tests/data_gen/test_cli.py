"""The command line: bad input fails fast with exit 2 and writes nothing; SIGKILL then rerun."""

import os
import signal
import subprocess
import sys
import time

import pytest

from data_gen import GenerationRequest, generate_dataset
from data_gen.__main__ import main
from sciml.data.manifest import file_sha256, is_complete, load_manifest
from sciml.physics import SystemSpec

GOOD = ["--system", "poisson", "--range", "1", "5", "--n-train", "4", "--n-val", "2", "--n-test", "2",
        "--resolution", "16"]


def with_option(flag, *values):
    args = list(GOOD)
    if flag in args:
        at = args.index(flag)
        width = 3 if flag == "--range" else 2
        args[at:at + width] = [flag, *values]
    else:
        args += [flag, *values]
    return args


@pytest.mark.parametrize("args, flag", [
    (with_option("--system", "heat"), "--system"),
    (with_option("--range", "5", "1"), "--range"),
    (with_option("--range", "-1", "5"), "--range"),
    (with_option("--range", "nan", "5"), "--range"),
    (with_option("--range", "0", "5"), "--range"),
    (["--system", "advdiff", *with_option("--range", "0", "1")[2:]], "--range"),
    (["--system", "helmholtz", *with_option("--range", "1", "2.5")[2:]], "--range"),
    (with_option("--resolution", "15"), "--resolution"),
    (with_option("--resolution", "4"), "--resolution"),
    (with_option("--n-val", "-3"), "--n-val"),
    (with_option("--shard-size", "0"), "--shard-size"),
    (with_option("--num-workers", "0"), "--num-workers"),
    (with_option("--n-test", "two"), "--n-test"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(args, flag, tmp_path, capsys):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--out", str(out)])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and flag in lines[0]
    assert not out.exists()


def test_a_different_dataset_in_out_exits_2_and_is_left_alone(tmp_path):
    request = GenerationRequest(SystemSpec.parse("SYS-1(1,5)"), 4, 2, 2, 16)
    (tmp_path / "manifest.json").write_text('{"content_hash": "0000"}')
    result = subprocess.run([sys.executable, "-m", "data_gen", *GOOD, "--out", str(tmp_path)], capture_output=True,
                            text=True, env={**os.environ, "RAY_ADDRESS": "127.0.0.1:1"}, timeout=120)
    assert result.returncode == 2 and "--out" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert (tmp_path / "manifest.json").read_text() == '{"content_hash": "0000"}'
    assert request.content_hash != "0000"


def _shas(directory):
    return {p.relative_to(directory).as_posix(): file_sha256(p) for p in directory.rglob("*.parquet")}


@pytest.mark.slow
def test_sigkill_then_rerun_gives_the_same_bytes(ray_address, tmp_path):
    request = GenerationRequest(SystemSpec.parse("SYS-2(0.2,1)"), 2048, 256, 0, 64, seed=2, shard_size=128)
    argv = [sys.executable, "-m", "data_gen", "--system", "advdiff", "--range", "0.2", "1", "--n-train", "2048",
            "--n-val", "256", "--n-test", "0", "--resolution", "64", "--seed", "2", "--shard-size", "128",
            "--num-workers", "1", "--address", ray_address, "--no-progress", "--out", str(tmp_path / "killed")]
    victim = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(list((tmp_path / "killed").glob("train/part-*.parquet"))) < 2:
        time.sleep(0.005)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=60)
    finished = len(list((tmp_path / "killed").glob("train/part-*.parquet")))
    assert 2 <= finished < 16 and not is_complete(tmp_path / "killed"), "kill did not land mid-run"

    rerun = subprocess.run(argv, capture_output=True, text=True, timeout=240)
    assert rerun.returncode == 0, rerun.stderr
    clean = generate_dataset(request, tmp_path / "clean", num_workers=2, progress=False)
    assert _shas(tmp_path / "killed") == _shas(tmp_path / "clean")
    assert load_manifest(tmp_path / "killed")["shards"] == clean["shards"]
    assert not list((tmp_path / "killed").rglob("*.tmp")) and not (tmp_path / "killed/.generating.json").exists()


def _hashes(directory):
    from sciml.data.manifest import file_hash

    return {p.relative_to(directory).as_posix(): file_hash(p) for p in sorted(directory.rglob("*.parquet"))}


def test_a_rerun_regenerates_exactly_the_damaged_shards_and_verify_reports_them(ray_address, tmp_path, capsys):
    out = tmp_path / "ds"
    argv = [*with_option("--shard-size", "2"), "--address", ray_address, "--no-progress", "--out", str(out)]
    assert main(argv) == 0
    original, manifest_bytes = _hashes(out), (out / "manifest.json").read_bytes()
    capsys.readouterr()
    assert len(original) == 4 and main(["verify", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"{out}: OK (4 shards, SYS-1(1,5))"

    half = out / "train/part-00000.parquet"
    half.write_bytes(half.read_bytes()[:half.stat().st_size // 2])  # truncated to half
    flipped = out / "val/part-00000.parquet"
    data = bytearray(flipped.read_bytes())
    data[len(data) // 3] ^= 0xFF  # one byte inside the data: the footer still reads
    flipped.write_bytes(bytes(data))
    (out / "test/part-00000.parquet").unlink()

    assert main(["verify", str(out)]) == 1
    report = capsys.readouterr().out
    assert "DAMAGED, 3 bad shard(s)" in report
    assert "train/part-00000.parquet: not a readable Parquet file" in report
    assert "val/part-00000.parquet: xxh3_128 content hash" in report and "test/part-00000.parquet: missing" in report
    assert "python -m data_gen --system poisson --range 1.0 5.0 --n-train 4" in report and "--shard-size 2" in report

    assert main(argv) == 0  # the same arguments: verify, then regenerate the three
    said = capsys.readouterr().out
    assert "regenerating 3 damaged or missing shard(s)" in said and "train/part-00000.parquet" in said
    assert _hashes(out) == original and (out / "manifest.json").read_bytes() == manifest_bytes
    assert main(["verify", str(out)]) == 0


def test_verify_exits_2_for_a_directory_that_is_not_a_dataset(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk/manifest.json").write_text("{not json")
    assert main(["verify", str(tmp_path / "empty"), str(tmp_path / "junk"), str(tmp_path / "absent")]) == 2
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and all("NOT A DATASET" in line for line in lines)
    with pytest.raises(SystemExit) as exit_info:
        main(["verify"])
    assert exit_info.value.code == 2
