"""The one training loop every recipe uses; runs inside Ray Train (any worker count).

MSE (SPEC 7) or per-example relative-L2 loss, Adam, cosine decay to zero per optimizer
step, per-epoch validation (mean relative L2), best-by-validation weights (the starting
weights count as epoch 0), and the test error of the best weights at the end. With DDP workers a checkpoint every
`checkpoint_every` validations holds everything needed to resume with the same epoch total.

A `Trainer` runs the named steps; each is the one place its kind of change goes:

    set_up              data, model, optimizer, schedule
    resume_or_baseline  restore a Ray Train checkpoint, or validate the starting weights as epoch 0
    train_one_epoch     one pass over this worker's shuffled rows (the training loss lives here)
    validate_and_report best-by-validation, history, report to Ray Train, MLflow, progress
    export              best weights, test error, model file, final report

`run` is `start`, `advance` (to the end) and `export`; a race of learning rates
(sciml/training/race.py) drives several Trainers through the same steps, `advance` to each
rung, and `conclude` (the test of the best weights, without the model file) for those it stops.

Every report carries the run's compute so far: optimizer steps and `train_seconds`, the
wall time inside `train_one_epoch` only (no validation, data loading or set-up), so that a
sweep can set it against the trial's whole wall time. A scheduler that stops a run early
(ASHA in a sweep) sees each validation report; with `test_on_improvement` those reports
also carry the test error of the best weights so far, so a stopped run still has an
honest test number for the weights it would have exported.
"""

from __future__ import annotations

import copy
import gc
import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
import torch

from sciml.data.fields import FieldSet
from sciml.core.statistics import normalization
from sciml.training.checkpoint import MODEL_FILE, STATE_FILE, atomic_torch_save, load_model, model_payload
from sciml.training.config import LoopConfig, TrainConfig
from sciml.training.metrics import relative_l2, training_loss
from sciml.training.session import TrainSession

_LOAD_BATCH = 2048
# Per-validation metrics reach MLflow in batches at most this often (and at the end of the run):
# live enough for the UI, one store round trip per few seconds instead of one per validation.
METRICS_FLUSH_SECONDS = 5.0


def _mix_seed(*parts: int) -> int:
    """A 63-bit seed from several integers (epoch shuffles differ per epoch and rank)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, dtype=np.uint32).view(np.uint64)[0]
               & np.uint64(2**63 - 1))


def load_fields(shard) -> FieldSet:
    """Pull a Ray Data shard (Dataset or DataIterator) into memory once, sorted by index."""
    return FieldSet.from_batches(shard.iter_batches(batch_size=_LOAD_BATCH, batch_format="numpy"))


def _to_device(fields: FieldSet, device: torch.device) -> FieldSet:
    if device.type == "cpu":
        return fields
    return FieldSet(fields.index.to(device), fields.source.to(device), fields.coeffs.to(device),
                    fields.solution.to(device))


def _autocast(cfg: TrainConfig, device: torch.device):
    if cfg.precision == "bf16" and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


@torch.no_grad()
def evaluate(model, fields: FieldSet, session: TrainSession, cfg: TrainConfig, device) -> float:
    """Mean relative L2 over all rows; each rank takes rows rank::world_size."""
    model.eval()
    rows = torch.arange(session.world_rank, len(fields), session.world_size)
    total, count = 0.0, 0
    for start in range(0, len(rows), cfg.eval_batch_size):
        batch = rows[start:start + cfg.eval_batch_size].to(fields.index.device)
        with _autocast(cfg, device):
            prediction = model(fields.inputs(batch))
        total += float(relative_l2(prediction.float(), fields.targets(batch)).sum())
        count += len(batch)
    total, count = session.all_reduce_sum([total, float(count)], device)
    return total / max(count, 1.0)


def _cosine(total_steps: int):
    return lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / max(total_steps, 1)))


@dataclass(frozen=True)
class LoopData:
    """This worker's examples, in memory on the training device."""

    val: FieldSet
    test: FieldSet
    train: FieldSet | None  # None when the recipe only evaluates

    @classmethod
    def load(cls, session: TrainSession, cfg: TrainConfig, device: torch.device) -> "LoopData":
        return cls(val=_to_device(load_fields(session.dataset_shard("val")), device),
                   test=_to_device(load_fields(session.dataset_shard("test")), device),
                   train=_to_device(load_fields(session.dataset_shard("train")), device) if cfg.trains else None)


