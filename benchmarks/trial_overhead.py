"""Where a small laptop trial's time goes, and what the overhead work saved, side by side.

Runs the same local-mode training run (`run_training`, exactly what a sweep trial calls:
pre-materialised Ray Datasets, an MLflow run in a sqlite store, d16m8 at 32^2, the laptop
profile's N = 8 at least 200 steps, 128 validation and 256 test examples), alternating:

  before   the metric logger writes one MLflow batch per validation, and every run ends with
           a full gc.collect() (the code before the overhead work)
  after    the logger flushes at most every METRICS_FLUSH_SECONDS; gc only after DDP

and prints per variant the median wall seconds of run_training, the training-step seconds the
loop measured inside it, and the rest (validation, logging, set-up): the overhead. The
variants alternate within each repeat so that drifting machine load affects them alike.

Run:  python benchmarks/trial_overhead.py [--repeats 5] [--n-train 8]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="benchmarks/trial_overhead.py", description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--n-train", type=int, default=8)
    p.add_argument("--out", help="working directory (default: a temporary one)")
    p.add_argument("--quick", action="store_true", help="tiny sizes, one repeat (for the test suite)")
    return p.parse_args(argv)


def _variant(name: str):
    """Patch the two behaviours back to the code before the overhead work (or leave them)."""
    from sciml.training import loop

    if name == "before":
        loop.METRICS_FLUSH_SECONDS = 0.0
        release = loop.Trainer.release

        def release_with_gc(self):
            release(self)
            gc.collect()

        loop.Trainer.release = release_with_gc
        return lambda: setattr(loop.Trainer, "release", release)
    loop.METRICS_FLUSH_SECONDS = 5.0
    return lambda: None


def main(argv=None) -> int:
    args = parse(argv)
    if args.quick:
        args.repeats = 1
    sizes = dict(n_val=16, n_test=16, epochs=2, min_steps=4) if args.quick else dict(n_val=128, n_test=256, epochs=30,
                                                                                      min_steps=200)
    from data_gen import ensure_dataset
    from sciml.data.ray_datasets import DataSource
    from sciml.physics import SystemSpec
    from sciml.ray_env import ensure_ray
    from sciml.sweeps.datasets import TrialDatasets
    from sciml.training.config import ModelConfig, ResourceConfig, TrainConfig
    from sciml.training.runner import DataSelection, TrackingRequest, run_training

    out = args.out or tempfile.mkdtemp(prefix="trial-overhead-")
    data = os.path.join(out, "data")
    ensure_dataset(SystemSpec("poisson", 5.0, 10.0), data,
                   n_train=max(args.n_train, 16), n_val=sizes["n_val"], n_test=sizes["n_test"], resolution=32, seed=0,
                   shard_size=512,
                   progress=False, log=None)
    ensure_ray()
    sources = (DataSource(data),)
    registry = TrialDatasets(materialize=True)
    datasets = {"train": registry.get(sources, "train", args.n_train), "val": registry.get(sources, "val"),
                "test": registry.get(sources, "test")}
    uri = f"sqlite:///{os.path.join(out, 'mlruns.db')}"

    def trial(i: int) -> tuple[float, float]:
        cfg = TrainConfig(recipe="scratch", model=ModelConfig.parse("d16m8"), epochs=sizes["epochs"], lr=1e-2,
                          batch_size=16, n_train=args.n_train, seed=i, min_steps=sizes["min_steps"], loss="rel_l2")
        tracking = TrackingRequest(experiment="trial-overhead", run_name=f"t{i}", tags={}, parent_run_id=None,
                                   uri=uri, model_record="none")
        started = time.perf_counter()
        outcome = run_training(cfg, DataSelection(train=sources), ResourceConfig(workers=0, cpus_per_worker=1),
                               os.path.join(out, f"run{i}"), name=f"t{i}", tracking=tracking,
                               storage_path=os.path.join(out, "train_runs"), datasets=datasets)
        return time.perf_counter() - started, float(outcome.metrics["train_seconds"])

    trial(0)  # warm-up: imports, the MLflow schema, the first Ray Train run
    timings = {"before": [], "after": []}
    for repeat in range(args.repeats):
        for name in ("before", "after"):
            restore = _variant(name)
            try:
                timings[name].append(trial(1 + 2 * repeat + (name == "after")))
            finally:
                restore()
    print(f"\nlocal-mode trial, d16m8 32^2, N={args.n_train}, >= {sizes['min_steps']} steps, {sizes['n_val']} val / "
          f"{sizes['n_test']} test, median of "
          f"{args.repeats} (load average {os.getloadavg()[0]:.1f})")
    print(f"{'variant':<8} {'wall-s':>7} {'train-s':>8} {'overhead-s':>11} {'in-training':>11}")
    medians = {}
    for name, values in timings.items():
        wall = statistics.median(v[0] for v in values)
        train = statistics.median(v[1] for v in values)
        medians[name] = (wall, train)
        print(f"{name:<8} {wall:>7.2f} {train:>8.2f} {wall - train:>11.2f} {100 * train / wall:>10.0f}%")
    (wb, tb), (wa, ta) = medians["before"], medians["after"]
    print(f"ratio overhead (after / before): {(wa - ta) / (wb - tb):.2f}; wall: {wa / wb:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
