"""The trial grids the four questions enumerate, and the settings they accept."""

import pytest

from sciml.core.tables import RANDOM_INIT
from sciml.ray_env import shortfall
from sciml.sweeps.profiles import profile_settings
from sciml.sweeps.questions import MIXED, QUESTIONS
from sciml.sweeps.runner import SweepRunner
from sciml.sweeps.trials import trial_need


def _grid(key, **overrides):
    settings = profile_settings(key, "smoke").with_overrides(**overrides)
    runner = SweepRunner(QUESTIONS[key], settings, tracking=False)
    checkpoints = {(p.label, preset): f"/ckpt/{p.label}-{preset}.pt"
                   for t in runner.question.tasks for p in t.pretrainings for preset in settings.presets}
    return settings, runner, runner.downstream_trials(checkpoints)


def test_q1_grid_is_lr_x_n_x_recipe_plus_zero_shots():
    settings, runner, trials = _grid("q1", lrs=(1e-3, 3e-3))
    for task in ("SYS-1(5,10)", "SYS-2(1,2)"):
        mine = [t for t in trials if t.task == task]
        scratch = [t for t in mine if t.recipe == "scratch"]
        finetune = [t for t in mine if t.recipe == "finetune"]
        zero = [t for t in mine if t.recipe == "zeroshot"]
        assert len(scratch) == len(settings.n_values + settings.scratch_extra_n) * 2
        assert len(finetune) == len(settings.n_values) * 2
        assert {t.pretrain for t in zero} == {RANDOM_INIT, "SYS-1(1,5)" if "SYS-1" in task else "SYS-2(0.2,1)"}
        assert all(t.checkpoint for t in finetune) and all(t.lr is None for t in zero)
    assert len({t.key for t in trials}) == len(trials)
    assert [t.pretrain for t in runner.pretraining_trials()] == ["SYS-1(1,5)", "SYS-2(0.2,1)"]


def test_q2_repeats_the_grid_per_preset():
    settings, _, trials = _grid("q2")
    assert {t.preset for t in trials} == set(settings.presets) and len(settings.presets) == 2


def test_q3_has_every_shift_of_table_1():
    _, _, trials = _grid("q3")
    shifts = {(t.task, t.shift) for t in trials}
    assert len(shifts) == 8
    assert {s for _, s in shifts} == {"none", "mild", "med", "large"}


def test_q4_compares_mixed_and_same_system_pretraining():
    _, runner, trials = _grid("q4")
    finetune = [t for t in trials if t.recipe == "finetune"]
    assert {t.task for t in finetune} == {"SYS-1(1,2.5)", "SYS-2(0.2,0.4)", "SYS-3(1,5)"}
    assert {t.pretrain for t in finetune if t.task == "SYS-3(1,5)"} == {MIXED, "SYS-3(1,10)"}
    mixed = [p for t in runner.question.tasks for p in t.pretrainings if p.label == MIXED][0]
    assert [s.name for s in mixed.specs] == ["SYS-1(1,5)", "SYS-2(0.2,1)", "SYS-3(1,10)"]


def test_seeds_repeat_trained_cells_but_not_pretrained_zero_shots():
    _, _, trials = _grid("q1", seeds=3)
    zero = [t for t in trials if t.recipe == "zeroshot" and t.pretrain != RANDOM_INIT]
    assert len(zero) == 2  # one per task
    assert {t.seed for t in trials if t.recipe == "scratch"} == {0, 1, 2}


@pytest.mark.parametrize("overrides, field", [
    ({"presets": ("1M",)}, "presets"),  # m=16 does not fit a 16^2 grid
    ({"presets": ("2M",)}, "preset"),
    ({"n_values": (8, 64)}, "n_values"),  # beyond the smoke downstream split
    ({"lrs": (0.0,)}, "lrs"),
    ({"systems": ("maxwell",)}, "systems"),
    ({"seeds": 0}, "seeds"),
    ({"resolution": 15}, "resolution"),
    ({"precision": "fp16"}, "precision"),
    ({"gpus_per_worker": -1.0}, "gpus_per_worker"),
    ({"max_concurrent": 0}, "max_concurrent"),
])
def test_bad_settings_name_the_field(overrides, field):
    with pytest.raises(ValueError, match=rf"^{field}: "):
        profile_settings("q1", "smoke").with_overrides(**overrides)


def test_paper_profile_uses_the_paper_sizes():
    paper = profile_settings("q2", "paper")
    assert paper.resolution == 128 and paper.n_pretrain == 32768 and paper.epochs == 500
    assert paper.lrs == (1e-5, 5e-5, 1e-4, 5e-4, 1e-3) and paper.presets == ("64K", "1M", "16M", "256M")
    assert paper.n_values[0] == 8 and paper.n_values[-1] == 32768 and paper.gpus_per_worker == 1


def unschedulable_reason(settings, nodes):
    """Why these nodes cannot host one trial's training processes, as the sweep checks it."""
    return shortfall(*trial_need(settings), nodes)


def test_unschedulable_reason_names_what_no_node_has():
    settings = profile_settings("q1", "smoke")
    cpu_node, gpu_node = {"CPU": 2.0}, {"CPU": 8.0, "GPU": 1.0}
    assert unschedulable_reason(settings, [cpu_node]) is None
    gpu = settings.with_overrides(gpus_per_worker=1.0)
    assert unschedulable_reason(gpu, [cpu_node, gpu_node]) is None
    reason = unschedulable_reason(gpu, [cpu_node])
    assert "need 1 CPU and 1 GPU each" in reason and "largest has 2 CPU and 0 GPU" in reason
    assert unschedulable_reason(settings.with_overrides(cpus_per_worker=4), [cpu_node]) is not None


def test_ddp_trials_count_every_worker():
    ddp = profile_settings("q1", "smoke").with_overrides(workers_per_trial=2, cpus_per_worker=1)
    assert unschedulable_reason(ddp, [{"CPU": 1.0}, {"CPU": 1.0}]) is None
    assert "fit 2" in unschedulable_reason(ddp.with_overrides(workers_per_trial=3), [{"CPU": 1.0}, {"CPU": 1.5}])


def test_scratch_takes_its_own_learning_rate_grid():
    _, _, trials = _grid("q1", lrs=(1e-4, 3e-4), scratch_lrs=(1e-2, 3e-2, 1e-1))
    assert {t.lr for t in trials if t.recipe == "scratch"} == {1e-2, 3e-2, 1e-1}
    assert {t.lr for t in trials if t.recipe == "finetune"} == {1e-4, 3e-4}
    _, _, same = _grid("q1", lrs=(1e-3,))
    assert {t.lr for t in same if t.recipe in ("scratch", "finetune")} == {1e-3}


@pytest.mark.parametrize("field, value, message", [("loss", "l1", "loss: must be one of mse, rel_l2"),
                                                   ("scratch_lrs", (0.0,), "scratch_lrs")])
def test_loss_and_scratch_grid_are_validated(field, value, message):
    with pytest.raises(ValueError, match=message):
        profile_settings("q1", "smoke").with_overrides(**{field: value})


def test_laptop_profile_trains_with_the_relative_l2_loss_and_brackets_scratch_higher():
    laptop = profile_settings("q1", "laptop")
    assert laptop.loss == "rel_l2" and profile_settings("q1", "paper").loss == "mse"
    assert min(laptop.recipe_lrs["scratch"]) > max(laptop.recipe_lrs["finetune"])
