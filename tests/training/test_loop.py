"""The training loop's steps, one by one, without Ray: a fake session records reports and checkpoints."""

import gc
import os
import shutil
import weakref

import pytest
import torch

from sciml.data.fields import FieldSet
from sciml.training import loop as loop_module
from sciml.training.checkpoint import MODEL_FILE, STATE_FILE, save_model
from sciml.training.config import LoopConfig, ModelConfig, TrainConfig
from sciml.training.loop import BestWeights, EpochSchedule, LoopData, Trainer, evaluate
from sciml.training.session import TrainSession

MODEL = ModelConfig(preset=None, width=4, modes=2)
CPU = torch.device("cpu")


class FakeSession(TrainSession):
    """One process standing in for Ray Train: keeps a copy of every reported checkpoint, as Ray does."""

    def __init__(self, root, *, distributed=False, resume_from=None, world_size=1, fail_after=None):
        self.world_rank, self.world_size, self.local_rank = 0, world_size, 0
        self.distributed = distributed
        self._local_checkpoint_dir = os.path.join(root, "local")
        self._root, self._resume_from, self._fail_after = root, resume_from, fail_after
        self.reports = []  # (metrics, sorted file names of its checkpoint, or None)
        self.checkpoints = []  # kept copies, in report order

    def latest_checkpoint(self):
        return self._resume_from

    def report(self, metrics, checkpoint_path=None):
        if self._fail_after is not None and len(self.reports) == self._fail_after:
            raise RuntimeError("worker killed")
        files = None
        if checkpoint_path:
            from ray.train import Checkpoint

            kept = os.path.join(self._root, f"kept_{len(self.reports):03d}")
            shutil.copytree(checkpoint_path, kept)
            self.checkpoints.append(Checkpoint.from_directory(kept))
            files = sorted(os.listdir(kept))
        self.reports.append((dict(metrics), files))

    def _collective(self):
        return False


def _fields(count, seed, n=8):
    generator = torch.Generator().manual_seed(seed)
    source = torch.randn(count, n, n, generator=generator)
    coeffs = torch.rand(count, 6, generator=generator) + 0.5
    return FieldSet(torch.arange(count), source, coeffs, source * coeffs[:, :1, None] * 0.1)


@pytest.fixture(scope="module")
def data():
    return LoopData(val=_fields(16, 1), test=_fields(16, 2), train=_fields(32, 3))


def _trainer(session, data, epochs=3, checkpoint_every=1, **train):
    cfg = TrainConfig(recipe=train.pop("recipe", "scratch"), model=MODEL, epochs=epochs, lr=1e-2, batch_size=8,
                      seed=11, **train)
    return Trainer(LoopConfig(train=cfg, checkpoint_every=checkpoint_every), session, data, CPU)


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("epochs, min_steps, rows, world_size, expected, validated", [
    (3, 0, 32, 1, (3, 8, 4, 1), [1, 2, 3]),
    (2, 5, 8, 1, (5, 8, 1, 2), [2, 4, 5]),  # one step per epoch: stretched, validated about twice
    (2, 5, 4, 2, (5, 4, 1, 2), [2, 4, 5]),  # DDP: each of 2 workers takes half the global batch
    (2, 0, 9, 1, (2, 8, 2, 1), [1, 2]),
])
def test_epoch_schedule_stretches_small_sets_to_min_steps(epochs, min_steps, rows, world_size, expected, validated):
    cfg = TrainConfig(model=MODEL, epochs=epochs, batch_size=8, min_steps=min_steps)
    schedule = EpochSchedule.plan(cfg, rows, world_size)
    assert (schedule.epochs, schedule.batch_size, schedule.steps_per_epoch, schedule.eval_every) == expected
    assert [e for e in range(1, schedule.epochs + 1) if schedule.validates(e)] == validated
    assert schedule.total_steps == schedule.epochs * schedule.steps_per_epoch


def test_an_evaluation_has_no_epochs():
    cfg = TrainConfig(recipe="evaluate", model=MODEL, epochs=0, init_checkpoint="m.pt")
    assert EpochSchedule.plan(cfg, 0, 1).epochs == 0


def test_best_weights_keep_the_earliest_strictly_better_copy():
    model = MODEL.build()
    start = _weights(model)
    best = BestWeights.start(0.5, model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    assert not best.consider(1, 0.5, model)  # a tie keeps the earlier weights
    assert best.epoch == 0 and _same_weights(best.state, start)
    assert best.consider(2, 0.25, model)
    chosen = _weights(model)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)
    assert best.epoch == 2 and best.val_rel_l2 == 0.25 and _same_weights(best.state, chosen)  # a copy, not a view
    assert not best.consider(3, float("nan"), model)
    again = BestWeights.from_state(best.to_state())
    assert (again.epoch, again.val_rel_l2) == (2, 0.25) and _same_weights(again.state, chosen)


