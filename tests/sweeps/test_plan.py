"""The cost plan: a hand count for the smoke profile, nothing started or written, packing refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from sciml.sweeps import plan as plan_module
from sciml.sweeps.cli import main
from sciml.sweeps.datasets import dataset_requests
from sciml.sweeps.profiles import profile_settings
from sciml.sweeps.questions import Q1

# Smoke profile, Q1 (sciml/sweeps/profiles.py): 16^2, one preset (64K), one learning rate, one seed.
# Datasets: pre-training SYS-1(1,5) and SYS-2(0.2,1) with 64/16/16 examples, downstream
# SYS-1(5,10) and SYS-2(1,2) with 32/16/16; an example is 2 fields x 16^2 x 4 B + 9 scalars x 8 B.
EXAMPLE_BYTES = 2 * 16 * 16 * 4 + 9 * 8  # 2120
DATASET_BYTES = (2 * (64 + 16 + 16) + 2 * (32 + 16 + 16)) * EXAMPLE_BYTES  # 678,400
# Pre-training: 2 datasets x 1 preset x 1 lr = 2 trials, 64 rows / batch 16 = 4 steps x 4 epochs = 16 each.
# Downstream per task: scratch N = 4, 8, 16 (1, 1, 2 steps/epoch at batch 8, x 3 epochs = 3, 3, 6) and
# fine-tune N = 4, 8 (3, 3): 5 trials, 18 steps; zero-shot: random init + pre-trained = 2, no steps.
HAND = {"pretraining": 2, "downstream": 2 * 5, "zero-shot": 2 * 2}
HAND_STEPS = 2 * 16 + 2 * 18  # 68


@pytest.fixture
def empty_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SCIML_STORAGE", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    return tmp_path


def _json_plan(capsys, *args) -> dict:
    assert main("q1", ["--profile", "smoke", "--plan-json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_smoke_plan_matches_a_hand_count(empty_cwd, capsys):
    plan = _json_plan(capsys)
    assert plan["trials_enumerated"] == HAND
    assert plan["trials_to_run"] == HAND
    assert plan["optimizer_steps"] == {"total": HAND_STEPS, "by_preset": {"64K": HAND_STEPS}}
    assert plan_module.example_bytes(16) == EXAMPLE_BYTES
    assert plan["dataset_bytes_to_generate"] == DATASET_BYTES
    assert sorted(d["examples"]["train"] for d in plan["datasets"]) == [32, 32, 64, 64]
    assert plan["gpu_hours"] is None  # the smoke profile runs on CPUs
    assert plan["cpu_hours"]["cpu_only_core_hours"] > 0 and plan["cluster"]["wall_hours"] > 0
    # Two pre-trainings keep their model in the trials folder and the best in the cache.
    n_params = plan_module.model_cost(plan_module.load_rates(), "64K", 16).n_params
    assert plan["storage_bytes"]["checkpoints"] == 4 * (4 * n_params + plan_module.MODEL_FILE_OVERHEAD)


def test_plan_starts_no_ray_and_writes_nothing(empty_cwd):
    # A fresh interpreter: earlier tests of this process may have started Ray themselves.
    probe = ("import sys\n"
             "from sciml.sweeps.cli import main\n"
             "code = main('q1', ['--profile', 'smoke', '--plan'])\n"
             "import ray\n"
             "print('ray running:', ray.is_initialized())\n"
             "sys.exit(code)\n")
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "SCIML_STORAGE")}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, env=env,
                          cwd=empty_cwd)
    assert done.returncode == 0, done.stderr
    assert "pretraining: 2 / 2" in done.stdout and "Optimizer steps: 68" in done.stdout
    assert "ray running: False" in done.stdout
    assert list(empty_cwd.iterdir()) == []  # no mlruns.db, no runs/ (out, cache)


def test_a_cached_dataset_is_not_counted(empty_cwd, capsys, monkeypatch):
    settings = profile_settings("q1", "smoke")
    cached = {r.directory for r in dataset_requests(Q1, settings) if r.name == "SYS-1(5,10)"}
    assert len(cached) == 1
    import sciml.data.manifest as manifest

    monkeypatch.setattr(manifest, "is_complete", lambda d: str(d) in cached)
    plan = _json_plan(capsys)
    flags = {d["name"]: d["cached"] for d in plan["datasets"]}
    assert flags == {"SYS-1(1,5)": False, "SYS-2(0.2,1)": False, "SYS-1(5,10)": True, "SYS-2(1,2)": False}
    assert plan["dataset_bytes_to_generate"] == DATASET_BYTES - (32 + 16 + 16) * EXAMPLE_BYTES


def test_finished_trials_of_a_resumable_experiment_are_excluded(empty_cwd, capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(plan_module, "_finished_keys",
                        lambda path: {"pretrain_SYS-1-1-5-_64K_lr0.003_s0"} if "pretrain-" in path else set())
    # Every dataset cached, so the pre-training experiment's name is knowable.
    import sciml.data.manifest as manifest

    monkeypatch.setattr(manifest, "is_complete", lambda d: True)
    monkeypatch.setattr(manifest, "load_manifest", lambda d: {"content_hash": os.path.basename(str(d))})
    plan = _json_plan(capsys)
    assert plan["trials_finished_excluded"] == 1
    assert plan["trials_to_run"]["pretraining"] == 1
    assert plan["optimizer_steps"]["total"] == HAND_STEPS - 16


def test_an_oversized_gpu_share_exits_2_before_any_work(empty_cwd, capsys):
    with pytest.raises(SystemExit) as exc:
        main("q1", ["--profile", "smoke", "--plan", "--gpu-share", "64K=0.1", "--gpu-memory-gb", "1"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--gpu-share" in err and "64K" in err and "GiB" in err
    assert list(empty_cwd.iterdir()) == []


def test_paper_profile_packs_small_presets(empty_cwd, capsys):
    assert main("q2", ["--profile", "paper", "--plan-json", "--plan-gpus", "8"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["gpu_share"] == {"64K": 0.25, "1M": 0.5, "16M": 0.5, "256M": 1.0}
    hours = plan["gpu_hours"]
    assert 0 < hours["packed"] < hours["one_gpu_per_trial"]
    # --gpus-per-worker overrides every preset's share: nothing packed, nothing saved.
    assert main("q2", ["--profile", "paper", "--plan-json", "--gpus-per-worker", "1"]) == 0
    whole = json.loads(capsys.readouterr().out)
    assert set(whole["gpu_share"].values()) == {1.0}
    assert whole["gpu_hours"]["packed"] == pytest.approx(whole["gpu_hours"]["one_gpu_per_trial"])


def test_tune_resources_follow_the_preset():
    from sciml.sweeps.trials import trial_resources, tune_resources

    settings = profile_settings("q2", "paper").with_overrides(workers_per_trial=0)
    assert trial_resources(settings, "64K") == {"cpu": 4, "gpu": 0.25}
    assert trial_resources(settings, "256M") == {"cpu": 4, "gpu": 1.0}
    assert callable(tune_resources(settings))
    assert tune_resources(settings.with_overrides(gpu_share=())) == {"cpu": 4, "gpu": 1.0}


def test_step_rate_table_says_where_each_rate_comes_from():
    rates = plan_module.load_rates()
    assert rates["rates"] and all(r["source"].split(":")[0] in ("measured", "estimated") for r in rates["rates"])
    assert any(r["source"].startswith("measured") and r["device"] == "cpu" for r in rates["rates"])
    for device in ("cpu", plan_module.GPU_DEVICE):  # every paper preset at 128^2 has a row per device
        have = {r["preset"] for r in rates["rates"] if r["device"] == device and r["resolution"] == 128}
        assert {"64K", "1M", "16M", "256M"} <= have
    # The table's counted costs are what the counting function gives now (the model has not changed).
    stored = plan_module.model_cost(rates, "64K", 16)
    counted = plan_module.count_model_cost("64K", 16)
    assert (stored.n_params, stored.train_flops, stored.activation_bytes) == \
        (counted.n_params, counted.train_flops, counted.activation_bytes)


@pytest.mark.parametrize("question", ["q1", "q2", "q3", "q4"])
def test_rehearsal_profile_keeps_the_paper_shapes_and_plans(empty_cwd, capsys, question):
    paper, rehearsal = profile_settings(question, "paper"), profile_settings(question, "rehearsal")
    assert rehearsal.resolution == paper.resolution == 128 and rehearsal.batch_size == paper.batch_size
    assert rehearsal.loss == paper.loss and rehearsal.epochs == rehearsal.pretrain_epochs == 1
    # The N grid keeps its lower end and reaches the whole downstream split, as the paper's does.
    assert min(rehearsal.n_values) == min(paper.n_values) == 8
    assert max(rehearsal.n_values) == rehearsal.n_downstream and max(paper.n_values) == paper.n_downstream
    assert set(rehearsal.n_values) < set(paper.n_values) and len(rehearsal.lrs) <= 2
    assert set(rehearsal.presets) <= {"64K", "1M"}  # the smaller presets
    assert all(rehearsal.gpus_for(p) == 0 for p in rehearsal.presets)  # CPU only
    assert main(question, ["--profile", "rehearsal", "--plan-json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["gpu_hours"] is None and plan["resolution"] == 128
    assert all(plan["trials_to_run"][stage] > 0 for stage in ("pretraining", "downstream", "zero-shot"))
    assert not os.listdir(empty_cwd)


# --pretrained: the SYS-1 pre-training comes from the registry, so one pre-training trial (16 steps)
# and the SYS-1(1,5) dataset (64/16/16 examples) drop out; every downstream trial stays.
@pytest.mark.parametrize("entry", ["models:/sciml-SYS-1_1_5-64K@best", "SYS-1(1,5)=models:/my-foundation/3"])
def test_registered_pretraining_is_not_counted(empty_cwd, capsys, entry):
    plan = _json_plan(capsys, "--pretrained", entry)
    assert plan["trials_enumerated"] == plan["trials_to_run"] == {**HAND, "pretraining": 1}
    assert plan["optimizer_steps"]["total"] == HAND_STEPS - 16
    assert sorted(d["name"] for d in plan["datasets"]) == ["SYS-1(5,10)", "SYS-2(0.2,1)", "SYS-2(1,2)"]
    assert plan["dataset_bytes_to_generate"] == DATASET_BYTES - (64 + 16 + 16) * EXAMPLE_BYTES
    assert plan["pretrained_registered"] == ["SYS-1(1,5) 64K"] and plan["pretrained_unresolved"] == []
    assert main("q1", ["--profile", "smoke", "--plan", "--pretrained", entry]) == 0
    assert "replaced by registered models (--pretrained), not counted: SYS-1(1,5) 64K" in capsys.readouterr().out


def test_a_registered_model_whose_cell_only_the_registry_knows_is_still_counted(empty_cwd, capsys):
    # Q2 smoke has two presets (d8m4, 64K): a custom name does not say which one the model is.
    assert main("q2", ["--profile", "smoke", "--plan-json", "--pretrained", "SYS-1(1,5)=models:/custom@best"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["pretrained_registered"] == [] and plan["pretrained_unresolved"] == ["SYS-1(1,5)=models:/custom@best"]
    assert plan["trials_to_run"]["pretraining"] == 2 * 2  # two pre-trainings x two presets, as without it


# Grid edges: the smoke grid has 5 fine-tune/scratch cells per task (scratch N 4, 8, 16; fine-tune N 4, 8),
# 2 tasks. A single learning rate sits on both edges: 2 trials per cell in round one, 1 in each later
# round; with two rates, at most 1 per cell per round; every seed repeats them.
@pytest.mark.parametrize("args, bound", [([], 0), (["--extend-edges", "1"], 10 * 2), (["--extend-edges", "2"], 10 * 3),
                                         (["--extend-edges", "1", "--lrs", "1e-3 3e-3"], 10 * 1),
                                         (["--extend-edges", "2", "--lrs", "1e-3 3e-3", "--seeds", "2"], 10 * 2 * 2)])
def test_grid_edge_trials_are_an_explicit_upper_bound(empty_cwd, capsys, args, bound):
    plan = _json_plan(capsys, *args)
    assert plan["edge_trials_upper_bound"] == bound
    assert plan["trials_enumerated"]["downstream"] == HAND["downstream"] * (2 if "--seeds" in args else 1) * (
        2 if "--lrs" in args else 1)  # the bound is not folded into the counts
    assert main("q1", ["--profile", "smoke", "--plan", *args]) == 0
    text = capsys.readouterr().out
    assert (f"up to {bound} more downstream trials if every cell sits at an edge" in text) == (bound > 0)


def test_search_seeds_first_plans_the_search_on_one_seed_and_one_trial_per_later_seed(empty_cwd, capsys):
    # 10 trained cells (both tasks), 2 lrs, 3 seeds: the first seed trains both lrs (20 trials),
    # seeds 2 and 3 one each (20); zero-shot is evaluated per seed as before. Edges: the first seed only.
    plan = _json_plan(capsys, "--lrs", "1e-3 3e-3", "--seeds", "3", "--search-seeds", "first", "--extend-edges", "1")
    each = _json_plan(capsys, "--lrs", "1e-3 3e-3", "--seeds", "3", "--extend-edges", "1")
    assert plan["trials_enumerated"]["downstream"] == 10 * 2 + 10 * 2
    assert each["trials_enumerated"]["downstream"] == 10 * 2 * 3
    assert plan["trials_enumerated"]["zero-shot"] == each["trials_enumerated"]["zero-shot"]
    assert plan["edge_trials_upper_bound"] == 10 and each["edge_trials_upper_bound"] == 10 * 3
    # A trial's steps do not depend on its learning rate: 2 lrs x 18 + 2 later seeds x 18 per task, not 6 x 18.
    assert plan["optimizer_steps"]["total"] - 2 * 16 == 2 * (2 * 18 + 2 * 18)


def test_a_race_is_one_trial_per_cell_and_its_steps_are_known_in_advance(empty_cwd, capsys):
    # 3 lrs, grace 1, factor 3: each cell's race validates 3 times; after the first validation one
    # candidate of three goes on. Per task the cells have 1, 1, 2 (scratch N 4, 8, 16) and 1, 1
    # (fine-tune) steps per epoch: (3 + 1 + 1) epochs x 6 = 30 steps, against 3 x 18 for the grid.
    plan = _json_plan(capsys, "--lrs", "1e-3 3e-3 1e-2", "--scheduler", "race", "--grace-period", "1")
    grid = _json_plan(capsys, "--lrs", "1e-3 3e-3 1e-2")
    assert plan["trials_enumerated"]["downstream"] == 2 * 5 and grid["trials_enumerated"]["downstream"] == 2 * 15
    assert plan["optimizer_steps"]["total"] - 2 * 16 == 2 * 30
    assert grid["optimizer_steps"]["total"] - 2 * 16 == 2 * 3 * 18
