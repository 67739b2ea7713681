"""The training loop's view of Ray Train: rank, data shards, checkpoints, reports.

Ray Train's public `ray.train.report/get_checkpoint/get_context` refuse to run inside a
Ray Tune trial process (Ray 2.60: DeprecationWarning "deprecated when running in a
function passed to Ray Tune"), which is exactly where Train's local mode (num_workers=0)
runs the loop when a sweep launches it. The function utilities behind them work in both
modes, so the loop talks to those, through this one adapter. They are private Ray API:
pyproject pins the Ray range they were tested with, and tests/training/test_session.py
fails naming the symbol when a Ray upgrade moves it.

Local mode keeps every report to itself (Ray 2.60's LocalTrainFnUtils only stores the
last one), so a caller that wants the per-epoch reports (a Tune trial: ASHA needs them)
installs a listener with `forwarding_reports`; with DDP workers Ray Train's own callbacks
(TuneReportCallback) carry them and no listener is called.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch
import torch.distributed as dist

_listeners: list[Callable[[dict[str, Any]], None]] = []

PRIVATE_TRAIN_FN_UTILS = "ray.train.v2._internal.execution.train_fn_utils.get_train_fn_utils"


def train_fn_utils():
    """Ray Train's per-worker function utilities (private API; see the module docstring)."""
    try:
        from ray.train.v2._internal.execution.train_fn_utils import get_train_fn_utils
    except ImportError as err:
        import ray

        raise ImportError(f"{PRIVATE_TRAIN_FN_UTILS} is not in ray {ray.__version__}; sciml.training.session "
                          "was written against ray 2.60 (the range pinned in pyproject.toml)") from err
    return get_train_fn_utils()


@contextmanager
def forwarding_reports(listener: Callable[[dict[str, Any]], None]) -> Iterator[None]:
    """Call `listener(metrics)` for every report a local-mode loop in this process makes."""
    _listeners.append(listener)
    try:
        yield
    finally:
        _listeners.remove(listener)


class TrainSession:
    def __init__(self, local_checkpoint_dir: str | None = None):
        self._utils = train_fn_utils()
        context = self._utils.get_context()
        self.world_rank = context.get_world_rank()
        self.world_size = context.get_world_size()
        self.local_rank = context.get_local_rank()
        self.distributed = self._utils.is_distributed()
        # Local mode does not copy reported checkpoints anywhere; they must outlive the loop.
        self._local_checkpoint_dir = local_checkpoint_dir

    @property
    def is_chief(self) -> bool:
        return self.world_rank == 0

    def device(self, use_gpu: bool) -> torch.device:
        if not (use_gpu and torch.cuda.is_available()):
            return torch.device("cpu")
        if self.distributed:
            from ray.train.torch import get_device

            return get_device()
        return torch.device("cuda", 0)

    def dataset_shard(self, name: str):
        import ray.train

        return ray.train.get_dataset_shard(name)

    def latest_checkpoint(self):
        return self._utils.get_checkpoint()

    @contextmanager
    def checkpoint_dir(self, epoch: int) -> Iterator[str]:
        """A directory to fill with a checkpoint, valid until the next report returns."""
        if self.distributed or self._local_checkpoint_dir is None:
            path = tempfile.mkdtemp(prefix=f"ckpt-{epoch:05d}-")
            try:
                yield path
            finally:
                shutil.rmtree(path, ignore_errors=True)
        else:
            os.makedirs(self._local_checkpoint_dir, exist_ok=True)
            path = os.path.join(self._local_checkpoint_dir, f"checkpoint_{epoch:05d}")
            shutil.rmtree(path, ignore_errors=True)
            yield path
            for old in os.listdir(self._local_checkpoint_dir):
                if old != os.path.basename(path):
                    shutil.rmtree(os.path.join(self._local_checkpoint_dir, old), ignore_errors=True)

    def report(self, metrics: dict[str, Any], checkpoint_path: str | None = None) -> None:
        from ray.train import Checkpoint

        checkpoint = Checkpoint.from_directory(checkpoint_path) if checkpoint_path else None
        self._utils.report(metrics, checkpoint=checkpoint)
        if not self.distributed:
            for listener in list(_listeners):
                listener(dict(metrics))

    # Collectives: no-ops with one process.
    def all_reduce_sum(self, values: list[float], device: torch.device) -> list[float]:
        if not self._collective():
            return values
        tensor = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor.tolist()

    def all_gather(self, obj: Any) -> list[Any]:
        if not self._collective():
            return [obj]
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, obj)
        return gathered

    def _collective(self) -> bool:
        return self.world_size > 1 and dist.is_available() and dist.is_initialized()
