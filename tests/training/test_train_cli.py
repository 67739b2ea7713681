"""`python -m sciml.train`: argument errors exit 2 before work; a run ends with test_rel_l2=."""

import subprocess
import sys

import pytest
import torch

from sciml.train import main


def _cli(*args, cwd, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "sciml.train", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.parametrize("args, field", [
    (["scratch", "--data", "{pre}", "--preset", "5M"], "preset"),
    (["scratch", "--data", "{pre}", "--width", "16"], "width/modes"),
    (["scratch", "--data", "{pre}", "--lr", "0"], "lr"),
    (["scratch", "--data", "{pre}", "--epochs", "0"], "epochs"),
    (["scratch", "--data", "{pre}", "--n-train", "100000"], "n_train"),
    (["scratch", "--data", "{pre}", "--preset", "1M"], "modes"),  # m=16 > n/2 on a 16^2 grid
    (["finetune", "--data", "{pre}"], "checkpoint"),
    (["finetune", "--data", "{pre}", "--checkpoint", "missing.pt"], "checkpoint"),
    (["scratch", "--data", "no/such/dir"], "data"),
    (["scratch", "--data", "{pre}", "{adv}", "--shares", "1"], "shares"),
    (["scratch", "--data", "{pre}", "--workers", "-1"], "workers"),
    pytest.param(["scratch", "--data", "{pre}", "--gpus-per-worker", "1"], "gpus_per_worker",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")),
])
def test_bad_arguments_return_2_with_one_clear_line(args, field, small_datasets, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = [a.format(**small_datasets) for a in args]
    assert main([*args, "--out", str(tmp_path / "out")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {field}")
    assert not (tmp_path / "out").exists() and not (tmp_path / "mlruns.db").exists()


def test_the_process_exits_2(tmp_path):
    result = _cli("scratch", "--data", "no/such/dir", cwd=tmp_path, timeout=120)
    assert result.returncode == 2 and result.stderr.startswith("error: data")


def test_more_workers_than_the_embedded_ray_has_exits_2_before_any_work(small_datasets, tmp_path):
    env = {k: v for k, v in __import__("os").environ.items() if k != "RAY_ADDRESS"}
    result = _cli("scratch", "--data", small_datasets["pre"], "--width", "8", "--modes", "4", "--workers", "64",
                  "--out", str(tmp_path / "out"), cwd=tmp_path, env=env, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "error: the embedded Ray cannot run this: 64 training process(es) need 1 CPU each" in result.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "mlruns.db").exists()


def test_pretrain_then_evaluate_from_the_command_line(small_datasets, ray_address, tmp_path):
    env = {**__import__("os").environ, "RAY_ADDRESS": ray_address, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/m.db"}
    pre = _cli("pretrain", "--data", small_datasets["pre"], small_datasets["adv"], "--width", "8", "--modes", "4",
               "--epochs", "2", "--batch-size", "32", "--out", str(tmp_path / "pre"), cwd=tmp_path, env=env)
    assert pre.returncode == 0, pre.stderr[-2000:]
    value = float(pre.stdout.strip().splitlines()[-1].removeprefix("test_rel_l2="))
    assert 0 < value < 10
    payload = torch.load(tmp_path / "pre" / "model.pt", weights_only=True)
    # A mixture of two datasets: both are recorded with the model.
    assert [d["name"] for d in payload["meta"]["datasets"]["train"]] == ["SYS-1(1,5)", "SYS-2(0.2,1)"]
    zero = _cli("evaluate", "--data", small_datasets["down"], "--checkpoint", str(tmp_path / "pre"),
                "--out", str(tmp_path / "zs"), cwd=tmp_path, env=env)
    assert zero.returncode == 0, zero.stderr[-2000:]
    assert zero.stdout.strip().splitlines()[-1].startswith("test_rel_l2=")
