"""Command line for single training runs on Ray Train.

    python -m sciml.train pretrain --data data/sys1_1_5 --preset 64K --epochs 20 --out runs/pre
    python -m sciml.train finetune --data data/sys1_5_10 --checkpoint runs/pre/model.pt --n-train 64 --out runs/ft
    python -m sciml.train evaluate --data data/sys1_5_10 --checkpoint runs/pre/model.pt

The last line printed is `test_rel_l2=<value>`. Bad arguments exit with code 2 before
any work starts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING

from sciml.core.checks import PRECISIONS, check_modes_fit
from sciml.ray_env import settle_job_outputs
from sciml.training.config import RECIPES, ModelConfig, ResourceConfig, TrainConfig
from sciml.training.metrics import LOSSES

if TYPE_CHECKING:
    from sciml.training.runner import DataSelection

EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sciml.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("recipe", choices=RECIPES)
    parser.add_argument("--data", nargs="+", required=True, metavar="DIR",
                        help="dataset directories; several give a mixed training set (equal shares)")
    parser.add_argument("--shares", nargs="+", type=float, help="mixture shares, one per --data")
    parser.add_argument("--preset", help="model preset: 64K, 1M, 16M, 256M (default 64K)")
    parser.add_argument("--width", type=int, help="FNO width d (with --modes, instead of --preset)")
    parser.add_argument("--modes", type=int, help="Fourier modes m per dimension")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--min-steps", type=int, default=0, help="train at least this many optimizer steps")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--n-train", type=int, help="use the first N training examples (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint", help="pre-trained model file (or its directory) for finetune/evaluate, "
                                             "or a registered model: models:/NAME@ALIAS or models:/NAME/VERSION")
    parser.add_argument("--out", default="runs/train", help="directory for model.pt and metrics.json")
    parser.add_argument("--workers", type=int, default=0, help="Ray Train workers; 0 = local mode in this process")
    parser.add_argument("--cpus-per-worker", type=int, default=1)
    parser.add_argument("--gpus-per-worker", type=float, default=0.0)
    parser.add_argument("--max-failures", type=int, default=2, help="worker failures to recover from")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32")
    parser.add_argument("--loss", choices=LOSSES, default="mse",
                        help="training loss: mse (the paper's) or rel_l2 (per-example relative L2)")
    parser.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS or a local Ray)")
    parser.add_argument("--storage", help="Ray Train storage path (shared across nodes on a cluster)")
    parser.add_argument("--experiment", default="train", help="MLflow experiment name")
    parser.add_argument("--run-name", help="MLflow run name (default: recipe and preset)")
    parser.add_argument("--no-tracking", action="store_true", help="do not log to MLflow")
    return parser


def _resolve_checkpoint(path: str | None) -> str | None:
    if path and os.path.isdir(path):
        return os.path.join(path, "model.pt")
    return path


def _fetch_registered(args):
    """A `models:/...` checkpoint: download its model file under --out and train from that file.

    Returns the sciml.tracking.registry.FetchedModel (for the lineage tags), or None.
    """
    from sciml.tracking.registry import fetch_model, is_model_uri

    if not is_model_uri(args.checkpoint):
        return None
    fetched = fetch_model(args.checkpoint, os.path.join(args.out, "pretrained"))
    args.checkpoint = fetched.path
    return fetched


def _register(args, outcome) -> None:
    """Register a tracked pre-training in the MLflow Model Registry (one model per data and preset)."""
    from sciml.data.manifest import load_manifest
    from sciml.training.registration import register_pretrained

    label = "+".join(load_manifest(p)["name"] for p in args.data)
    try:
        registration = register_pretrained(outcome.model_path, label, args.data, outcome.metrics, outcome.run_id)
    except Exception as err:  # the model file and the run are kept; only the registry entry is missing
        print(f"warning: {outcome.model_path} not registered in the MLflow Model Registry: {err}", file=sys.stderr)
        return
    version = registration.version
    print(f"registered {version.uri}" + (" (alias best)" if registration.is_best else ""), file=sys.stderr)


def _checkpoint_model(checkpoint: str, asked: ModelConfig | None) -> ModelConfig:
    """The model a checkpoint holds, as a ModelConfig: the truth for every recipe starting from it.

    Only the file's header is read (the weights stay on disk); the run loads it once, later.
    A --preset/--width/--modes that describes another architecture is an error, not ignored.
    """
    from sciml.training.checkpoint import read_hparams

    hparams = read_hparams(checkpoint)
    try:
        if hparams.get("layers", 4) != 4:
            raise ValueError(f"{hparams.get('layers')} layers")
        found = ModelConfig(preset=hparams["preset"]) if hparams.get("preset") else \
            ModelConfig(preset=None, width=hparams["width"], modes=hparams["modes"])
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"checkpoint: {checkpoint} describes a model this command cannot build "
                         f"({error}; hparams {hparams})") from None
    if asked is not None and asked.width_and_modes != found.width_and_modes:
        width, modes = found.width_and_modes
        raise ValueError(f"preset: the checkpoint {checkpoint} holds model {found.label} "
                         f"(width {width}, modes {modes}),"
                         f" not {asked.label}; drop --preset/--width/--modes (the checkpoint decides the model)")
    return found


def _validate(args) -> tuple[TrainConfig, ResourceConfig, "DataSelection"]:
    from sciml.data.ray_datasets import DataSource, split_counts
    from sciml.data.verify import check_dataset
    from sciml.training.runner import DataSelection

    checkpoint = _resolve_checkpoint(args.checkpoint)
    asked = args.preset is not None or args.width is not None or args.modes is not None
    model = ModelConfig(preset=args.preset if asked else "64K", width=args.width, modes=args.modes)
    if checkpoint and args.recipe in ("finetune", "evaluate"):
        model = _checkpoint_model(checkpoint, model if asked else None)
    cfg = TrainConfig(recipe=args.recipe, model=model, epochs=0 if args.recipe == "evaluate" else args.epochs,
                      lr=args.lr, batch_size=args.batch_size, n_train=args.n_train, seed=args.seed,
                      min_steps=args.min_steps, init_checkpoint=checkpoint, precision=args.precision,
                      loss=args.loss)
    resources = ResourceConfig(workers=args.workers, cpus_per_worker=args.cpus_per_worker,
                               gpus_per_worker=args.gpus_per_worker, max_failures=args.max_failures)
    if resources.workers == 0 and resources.use_gpu:
        import torch

        if not torch.cuda.is_available():  # local mode trains in this process
            raise ValueError("gpus_per_worker: local mode (--workers 0) trains in this process, which sees no GPU; "
                             "use --gpus-per-worker 0, or --workers >= 1 on a cluster with GPUs")
    if args.shares is not None and len(args.shares) != len(args.data):
        raise ValueError(f"shares: give one share per --data directory ({len(args.data)}), got {len(args.shares)}")
    shares = args.shares or [1.0] * len(args.data)
    # Every shard against its manifest's hash: damaged data is refused, never trained on
    # (0.2-0.4 s for a 71 MB laptop pre-training set; docs/benchmarks.md "Verifying a dataset").
    manifests = [check_dataset(path) for path in args.data]
    data = DataSelection(tuple(DataSource(p, s) for p, s in zip(args.data, shares)))
    resolutions = {m["resolution"] for m in manifests}
    if len(resolutions) != 1:
        raise ValueError(f"data: all datasets must share one resolution, got {sorted(resolutions)}")
    # The model is the checkpoint's when there is one (finetune, evaluate), else the one to build.
    check_modes_fit("modes", model.width_and_modes[1], resolutions.pop())
    if cfg.trains:
        split_counts(data.train, "train", cfg.n_train)  # raises when n_train exceeds the data
    return cfg, resources, data


def main(argv: list[str] | None = None) -> int:
    settle_job_outputs()  # first: it decides where relative outputs go under `ray job submit`
    args = _parser().parse_args(argv)
    try:
        registered = _fetch_registered(args)
        cfg, resources, data = _validate(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE

    from sciml.ray_env import ClusterTooSmall, ensure_ray, require_fit
    from sciml.tracking.registry import lineage_tags
    from sciml.training.runner import TrackingRequest, run_training

    ensure_ray(args.address, quiet=resources.workers == 0)  # show DDP workers' progress
    try:
        reason = require_fit({"CPU": resources.cpus_per_worker, "GPU": resources.gpus_per_worker}, resources.workers,
                             "--workers, --cpus-per-worker, --gpus-per-worker")
    except ClusterTooSmall as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    if reason:
        print(f"waiting for the autoscaler: {reason}", file=sys.stderr)
    tracking = None if args.no_tracking else TrackingRequest(
        experiment=args.experiment, run_name=args.run_name or f"{cfg.recipe}-{cfg.model.label}",
        tags={"recipe": cfg.recipe, "preset": cfg.model.label, "lr": cfg.lr, "seed": cfg.seed,
              "n_train": cfg.n_train if cfg.n_train is not None else "all",
              **(lineage_tags(registered) if registered else {})})
    outcome = run_training(cfg, data, resources, args.out, name=f"{cfg.recipe}-{cfg.model.label}",
                           tracking=tracking, storage_path=args.storage, progress=True)
    if cfg.recipe == "pretrain" and outcome.run_id:
        _register(args, outcome)
    summary = {"model_path": outcome.model_path, "mlflow_run_id": outcome.run_id, **outcome.metrics}
    with open(os.path.join(args.out, "metrics.json"), "w") as handle:
        json.dump(summary, handle, indent=2)
    print(json.dumps(summary, indent=2))
    print(f"test_rel_l2={outcome.metrics['test_rel_l2']:.6g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