def test_baseline_validates_the_starting_weights_as_epoch_0(data, tmp_path):
    session = FakeSession(str(tmp_path))
    trainer = _trainer(session, data)
    start = _weights(trainer.model)
    trainer.resume_or_baseline()
    expected = evaluate(trainer.model, data.val, session, trainer.cfg, CPU)
    assert trainer.history == [{"epoch": 0, "val_rel_l2": expected}]
    assert trainer.start_epoch == 0 and trainer.best.epoch == 0 and trainer.best.val_rel_l2 == expected
    assert _same_weights(trainer.best.state, start)
    assert session.reports == []  # epoch 0 is logged to MLflow, not reported to Ray Train


def test_reports_carry_a_state_every_n_validations_and_the_model_at_the_end(data, tmp_path):
    session = FakeSession(str(tmp_path), distributed=True)
    final = _trainer(session, data, epochs=3, checkpoint_every=2).run()
    assert [m["epoch"] for m, _ in session.reports] == [1, 2, 3, 3]
    assert [files for _, files in session.reports] == [None, [STATE_FILE], [STATE_FILE], [MODEL_FILE, STATE_FILE]]
    assert session.reports[-1][0] == final and final["done"] and final["epochs"] == 3
    assert final["n_train"] == 32 and 0 <= final["best_epoch"] <= 3


def test_local_mode_reports_only_the_final_model(data, tmp_path):
    session = FakeSession(str(tmp_path), distributed=False)
    _trainer(session, data, epochs=2).run()
    assert [files for _, files in session.reports] == [None, None, [MODEL_FILE]]


def test_a_resumed_run_ends_exactly_where_an_uninterrupted_one_does(data, tmp_path):
    whole = FakeSession(str(tmp_path / "whole"), distributed=True)
    expected = _trainer(whole, data, epochs=4).run()
    killed = FakeSession(str(tmp_path / "killed"), distributed=True, fail_after=2)
    with pytest.raises(RuntimeError, match="killed"):
        _trainer(killed, data, epochs=4).run()
    resumed = FakeSession(str(tmp_path / "resumed"), distributed=True, resume_from=killed.checkpoints[-1])
    trainer = _trainer(resumed, data, epochs=4)
    final = trainer.run()
    assert trainer.start_epoch == 2
    assert [m["epoch"] for m, _ in resumed.reports] == [3, 4, 4]
    assert _timeless(final) == _timeless(expected)  # seconds are measured, not reproduced
    assert final["train_seconds"] > 0 and final["steps"] == expected["steps"]
    assert trainer.history == _history(whole)


def _timeless(metrics):
    return {k: v for k, v in metrics.items() if k != "train_seconds"}


def _history(session):
    with session.checkpoints[-1].as_directory() as path:
        return torch.load(os.path.join(path, STATE_FILE), weights_only=True)["history"]


def test_a_restart_after_the_final_report_goes_straight_to_the_test(data, tmp_path):
    first = FakeSession(str(tmp_path / "first"), distributed=True)
    expected = _trainer(first, data, epochs=2).run()
    again = FakeSession(str(tmp_path / "again"), distributed=True, resume_from=first.checkpoints[-1])
    trainer = _trainer(again, data, epochs=2)
    assert _timeless(trainer.run()) == _timeless(expected)
    assert [files for _, files in again.reports] == [[MODEL_FILE, STATE_FILE]]  # no epoch trained again
    assert trainer.start_epoch == 2


def test_a_finetune_starts_from_the_model_file_and_records_its_data(data, tmp_path):
    model = MODEL.build()
    model.set_normalization(2.0, [3.0] * 6)
    path = str(tmp_path / "pre.pt")
    save_model(path, model, meta={"datasets": {"train": [{"name": "SYS-1(1,5)"}]}})
    session = FakeSession(str(tmp_path))
    trainer = _trainer(session, data, epochs=1, recipe="finetune", init_checkpoint=path)
    assert _same_weights(_weights(trainer.model), _weights(model))
    trainer.run()
    with session.checkpoints[-1].as_directory() as kept:
        payload = torch.load(os.path.join(kept, MODEL_FILE), weights_only=True)
    assert payload["meta"]["pretrained_from"] == {"train": [{"name": "SYS-1(1,5)"}]}
    assert float(payload["state_dict"]["f_ref"]) == 2.0  # the pre-trained statistics are kept


def test_release_frees_the_ddp_wrapper_while_the_process_group_lives(data, tmp_path):
    import torch.distributed as dist

    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    gc.disable()  # only release() may collect: DDP sits in a reference cycle
    try:
        trainer = _trainer(FakeSession(str(tmp_path), world_size=2), data)
        assert isinstance(trainer.net, torch.nn.parallel.DistributedDataParallel)
        wrapper = weakref.ref(trainer.net)
        trainer.release()
        assert wrapper() is None and trainer.net is trainer.model
        assert dist.is_initialized()
    finally:
        gc.enable()
        gc.collect()
        dist.destroy_process_group()


