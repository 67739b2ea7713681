"""The one training loop every recipe uses; runs inside Ray Train (any worker count).

MSE loss, Adam, cosine decay to zero per optimizer step, per-epoch validation (mean
relative L2), best-by-validation weights (the starting weights count as epoch 0), and
the test error of the best weights at the end. With DDP workers a checkpoint every
`checkpoint_every` validations holds everything needed to resume with the same epoch total.
"""

from __future__ import annotations

import copy
import math
import os
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sciml.data.fields import FieldSet
from sciml.data.manifest import normalization
from sciml.training.checkpoint import MODEL_FILE, STATE_FILE, atomic_torch_save, load_model, model_payload
from sciml.training.config import TrainConfig
from sciml.training.metrics import relative_l2
from sciml.training.session import TrainSession

_LOAD_BATCH = 2048


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


def _fresh_model(cfg: TrainConfig, train: FieldSet, session: TrainSession):
    """Random init from the seed; normalization statistics of the whole training set."""
    torch.manual_seed(cfg.seed)
    model = cfg.model.build()
    parts = session.all_gather(train.example_statistics())
    stats = normalization(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    model.set_normalization(stats["f_ref"], stats["c_ref"])
    return model


def _cosine(total_steps: int):
    return lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / max(total_steps, 1)))


def train_loop_per_worker(config: dict[str, Any]) -> dict[str, Any]:
    cfg = TrainConfig.from_dict(config["train"])
    if config.get("threads"):
        torch.set_num_threads(int(config["threads"]))
    session = TrainSession(config.get("local_checkpoint_dir"))
    device = session.device(bool(config.get("use_gpu")))
    logger = None
    if session.is_chief and config.get("tracking"):
        from sciml.tracking import RunLogger

        logger = RunLogger(**config["tracking"])

    val = _to_device(load_fields(session.dataset_shard("val")), device)
    test = _to_device(load_fields(session.dataset_shard("test")), device)
    train = _to_device(load_fields(session.dataset_shard("train")), device) if cfg.trains else None

    if cfg.fresh_model:
        model = _fresh_model(cfg, train, session)
        init_meta: dict[str, Any] = {}
    else:
        model, payload = load_model(cfg.init_checkpoint)
        init_meta = payload.get("meta", {})
    model.to(device)
    net = model
    if session.world_size > 1 and torch.distributed.is_initialized():
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)

    per_worker_batch = max(1, cfg.batch_size // session.world_size)
    steps_per_epoch = math.ceil(len(train) / per_worker_batch) if train is not None else 0
    epochs = max(cfg.epochs, math.ceil(cfg.min_steps / steps_per_epoch)) if cfg.trains else 0
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _cosine(epochs * steps_per_epoch))

    start_epoch, history = 0, []
    best = {"epoch": 0, "val_rel_l2": math.inf, "state": None}

    def training_state(epoch: int) -> dict[str, Any]:
        return {"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "best": best, "history": history}

    checkpoint = session.latest_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as path:
            state = torch.load(os.path.join(path, STATE_FILE), map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, history, best = state["epoch"], list(state["history"]), dict(state["best"])
        if logger:
            logger.log_metrics({"resumed_from_epoch": start_epoch}, step=start_epoch)
    else:
        val_error = evaluate(net, val, session, cfg, device)
        best = {"epoch": 0, "val_rel_l2": val_error, "state": copy.deepcopy(model.state_dict())}
        history.append({"epoch": 0, "val_rel_l2": val_error})
        if logger:
            logger.log_metrics({"val_rel_l2": val_error}, step=0)

    progress = None
    if session.is_chief and config.get("progress") and epochs > start_epoch:
        from tqdm import tqdm

        progress = tqdm(total=epochs, initial=start_epoch, desc=f"{cfg.recipe} epochs", unit="epoch")
    # When min_steps stretches a small set into many one-step epochs, validate (and
    # report) once per group of epochs so that a run still validates about cfg.epochs times.
    eval_every = max(1, epochs // cfg.epochs) if cfg.trains else 1
    # Local mode cannot resume (no worker to restart), so it only keeps the final model.
    checkpoint_every = int(config.get("checkpoint_every", 1)) if session.distributed else None
    loss_sum, rows_seen, evaluations = 0.0, 0.0, 0
    for epoch in range(start_epoch + 1, epochs + 1):
        net.train()
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(
            _mix_seed(cfg.seed, epoch, session.world_rank))).to(train.index.device)
        for start in range(0, len(train), per_worker_batch):
            batch = order[start:start + per_worker_batch]
            with _autocast(cfg, device):
                prediction = net(train.inputs(batch))
            loss = F.mse_loss(prediction.float(), train.targets(batch))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            loss_sum += float(loss.detach()) * len(batch)
        rows_seen += len(train)
        if epoch % eval_every and epoch != epochs:
            continue
        loss_total, rows = session.all_reduce_sum([loss_sum, rows_seen], device)
        train_loss, loss_sum, rows_seen = loss_total / rows, 0.0, 0.0
        val_error = evaluate(net, val, session, cfg, device)
        if val_error < best["val_rel_l2"]:
            best = {"epoch": epoch, "val_rel_l2": val_error, "state": copy.deepcopy(model.state_dict())}
        record = {"epoch": epoch, "train_loss": train_loss, "val_rel_l2": val_error,
                  "best_val_rel_l2": best["val_rel_l2"], "lr": scheduler.get_last_lr()[0]}
        history.append(record)
        evaluations += 1
        save = checkpoint_every is not None and (evaluations % checkpoint_every == 0 or epoch == epochs)
        _report(session, record, epoch, save=save, state=lambda: training_state(epoch))
        if logger:
            logger.log_metrics({"train_loss": train_loss, "val_rel_l2": val_error}, step=epoch)
        if progress:
            progress.update(epoch - progress.n)
            progress.set_postfix(train_loss=f"{train_loss:.3g}", val=f"{val_error:.3g}")
    if progress:
        progress.close()

    model.load_state_dict(best["state"])
    test_error = evaluate(net, test, session, cfg, device)
    final = {"epoch": epochs, "epochs": epochs, "best_epoch": best["epoch"], "val_rel_l2": best["val_rel_l2"],
             "test_rel_l2": test_error, "n_train": len(train) * session.world_size if train is not None else 0,
             "done": True}
    meta = {"recipe": cfg.recipe, "seed": cfg.seed, "lr": cfg.lr, "epochs": epochs,
            "best_epoch": best["epoch"], "val_rel_l2": best["val_rel_l2"], "test_rel_l2": test_error,
            "datasets": config.get("datasets", {}), "pretrained_from": init_meta.get("datasets", {})}
    with session.checkpoint_dir(epochs + 1) as path:
        if session.is_chief:
            os.makedirs(path, exist_ok=True)
            atomic_torch_save(model_payload(model, best["state"], meta), os.path.join(path, MODEL_FILE))
            if checkpoint_every is not None:
                # A worker restarted after this report resumes at the end: straight to the test.
                atomic_torch_save(training_state(epochs), os.path.join(path, STATE_FILE))
        session.report(final, path if session.is_chief else None)
    if logger:
        logger.log_metrics({"test_rel_l2": test_error, "best_epoch": best["epoch"]}, step=epochs)
    return final


def _report(session: TrainSession, metrics: dict, epoch: int, save: bool, state) -> None:
    if not save:
        session.report(metrics)
        return
    with session.checkpoint_dir(epoch) as path:
        if session.is_chief:
            os.makedirs(path, exist_ok=True)
            atomic_torch_save(state(), os.path.join(path, STATE_FILE))
        session.report(metrics, path if session.is_chief else None)
