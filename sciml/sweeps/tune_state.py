"""Keep a Tune experiment restorable after a hard kill.

Tune writes its experiment state into a driver staging folder and copies it into the
storage folder in the background. A SIGKILL during that copy leaves a truncated file in
storage, and `Tuner.restore` then fails on it at every later attempt. After each save, a
callback keeps a complete copy of every state file next to it (`<file>.complete`,
written under a temporary name and renamed), and `repair` puts those copies back before
a restore. Object stores write whole objects, so only local storage needs this.
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Callable

from sciml.core.files import copy_file

COMPLETE_SUFFIX = ".complete"


def _json(data: bytes) -> object:
    return json.loads(data)


def _pickle(data: bytes) -> object:
    import ray.cloudpickle as cloudpickle

    return cloudpickle.loads(data)


# The files `Tuner.restore` reads, and how each is decoded (the searcher's is a pickle).
STATE_FILES: dict[str, Callable[[bytes], object]] = {
    "experiment_state-*.json": _json,
    "basic-variant-state-*.json": _pickle,
}


def _complete(path: str, decode: Callable[[bytes], object]) -> bool:
    try:
        with open(path, "rb") as handle:
            data = handle.read()
        decode(data)
    except Exception:  # truncated or empty: any decoding error means unusable
        return False
    return True


def keep_complete_copies(staging_dir: str, experiment_dir: str) -> int:
    """Copy each complete state file of `staging_dir` to `<experiment_dir>/<name>.complete`."""
    copied = 0
    for pattern, decode in STATE_FILES.items():
        for source in glob.glob(os.path.join(staging_dir, pattern)):
            if _complete(source, decode):
                copy_file(source, os.path.join(experiment_dir, os.path.basename(source) + COMPLETE_SUFFIX))
                copied += 1
    return copied


def repair(experiment_dir: str) -> list[str]:
    """Replace unreadable state files by their complete copies; return what was done.

    A broken file without a complete copy is renamed to `<file>.broken`, so that Tune
    falls back to an older session's state or, with none left, starts afresh.
    """
    actions = []
    for pattern, decode in STATE_FILES.items():
        names = {os.path.basename(p) for p in glob.glob(os.path.join(experiment_dir, pattern))}
        names |= {os.path.basename(p)[:-len(COMPLETE_SUFFIX)]
                  for p in glob.glob(os.path.join(experiment_dir, pattern + COMPLETE_SUFFIX))}
        for name in sorted(names):
            path = os.path.join(experiment_dir, name)
            if os.path.exists(path) and _complete(path, decode):
                continue
            backup = path + COMPLETE_SUFFIX
            if os.path.exists(backup) and _complete(backup, decode):
                copy_file(backup, path)
                actions.append(f"{name}: unreadable or missing, restored from its last complete copy")
            elif os.path.exists(path):
                os.replace(path, path + ".broken")
                actions.append(f"{name}: unreadable and no complete copy, moved aside to {name}.broken")
    return actions


def state_backup_callback():
    """A Tune callback that keeps the complete copies `repair` restores from."""
    from ray import tune

    class CompleteStateCopies(tune.Callback):
        def __init__(self):
            self._dirs: tuple[str, str] | None = None

        def on_trial_start(self, iteration, trials, trial, **info):  # no state worth keeping before one starts
            storage = trial.storage
            if storage.storage_filesystem.type_name == "local":
                self._dirs = (storage.experiment_driver_staging_path, storage.experiment_fs_path)

        def get_state(self):
            # Tune asks callbacks for their state right after it has written the
            # experiment and searcher state to the staging folder, before copying them
            # to storage: the moment a complete copy is sure to exist. Copies are checked
            # before they are kept, so a different order would only make them older.
            if self._dirs and os.path.isdir(self._dirs[1]):
                keep_complete_copies(*self._dirs)
            return None  # nothing of our own to save

        def __getstate__(self):
            # The paths belong to one Ray session; a restored run learns them anew.
            return {"_dirs": None}

    return CompleteStateCopies()


# Between trial completions Tune saves its experiment state at most this often. Saving at
# every result (period 0) cost a per-epoch-reporting sweep (ASHA, halving) most of its wall
# time: each save writes and copies the state of every trial (issue 10, docs/results.md).
STATE_SAVE_PERIOD_S = "30"


def save_state_after_step(tune_controller) -> None:
    """Make Tune save (and sync) its experiment state at the end of this controller step.

    Called when a trial completes or a scheduler stops it: the save then records the trial
    as finished, so a resumed sweep never redoes it, while other results wait for the period.
    Ray 2.60 has no public switch for this; the flag is the one Tune sets itself after trial
    checkpoints (`_ExperimentCheckpointManager._should_force_sync_up`).
    """
    # Schedulers get the controller behind a wrapper that warns on private attributes.
    tune_controller = getattr(tune_controller, "_tune_controller", tune_controller)
    manager = getattr(tune_controller, "_checkpoint_manager", None)
    if manager is None or not hasattr(manager, "_should_force_sync_up"):
        raise RuntimeError("ray.tune moved TuneController._checkpoint_manager._should_force_sync_up "
                           "(used with Ray 2.60, pinned in pyproject): update save_state_after_step")
    manager._should_force_sync_up = True


def fifo_saving_on_completion():
    """Tune's FIFO scheduler, saving the experiment state right after each trial completes."""
    from ray.tune.schedulers import FIFOScheduler

    class FIFOSavingOnCompletion(FIFOScheduler):
        def on_trial_complete(self, tune_controller, trial, result):
            save_state_after_step(tune_controller)

    return FIFOSavingOnCompletion()
