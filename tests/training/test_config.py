import json

import pytest

from sciml.training.config import LoopConfig, ModelConfig, RaceConfig, ResourceConfig, TrackingTarget, TrainConfig


def test_model_config_parses_presets_and_free_sizes():
    assert ModelConfig.parse("1M") == ModelConfig(preset="1M")
    custom = ModelConfig.parse("d16m8")
    assert (custom.width, custom.modes, custom.label) == (16, 8, "d16m8")
    assert custom.width_and_modes == (16, 8) and ModelConfig.parse("256M").width_and_modes == (128, 32)


@pytest.mark.parametrize("kwargs, field", [
    ({"preset": "2M"}, "preset"),
    ({"preset": None, "width": 8}, "width/modes"),
    ({"preset": None, "width": 0, "modes": 4}, "width"),
    ({"preset": "64K", "width": 8, "modes": 4}, "preset"),
])
def test_model_config_errors_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        ModelConfig(**kwargs)


@pytest.mark.parametrize("kwargs, field", [
    ({"recipe": "transfer"}, "recipe"),
    ({"epochs": 0}, "epochs"),
    ({"lr": 0.0}, "lr"),
    ({"lr": float("nan")}, "lr"),
    ({"batch_size": 0}, "batch_size"),
    ({"n_train": 0}, "n_train"),
    ({"recipe": "finetune"}, "checkpoint"),
    ({"recipe": "scratch", "init_checkpoint": "x.pt"}, "checkpoint"),
    ({"recipe": "evaluate", "epochs": 3, "init_checkpoint": "x.pt"}, "epochs"),
    ({"precision": "fp8"}, "precision"),
    ({"loss": "l1"}, "loss"),
])
def test_train_config_errors_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        TrainConfig(**kwargs)


def test_train_config_round_trips_through_a_dict():
    cfg = TrainConfig(recipe="finetune", model=ModelConfig.parse("d8m4"), epochs=3, lr=1e-4,
                      init_checkpoint="m.pt", n_train=16)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown"):
        TrainConfig.from_dict({**cfg.to_dict(), "momentum": 0.9})


def test_resource_config_limits():
    assert ResourceConfig(workers=2, gpus_per_worker=1).use_gpu
    with pytest.raises(ValueError, match="workers"):
        ResourceConfig(workers=-1)
    with pytest.raises(ValueError, match="gpus_per_worker"):
        ResourceConfig(workers=0, gpus_per_worker=2)


def test_loop_config_travels_as_the_plain_dict_ray_train_requires():
    cfg = TrainConfig(recipe="scratch", model=ModelConfig.parse("d8m4"), epochs=3, n_train=16)
    loop = LoopConfig(train=cfg, tracking=TrackingTarget(uri="sqlite:////tmp/m.db", run_id="abc"), use_gpu=True,
                      threads=2, checkpoint_every=3, local_checkpoint_dir="/tmp/c",
                      datasets={"train": [{"name": "SYS-1(1,5)"}]}, progress=True)
    sent = loop.to_dict()
    assert json.loads(json.dumps(sent)) == sent  # nothing but JSON types
    assert LoopConfig.from_dict(sent) == loop
    assert LoopConfig.from_dict(LoopConfig(train=cfg).to_dict()).tracking is None
    with pytest.raises(ValueError, match="unknown"):
        LoopConfig.from_dict({**sent, "use_tpu": True})
    race = LoopConfig(train=cfg, race=RaceConfig((1e-3, 1e-2), grace_period=2, rank_by="best"),
                      candidate_tracking=(TrackingTarget("u", "a"), TrackingTarget("u", "b")))
    sent = race.to_dict()
    assert json.loads(json.dumps(sent)) == sent and LoopConfig.from_dict(sent) == race
    with pytest.raises(ValueError, match="candidate_tracking"):
        LoopConfig(train=cfg, race=RaceConfig((1e-3, 1e-2)), candidate_tracking=(TrackingTarget("u", "a"),))


@pytest.mark.parametrize("kwargs, field", [
    ({"threads": 0}, "threads"),
    ({"checkpoint_every": 0}, "checkpoint_every"),
    ({"train": {"epochs": 0}}, "epochs"),
])
def test_loop_config_errors_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        LoopConfig(**{"train": TrainConfig(), **kwargs})