def test_metrics_up_to_a_resumable_checkpoint_are_flushed_before_it_is_reported(data, tmp_path):
    events = []

    class Logger:
        def log_metrics(self, metrics, step):
            events.append(("log", step))

        def flush(self):
            events.append(("flush", None))

    class Session(FakeSession):
        def report(self, metrics, checkpoint_path=None):
            events.append(("checkpoint" if checkpoint_path else "report", metrics["epoch"]))
            super().report(metrics, checkpoint_path)

    cfg = TrainConfig(recipe="scratch", model=MODEL, epochs=4, lr=1e-2, batch_size=8, seed=11)
    trainer = Trainer(LoopConfig(train=cfg, checkpoint_every=2), Session(str(tmp_path), distributed=True), data, CPU,
                      Logger())
    trainer.run()
    resumable = [epoch for kind, epoch in events if kind == "checkpoint"]
    assert resumable[:2] == [2, 4]
    for epoch in resumable:
        at = events.index(("checkpoint", epoch))
        assert events[at - 2:at] == [("log", epoch), ("flush", None)], events


def test_release_without_a_ddp_wrapper_skips_the_full_collection(data, tmp_path, monkeypatch):
    collections = []
    trainer = _trainer(FakeSession(str(tmp_path)), data)
    assert trainer.net is trainer.model  # one process: no wrapper
    monkeypatch.setattr(loop_module.gc, "collect", lambda *args: collections.append(args) or 0)
    trainer.release()
    assert collections == [] and trainer.net is trainer.model


def test_the_worker_entry_point_releases_even_when_the_run_fails(monkeypatch, data, tmp_path):
    released = []

    class Failing:
        def run(self):
            raise RuntimeError("boom")

        def release(self):
            released.append(True)

    seen = []
    monkeypatch.setattr(Trainer, "set_up", classmethod(lambda cls, config: seen.append(config) or Failing()))
    config = LoopConfig(train=TrainConfig(model=MODEL), threads=1)
    with pytest.raises(RuntimeError, match="boom"):
        loop_module.train_loop_per_worker(config.to_dict())
    assert released == [True] and seen == [config]


def test_every_report_carries_the_compute_so_far_and_the_final_one_the_totals(data, tmp_path):
    session = FakeSession(str(tmp_path), distributed=False)
    final = _trainer(session, data, epochs=2).run()
    epochs = [m for m, _ in session.reports[:-1]]
    assert [m["steps"] for m in epochs] == [4, 8]  # 32 rows in batches of 8
    assert [m["validations"] for m in epochs] == [1, 2] and all(m["epochs"] == 2 for m in epochs)
    assert 0 < epochs[0]["train_seconds"] < epochs[1]["train_seconds"] == final["train_seconds"]
    assert "best_test_rel_l2" not in epochs[0]  # only on request (it costs a test pass per improvement)
    assert (final["steps"], final["epochs_run"], final["stopped_early"]) == (8, 2, False)


def test_test_on_improvement_reports_the_test_error_of_the_best_weights_so_far(data, tmp_path):
    session = FakeSession(str(tmp_path), distributed=False)
    cfg = TrainConfig(model=MODEL, epochs=3, lr=1e-2, batch_size=8, seed=11)
    trainer = Trainer(LoopConfig(train=cfg, test_on_improvement=True), session, data, CPU)
    final = trainer.run()
    last = session.reports[-2][0]
    assert last["best_epoch"] == final["best_epoch"]
    assert last["best_test_rel_l2"] == pytest.approx(final["test_rel_l2"])


def test_a_listener_sees_every_local_mode_report_and_none_after_it_leaves(monkeypatch):
    from sciml.training import session as session_module

    class Utils:
        def report(self, metrics, checkpoint=None):
            pass

    seen = []
    session = TrainSession.__new__(TrainSession)
    session._utils, session.distributed = Utils(), False
    with session_module.forwarding_reports(seen.append):
        session.report({"epoch": 1})
        session.distributed = True  # DDP: Ray Train's callbacks carry reports, not the listener
        session.report({"epoch": 2})
    session.distributed = False
    session.report({"epoch": 3})
    assert seen == [{"epoch": 1}]


def _spread_fields(count, seed, n=8):
    """Targets whose size spans 10x across examples, as |u| does in SYS-2."""
    fields = _fields(count, seed, n)
    scale = torch.logspace(0, 1, count)[torch.randperm(count, generator=torch.Generator().manual_seed(seed))]
    return FieldSet(fields.index, fields.source * scale[:, None, None], fields.coeffs,
                    fields.solution * scale[:, None, None])


def test_the_relative_loss_fits_small_examples_that_mse_neglects(tmp_path):
    """On targets of very different sizes, the relative loss lowers the mean relative error more than MSE."""
    data = LoopData(val=_spread_fields(16, 1), test=_spread_fields(16, 2), train=_spread_fields(32, 3))
    errors = {}
    for loss in ("mse", "rel_l2"):
        session = FakeSession(str(tmp_path / loss))
        trainer = _trainer(session, data, epochs=12, loss=loss)
        final = trainer.run()
        errors[loss] = final["test_rel_l2"]
        with session.checkpoints[-1].as_directory() as kept:
            assert torch.load(os.path.join(kept, MODEL_FILE), weights_only=True)["meta"]["loss"] == loss
    assert errors["rel_l2"] < errors["mse"]