@dataclass(frozen=True)
class EpochSchedule:
    """How many epochs a run trains, in batches of what size, and after which epochs it validates."""

    epochs: int
    batch_size: int  # rows per optimizer step on one worker
    steps_per_epoch: int
    eval_every: int

    @classmethod
    def plan(cls, cfg: TrainConfig, rows: int, world_size: int) -> "EpochSchedule":
        """`rows`: this worker's training rows. DDP splits the global batch over the workers."""
        batch_size = max(1, cfg.batch_size // world_size)
        if not cfg.trains:
            return cls(epochs=0, batch_size=batch_size, steps_per_epoch=0, eval_every=1)
        steps_per_epoch = math.ceil(rows / batch_size)
        # Small downstream sets get too few optimizer steps per epoch: stretch to min_steps.
        epochs = max(cfg.epochs, math.ceil(cfg.min_steps / steps_per_epoch))
        # When min_steps stretches a small set into many one-step epochs, validate (and
        # report) once per group of epochs so that a run still validates about cfg.epochs times.
        return cls(epochs=epochs, batch_size=batch_size, steps_per_epoch=steps_per_epoch,
                   eval_every=max(1, epochs // cfg.epochs))

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    def validates(self, epoch: int) -> bool:
        return epoch % self.eval_every == 0 or epoch == self.epochs

    @property
    def validations(self) -> int:
        """How many times a whole run validates (the starting weights not counted)."""
        return self.epochs // self.eval_every + (self.epochs % self.eval_every > 0)

    def epochs_at(self, validations: int) -> int:
        """The epoch of the run's `validations`-th validation (where a race can stop it)."""
        return min(validations * self.eval_every, self.epochs)


@dataclass
class BestWeights:
    """Best-by-validation selection; the starting weights are epoch 0."""

    epoch: int
    val_rel_l2: float
    state: dict[str, torch.Tensor]

    @classmethod
    def start(cls, val_rel_l2: float, model: torch.nn.Module) -> "BestWeights":
        return cls(0, val_rel_l2, copy.deepcopy(model.state_dict()))

    def consider(self, epoch: int, val_rel_l2: float, model: torch.nn.Module) -> bool:
        """Keep the model's weights if strictly better (a tie keeps the earlier epoch)."""
        if not val_rel_l2 < self.val_rel_l2:
            return False
        self.epoch, self.val_rel_l2, self.state = epoch, val_rel_l2, copy.deepcopy(model.state_dict())
        return True

    def to_state(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "val_rel_l2": self.val_rel_l2, "state": self.state}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> "BestWeights":
        return cls(state["epoch"], state["val_rel_l2"], state["state"])


class WeightAverage:
    """A running average of a model's weights over its optimizer steps, weighting step t by t
    (polynomial-decay averaging with eta = 1, Shamir & Zhang 2013): recent steps count most.

    Why: with a cosine schedule a high learning rate's iterates are noisy until the schedule
    decays, so their validation error hides how good the run is; the average damps that noise
    the way the decay will (a race ranks by it, sciml/training/race.py). It costs no optimizer
    steps and never changes the run's own weights.
    """

    def __init__(self, model: torch.nn.Module):
        self.model = copy.deepcopy(model)
        self.steps = 0

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.steps += 1
        weight = 2.0 / (self.steps + 1)  # average_t = (1 - w) average_{t-1} + w theta_t: weights proportional to t
        for averaged, current in zip(self.model.parameters(), model.parameters()):
            averaged.lerp_(current, weight)


def train_loop_per_worker(config: dict[str, Any]) -> dict[str, Any]:
    """Ray Train's entry point on every worker: `config` is a `LoopConfig.to_dict()`."""
    loop = LoopConfig.from_dict(config)
    if loop.race is not None:
        from sciml.training.race import race_loop

        return race_loop(loop)
    trainer = Trainer.set_up(loop)
    try:
        return trainer.run()
    finally:
        trainer.release()


def worker_environment(config: LoopConfig, session: TrainSession | None = None) -> tuple[TrainSession, torch.device]:
    """This worker's intra-op threads, Ray Train session and device."""
    if config.threads:
        torch.set_num_threads(config.threads)
    session = session or TrainSession(config.local_checkpoint_dir)
    return session, session.device(config.use_gpu)


def run_logger(target, session: TrainSession):
    """The MLflow logger of one run (`target`: a TrackingTarget or None), on the chief worker only."""
    if not (session.is_chief and target is not None):
        return None
    from sciml.tracking import RunLogger

    return RunLogger(target.uri, target.run_id, flush_seconds=METRICS_FLUSH_SECONDS)


class Trainer:
    """One worker's training run: the state the steps share, and the steps."""

    def __init__(self, config: LoopConfig, session: TrainSession, data: LoopData, device: torch.device,
                 logger=None):
        self.config, self.cfg = config, config.train
        self.session, self.data, self.device, self.logger = session, data, device, logger
        self.model, self.init_meta = self._initial_model()
        self.model.to(device)
        self.net = self._parallel(self.model)
        rows = len(data.train) if data.train is not None else 0
        self.schedule = EpochSchedule.plan(self.cfg, rows, session.world_size)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.cfg.lr)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, _cosine(self.schedule.total_steps))
        # Local mode cannot resume (no worker to restart), so it only keeps the final model.
        self.checkpoint_every = config.checkpoint_every if session.distributed else None
        self.start_epoch, self.epoch, self.history, self.best = 0, 0, [], None
        self.progress = None
        self._loss_sum, self._rows_seen, self._evaluations = 0.0, 0.0, 0
        self.steps, self.train_seconds = 0, 0.0  # compute so far (restored on resume)
        self.best_test: float | None = None  # test error of the best weights (test_on_improvement)
        # A race's candidates also validate a running average of their weights (race.py).
        self.average: WeightAverage | None = None
        self.averaged_val: float = math.inf  # its validation error at the last validation

    # -- set-up ---------------------------------------------------------------------------

    @classmethod
    def set_up(cls, config: LoopConfig, session: TrainSession | None = None) -> "Trainer":
        """Threads, Ray Train session, device, MLflow logger (chief only) and data."""
        session, device = worker_environment(config, session)
        return cls(config, session, LoopData.load(session, config.train, device), device,
                   run_logger(config.tracking, session))

    def _initial_model(self) -> tuple[torch.nn.Module, dict[str, Any]]:
        """Random init from the seed with the whole training set's statistics, or a model file."""
        if not self.cfg.fresh_model:
            model, payload = load_model(self.cfg.init_checkpoint)
            return model, payload.get("meta", {})
        torch.manual_seed(self.cfg.seed)
        model = self.cfg.model.build()
        parts = self.session.all_gather(self.data.train.example_statistics())
        stats = normalization(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
        model.set_normalization(stats["f_ref"], stats["c_ref"])
        return model, {}

    def _parallel(self, model: torch.nn.Module) -> torch.nn.Module:
        if self.session.world_size > 1 and torch.distributed.is_initialized():
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            return torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
        return model

    # -- the run --------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        self.start()
        self.advance()
        return self.export()

    def start(self) -> None:
        self.resume_or_baseline()
        self.epoch = self.start_epoch
        self._open_progress()

    def advance(self, validations: float = math.inf) -> None:
        """Train until this run has validated `validations` times (a race's rung), or to its end."""
        while self.epoch < self.schedule.epochs and self._evaluations < validations:
            self.epoch += 1
            self.train_one_epoch(self.epoch)
            if self.schedule.validates(self.epoch):
                self.validate_and_report(self.epoch)
        if self.progress and self.epoch == self.schedule.epochs:
            self.progress.close()

    def release(self) -> None:
        """Free the DDP wrapper now: Ray Train destroys the process group after the loop returns,
        and a DDP module freed after that can hang (its gloo thread waits for the GIL)."""
        if self.logger:
            self.logger.flush()
        if self.net is not self.model:
            self.net = self.model
            # DDP sits in a reference cycle: dropping the last reference alone does not free it. Only
            # then: a full collection of a trial process's heap costs about a second.
            gc.collect()

    # -- resume-or-baseline ---------------------------------------------------------------

    def resume_or_baseline(self) -> None:
        checkpoint = self.session.latest_checkpoint()
        if checkpoint is None:
            self._validate_start()
            return
        with checkpoint.as_directory() as path:
            state = torch.load(os.path.join(path, STATE_FILE), map_location="cpu", weights_only=True)
        self.restore(state)
        if self.logger:
            self.logger.log_metrics({"resumed_from_epoch": self.start_epoch}, step=self.start_epoch)

    def _validate_start(self) -> None:
        val_error = evaluate(self.net, self.data.val, self.session, self.cfg, self.device)
        self.best = BestWeights.start(val_error, self.model)
        self._test_best()
        self.history.append({"epoch": 0, "val_rel_l2": val_error})
        if self.logger:
            self.logger.log_metrics({"val_rel_l2": val_error}, step=0)

    def training_state(self, epoch: int) -> dict[str, Any]:
        """Everything a restarted worker needs to continue after `epoch` (the STATE_FILE)."""
        return {"epoch": epoch, "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "best": self.best.to_state(), "history": self.history,
                "train_seconds": self.train_seconds, "best_test": self.best_test}

    def restore(self, state: Mapping[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.start_epoch, self.history = state["epoch"], list(state["history"])
        self.best = BestWeights.from_state(state["best"])
        self.steps = self.start_epoch * self.schedule.steps_per_epoch
        self.train_seconds, self.best_test = state.get("train_seconds", 0.0), state.get("best_test")

    # -- train one epoch ------------------------------------------------------------------

    def train_one_epoch(self, epoch: int) -> None:
        """One pass over this worker's rows in an order fixed by (seed, epoch, rank)."""
        train = self.data.train
        started = time.perf_counter()
        self.net.train()
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(
            _mix_seed(self.cfg.seed, epoch, self.session.world_rank))).to(train.index.device)
        for start in range(0, len(train), self.schedule.batch_size):
            batch = order[start:start + self.schedule.batch_size]
            loss = self._optimizer_step(train, batch)
            self._loss_sum += float(loss.detach()) * len(batch)  # also waits for the device: honest seconds
            self.steps += 1
        self._rows_seen += len(train)
        self.train_seconds += time.perf_counter() - started

    def _optimizer_step(self, train: FieldSet, batch: torch.Tensor) -> torch.Tensor:
        with _autocast(self.cfg, self.device):
            prediction = self.net(train.inputs(batch))
        loss = training_loss(self.cfg.loss, prediction.float(), train.targets(batch))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        if self.average is not None:
            self.average.update(self.model)
        return loss

    # -- validate-and-report --------------------------------------------------------------

    def validate_and_report(self, epoch: int) -> None:
        loss_total, rows = self.session.all_reduce_sum([self._loss_sum, self._rows_seen], self.device)
        train_loss, self._loss_sum, self._rows_seen = loss_total / rows, 0.0, 0.0
        val_error = evaluate(self.net, self.data.val, self.session, self.cfg, self.device)
        if self.best.consider(epoch, val_error, self.model):
            self._test_best()
        record = {"epoch": epoch, "train_loss": train_loss, "val_rel_l2": val_error,
                  "best_val_rel_l2": self.best.val_rel_l2, "lr": self.scheduler.get_last_lr()[0]}
        logged = {"train_loss": train_loss, "val_rel_l2": val_error}
        if self.average is not None:
            self.averaged_val = evaluate(self.average.model, self.data.val, self.session, self.cfg, self.device)
            record["val_rel_l2_averaged"] = logged["val_rel_l2_averaged"] = self.averaged_val
        self.history.append(record)
        self._evaluations += 1
        last = epoch == self.schedule.epochs
        resumable = self.checkpoint_every is not None and (self._evaluations % self.checkpoint_every == 0 or last)
        if self.logger:
            self.logger.log_metrics(logged, step=epoch)
            if resumable:
                # A restarted worker resumes after this checkpoint and logs only later epochs:
                # the batched metrics up to it must be in the store before it exists.
                self.logger.flush()
        self._report({**record, **self._progress_metrics(epoch)}, epoch,
                     {STATE_FILE: lambda: self.training_state(epoch)} if resumable else {})
        if self.progress:
            self.progress.update(epoch - self.progress.n)
            self.progress.set_postfix(train_loss=f"{train_loss:.3g}", val=f"{val_error:.3g}")

    def _test_best(self) -> None:
        if self.config.test_on_improvement:
            self.best_test = evaluate(self.net, self.data.test, self.session, self.cfg, self.device)

    def _progress_metrics(self, epoch: int) -> dict[str, Any]:
        """What a scheduler (and a budget) needs from a validation report besides the errors."""
        metrics = {"epochs": self.schedule.epochs, "best_epoch": self.best.epoch, "validations": self._evaluations,
                   "steps": self.steps, "train_seconds": self.train_seconds}
        if self.best_test is not None:
            metrics["best_test_rel_l2"] = self.best_test
        if self.config.tracking is not None:
            metrics["mlflow_run_id"] = self.config.tracking.run_id
        return metrics

    def _open_progress(self) -> None:
        if self.session.is_chief and self.config.progress and self.schedule.epochs > self.start_epoch:
            from tqdm import tqdm

            self.progress = tqdm(total=self.schedule.epochs, initial=self.start_epoch,
                                 desc=f"{self.cfg.recipe} epochs", unit="epoch")

    def _report(self, metrics: dict[str, Any], checkpoint_id: int,
                files: Mapping[str, Callable[[], Any]]) -> None:
        """Report to Ray Train (every worker), with a checkpoint of `files` (written by the chief) if any."""
        if not files:
            self.session.report(metrics)
            return
        with self.session.checkpoint_dir(checkpoint_id) as path:
            if self.session.is_chief:
                os.makedirs(path, exist_ok=True)
                for name, payload in files.items():
                    atomic_torch_save(payload(), os.path.join(path, name))
            self.session.report(metrics, path if self.session.is_chief else None)

    # -- export ---------------------------------------------------------------------------

    def conclude(self) -> dict[str, Any]:
        """Test the best weights so far (loaded into the model) and log it: the run's final metrics,
        at its end or where a race stopped it (`stopped_early`, `epochs_run` < `epochs`)."""
        epochs, best = self.schedule.epochs, self.best
        self.model.load_state_dict(best.state)
        test_error = evaluate(self.net, self.data.test, self.session, self.cfg, self.device)
        n_train = len(self.data.train) * self.session.world_size if self.data.train is not None else 0
        ran = self.epoch if self.data.train is not None else epochs
        if self.logger:
            self.logger.log_metrics({"test_rel_l2": test_error, "best_epoch": best.epoch}, step=ran)
            self.logger.flush()
        return {"epoch": ran, "epochs": epochs, "best_epoch": best.epoch, "val_rel_l2": best.val_rel_l2,
                "test_rel_l2": test_error, "n_train": n_train, "done": True, "epochs_run": ran,
                "steps": self.steps, "train_seconds": self.train_seconds, "stopped_early": ran < epochs}

    def export(self) -> dict[str, Any]:
        """`conclude`, then report the best weights as the model file (the run's last report)."""
        return self.report_final(self.conclude())

    def report_final(self, final: dict[str, Any]) -> dict[str, Any]:
        """Report `final` (from `conclude`) with the best weights as the model file."""
        epochs, best = self.schedule.epochs, self.best
        test_error = final["test_rel_l2"]
        meta = {"recipe": self.cfg.recipe, "seed": self.cfg.seed, "lr": self.cfg.lr, "loss": self.cfg.loss,
                "epochs": epochs,
                "best_epoch": best.epoch, "val_rel_l2": best.val_rel_l2, "test_rel_l2": test_error,
                "datasets": dict(self.config.datasets), "pretrained_from": self.init_meta.get("datasets", {})}
        files = {MODEL_FILE: lambda: model_payload(self.model, best.state, meta)}
        if self.checkpoint_every is not None:
            # A worker restarted after this report resumes at the end: straight to the test.
            files[STATE_FILE] = lambda: self.training_state(epochs)
        self._report(final, epochs + 1, files)
        return final
