"""Tune state files survive a kill during Tune's background copy."""

import json

import pytest

from sciml.sweeps.tune_state import keep_complete_copies, repair

cloudpickle = pytest.importorskip("ray.cloudpickle")

STATE = {"trial_data": [["{}", "{}"]], "runner_data": {}}


def _write_state(folder, session="2026-01-01_00-00-00"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"experiment_state-{session}.json").write_text(json.dumps(STATE))
    (folder / f"basic-variant-state-{session}.json").write_bytes(cloudpickle.dumps({"iterators": [1, 2]}))


def test_complete_copies_are_taken_only_from_readable_files(tmp_path):
    staging, storage = tmp_path / "staging", tmp_path / "storage"
    _write_state(staging)
    storage.mkdir()
    assert keep_complete_copies(str(staging), str(storage)) == 2
    copy = storage / "experiment_state-2026-01-01_00-00-00.json.complete"
    assert json.loads(copy.read_text()) == STATE
    (staging / "experiment_state-2026-01-01_00-00-00.json").write_text('{"trial_data": [')
    assert keep_complete_copies(str(staging), str(storage)) == 1
    assert json.loads(copy.read_text()) == STATE  # the last complete copy is kept
    assert not list(storage.glob("*.tmp"))


def test_repair_restores_truncated_state_from_its_complete_copy(tmp_path):
    staging, storage = tmp_path / "staging", tmp_path / "storage"
    _write_state(staging)
    _write_state(storage)
    keep_complete_copies(str(staging), str(storage))
    assert repair(str(storage)) == []  # readable files are left alone
    state = storage / "experiment_state-2026-01-01_00-00-00.json"
    searcher = storage / "basic-variant-state-2026-01-01_00-00-00.json"
    state.write_bytes(b"")
    searcher.write_bytes(searcher.read_bytes()[:5])
    actions = repair(str(storage))
    assert len(actions) == 2 and all("restored from its last complete copy" in a for a in actions)
    assert json.loads(state.read_text()) == STATE
    assert cloudpickle.loads(searcher.read_bytes()) == {"iterators": [1, 2]}
    searcher.unlink()  # a kill before the first copy finished
    assert repair(str(storage)) == ["basic-variant-state-2026-01-01_00-00-00.json: unreadable or missing, "
                                    "restored from its last complete copy"]
    assert searcher.exists()


def test_repair_moves_a_broken_file_without_copy_aside(tmp_path):
    storage = tmp_path / "storage"
    _write_state(storage, session="2026-01-01_00-00-00")
    _write_state(storage, session="2026-02-01_00-00-00")
    newest = storage / "experiment_state-2026-02-01_00-00-00.json"
    newest.write_text('{"trial')
    assert repair(str(storage)) == ["experiment_state-2026-02-01_00-00-00.json: unreadable and no complete copy, "
                                    "moved aside to experiment_state-2026-02-01_00-00-00.json.broken"]
    # Tune now restores the older session's state, which is intact.
    assert sorted(p.name for p in storage.glob("experiment_state-*.json")) == [
        "experiment_state-2026-01-01_00-00-00.json"]
    assert repair(str(tmp_path / "absent")) == []


def test_a_completed_or_stopped_trial_forces_the_next_state_save():
    import inspect
    from types import SimpleNamespace

    from ray.tune.execution.experiment_state import _ExperimentCheckpointManager

    from sciml.sweeps.tune_state import fifo_saving_on_completion, save_state_after_step

    # The flag exists where Ray 2.60 keeps it (a moved flag must fail here, not silently).
    assert "_should_force_sync_up" in inspect.getsource(_ExperimentCheckpointManager.__init__)
    controller = SimpleNamespace(_checkpoint_manager=SimpleNamespace(_should_force_sync_up=False))
    fifo_saving_on_completion().on_trial_complete(controller, None, {})
    assert controller._checkpoint_manager._should_force_sync_up is True
    with pytest.raises(RuntimeError, match="_should_force_sync_up"):
        save_state_after_step(SimpleNamespace())


def test_halving_forces_a_state_save_when_it_stops_a_trial():
    from types import SimpleNamespace

    from ray.tune.schedulers import TrialScheduler

    from sciml.sweeps.search import cell_asha

    class Trial:
        def __init__(self, trial_id):
            self.trial_id = trial_id
            self.config = {"trial": {"recipe": "scratch", "n_train": 8, "seed": 0}}

    controller = SimpleNamespace(_checkpoint_manager=SimpleNamespace(_should_force_sync_up=False))
    scheduler = cell_asha(epochs=30, grace_period=2, reduction_factor=3.0, demote=True)
    first, second = Trial("a"), Trial("b")
    for trial in (first, second):
        scheduler.on_trial_add(controller, trial)
    assert scheduler.on_trial_result(controller, first, {"validations": 2, "val_rel_l2": 0.2}) == "CONTINUE"
    assert controller._checkpoint_manager._should_force_sync_up is False  # a plain result waits for the period
    assert scheduler.on_trial_result(controller, second, {"validations": 2, "val_rel_l2": 0.4}) == \
        TrialScheduler.STOP
    assert controller._checkpoint_manager._should_force_sync_up is True
