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


def test_pretrain_then_evaluate_from_the_command_line(small_datasets, ray_address, new_mlflow_store, tmp_path):
    env = {**__import__("os").environ, "RAY_ADDRESS": ray_address, "MLFLOW_TRACKING_URI": new_mlflow_store(tmp_path, "m.db")}
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


def _d8m4_checkpoint(path):
    from sciml.models import build_fno
    from sciml.training.checkpoint import save_model

    model = build_fno(None, width=8, modes=4)
    model.set_normalization(2.0, [1.0] * 6)
    save_model(str(path), model, meta={"note": "test"})
    return str(path)


@pytest.mark.parametrize("content", [b"\x00\x01garbage" * 100, b"just some text\n", None])
def test_a_checkpoint_that_is_not_a_model_file_exits_2(content, small_datasets, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "bad.pt"
    if content is None:  # a pickle of something else than a model file
        torch.save({"weights": torch.zeros(3)}, bad)
    else:
        bad.write_bytes(content)
    assert main(["finetune", "--data", small_datasets["down"], "--checkpoint", str(bad), "--out",
                 str(tmp_path / "out")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: checkpoint") and "not a sciml-fno/1 model file" in lines[0]
    assert not (tmp_path / "out").exists() and not (tmp_path / "mlruns.db").exists()


@pytest.mark.parametrize("flags", [["--preset", "1M"], ["--preset", "64K"], ["--width", "8", "--modes", "8"]])
def test_a_model_flag_conflicting_with_the_checkpoint_exits_2(flags, small_datasets, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    checkpoint = _d8m4_checkpoint(tmp_path / "m.pt")
    for recipe in ("finetune", "evaluate"):
        assert main([recipe, "--data", small_datasets["down"], "--checkpoint", checkpoint, *flags, "--out",
                     str(tmp_path / "out")]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: preset") and "holds model d8m4" in lines[0]
    assert not (tmp_path / "out").exists() and not (tmp_path / "mlruns.db").exists()


def test_a_matching_model_flag_is_accepted_and_the_checkpoint_names_the_model(small_datasets, tmp_path):
    from sciml.train import _parser, _validate

    checkpoint = _d8m4_checkpoint(tmp_path / "m.pt")
    for flags in ([], ["--width", "8", "--modes", "4"]):
        cfg, _, _ = _validate(_parser().parse_args(["evaluate", "--data", small_datasets["down"], "--checkpoint",
                                                    checkpoint, *flags]))
        assert cfg.model.label == "d8m4" and cfg.model.width_and_modes == (8, 4)


def test_finetune_without_preset_logs_the_checkpoints_model(small_datasets, ray_address, mlflow_uri, tmp_path,
                                                             monkeypatch):
    import mlflow

    from sciml.training.config import ModelConfig

    monkeypatch.chdir(tmp_path)
    checkpoint = _d8m4_checkpoint(tmp_path / "m.pt")
    assert main(["finetune", "--data", small_datasets["down"], "--checkpoint", checkpoint, "--epochs", "1",
                 "--n-train", "16", "--experiment", "ft-meta", "--out", str(tmp_path / "ft")]) == 0
    runs = mlflow.MlflowClient(mlflow_uri).search_runs(
        [mlflow.MlflowClient(mlflow_uri).get_experiment_by_name("ft-meta").experiment_id])
    assert len(runs) == 1
    params = runs[0].data.params
    assert params["preset"] == "d8m4" and params["width"] == "8" and params["modes"] == "4"
    assert params["n_params"] == str(ModelConfig(preset=None, width=8, modes=4).n_params)
    assert runs[0].data.tags["preset"] == "d8m4"


def test_a_damaged_dataset_is_refused_naming_the_shard_and_the_repair(small_datasets, tmp_path, capsys, monkeypatch):
    import shutil

    monkeypatch.chdir(tmp_path)
    copy = tmp_path / "down"
    shutil.copytree(small_datasets["down"], copy)
    shard = copy / "train/part-00000.parquet"
    shard.write_bytes(shard.read_bytes()[:shard.stat().st_size // 2])  # truncated to half
    assert main(["scratch", "--data", str(copy), "--width", "8", "--modes", "4", "--out", str(tmp_path / "out")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: data: {copy} is damaged")
    assert "train/part-00000.parquet: not a readable Parquet file" in lines[0]
    assert f"repair with: python -m data_gen --system poisson --range 5.0 10.0 --n-train 64" in lines[0]
    assert not (tmp_path / "out").exists() and not (tmp_path / "mlruns.db").exists()
