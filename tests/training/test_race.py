"""A race of learning rates in one run: lockstep successive halving, each candidate as if alone."""

import json
from dataclasses import replace

from types import SimpleNamespace

import pytest
import torch

from sciml.training.config import RACE_KEY, LoopConfig, RaceConfig, TrainConfig
from sciml.training.loop import LoopData, Trainer, WeightAverage
from sciml.training.race import Race, candidate, rank_error

def _load_test_loop():
    """test_loop's fake Ray Train session and data helpers (pytest's importlib mode has no test packages)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("_test_loop", Path(__file__).with_name("test_loop.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_loop = _load_test_loop()
CPU, MODEL, FakeSession, _fields, _timeless = _loop.CPU, _loop.MODEL, _loop.FakeSession, _loop._fields, _loop._timeless

LRS = (1e-4, 3e-2, 1e-2)


@pytest.fixture(scope="module")
def data():
    return LoopData(val=_fields(16, 1), test=_fields(16, 2), train=_fields(32, 3))


def _config(epochs=6, **race):
    cfg = TrainConfig(recipe="scratch", model=MODEL, epochs=epochs, lr=1e-3, batch_size=8, seed=11)
    return LoopConfig(train=cfg, race=RaceConfig(LRS, **race))


def _race(session, data, config):
    trainers = [candidate(config, i, session, data, CPU) for i in range(len(config.race.lrs))]
    return Race(config.race, trainers).run(), trainers


def _alone(tmp_path, data, config, lr, epochs, averaged=False):
    """The same candidate trained alone for `epochs` epochs, concluded there; with `averaged`,
    also the error a rung would rank it by, keeping a weight average as a race's candidate does."""
    trainer = Trainer(LoopConfig(train=replace(config.train, lr=lr)),
                      FakeSession(str(tmp_path / f"alone{lr:g}")), data, CPU)
    if averaged:
        trainer.average = WeightAverage(trainer.model)
    trainer.start()
    trainer.advance(epochs)
    rank = rank_error(trainer)
    return (trainer.conclude(), rank) if averaged else trainer.conclude()


@pytest.mark.parametrize("kwargs, field", [
    ({"lrs": (1e-3,)}, "race.lrs"), ({"lrs": (1e-3, 1e-3)}, "race.lrs"), ({"lrs": (1e-3, 2.0)}, "race.lrs"),
    ({"lrs": (1e-3, 1e-2), "grace_period": 0}, "race.grace_period"),
    ({"lrs": (1e-3, 1e-2), "reduction_factor": 1.0}, "race.reduction_factor"),
    ({"lrs": (1e-3, 1e-2), "rank_by": "last"}, "race.rank_by"),
])
def test_race_config_errors_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        RaceConfig(**kwargs)


def test_rungs_and_survivors_follow_grace_and_reduction_factor():
    race = RaceConfig((1e-3, 1e-2), grace_period=4, reduction_factor=3)
    assert race.rungs(30) == [4, 12] and race.rungs(4) == [] and race.rungs(5) == [4]
    assert [race.survivors(n) for n in (1, 2, 3, 9, 10)] == [1, 1, 1, 3, 3]
    assert RaceConfig((1e-3, 1e-2), grace_period=1, reduction_factor=2).rungs(9) == [1, 2, 4, 8]


def test_the_weight_average_weights_each_step_by_its_index():
    model = torch.nn.Linear(2, 1)
    average = WeightAverage(model)
    thetas = [torch.full_like(model.weight, float(v)) for v in (4.0, -2.0, 7.0, 1.0)]
    for theta in thetas:
        with torch.no_grad():
            model.weight.copy_(theta)
        average.update(model)
    expected = sum(t * theta for t, theta in enumerate(thetas, 1)) / sum(range(1, len(thetas) + 1))
    assert torch.allclose(average.model.weight, expected)
    assert torch.equal(model.weight, thetas[-1])  # the run's own weights are untouched


def test_an_averaged_rung_keeps_the_candidate_whose_average_leads():
    def stub(best, averaged):
        return SimpleNamespace(best=SimpleNamespace(val_rel_l2=best), averaged_val=averaged)

    noisy_high_lr, steady_low_lr = stub(0.030, 0.018), stub(0.020, 0.021)
    assert rank_error(noisy_high_lr) == 0.018 and rank_error(steady_low_lr) == 0.020
    assert Race(RaceConfig((1e-3, 3e-4)), [noisy_high_lr, steady_low_lr])._ranked([0, 1]) == [0, 1]
    # Without an average (rank_by best) only the best validation error counts.
    assert rank_error(stub(0.030, float("inf"))) == 0.030


@pytest.mark.parametrize("rank_by", ["averaged", "best"])
def test_losers_stop_at_the_first_rung_and_every_candidate_trains_as_if_alone(data, tmp_path, rank_by):
    config = _config(epochs=6, grace_period=2, rank_by=rank_by)
    session = FakeSession(str(tmp_path / "race"))
    final, trainers = _race(session, data, config)
    candidates = json.loads(final[RACE_KEY])
    assert [c["lr"] for c in candidates] == list(LRS)
    stopped = [c for c in candidates if c["stopped_early"]]
    (winner,) = [c for c in candidates if c["winner"]]
    # Three candidates, reduction factor 3: one goes on after the rung at 2 validations.
    assert len(stopped) == 2 and all(c["epochs_run"] == 2 and c["steps"] == 8 for c in stopped)
    assert not winner["stopped_early"] and winner["epochs_run"] == 6 and winner["steps"] == 24
    if rank_by == "averaged":
        at_rung = {c["lr"]: _alone(tmp_path, data, config, c["lr"], 2, averaged=True)[1] for c in candidates}
        # Every candidate validated its averaged weights too, up to the last rung (none after), and
        # they differ from its own.
        for trainer in trainers:
            averaged = [h["val_rel_l2_averaged"] for h in trainer.history[1:] if "val_rel_l2_averaged" in h]
            assert len(averaged) == 2 and averaged != [h["val_rel_l2"] for h in trainer.history[1:3]]
    else:
        at_rung = {c["lr"]: _alone(tmp_path, data, config, c["lr"], 2)["val_rel_l2"] for c in candidates}
        assert all(trainer.average is None for trainer in trainers)
    assert min(at_rung, key=at_rung.get) == winner["lr"]
    # Sharing a process changes nothing: each candidate's answer is what it would be alone.
    for c in candidates:
        alone = _alone(tmp_path, data, config, c["lr"], c["epochs_run"])
        assert _timeless(alone) == pytest.approx({k: v for k, v in _timeless(c).items() if k in alone})
    assert _timeless({k: v for k, v in final.items() if k != RACE_KEY}) == pytest.approx(
        {k: v for k, v in _timeless(winner).items() if k not in ("lr", "winner")})
    model_reports = [files for _, files in session.reports if files]
    assert model_reports == [["model.pt"]]  # the winner's model, once, as the last report


def test_a_race_without_rungs_trains_every_candidate_to_the_end(data, tmp_path):
    final, trainers = _race(FakeSession(str(tmp_path)), data, _config(epochs=2, grace_period=4))
    candidates = json.loads(final[RACE_KEY])
    assert all(c["epochs_run"] == 2 and not c["stopped_early"] for c in candidates)
    # Several survivors keep validating their averaged weights to the end (race_policies replays them).
    assert all(sum("val_rel_l2_averaged" in h for h in t.history) == 2 for t in trainers)
    best = min(candidates, key=lambda c: c["val_rel_l2"])
    assert best["winner"] and sum(c["winner"] for c in candidates) == 1
