"""The cost plan of a sweep: what it would run and what that costs, before anything runs.

`--plan` on every sweep script prints this without starting Ray or writing a file. The
trials come from the runner's own enumeration (SweepRunner.pretraining_trials and
downstream_trials, with placeholder checkpoints), the optimizer steps from the training
loop's own schedule (EpochSchedule.plan on the trial's TrainConfig), the dataset and
checkpoint directories from the same pure functions the runner uses: the plan and the
run cannot drift. Times come from `step_rates.json` (written by
`benchmarks/train_step.py --write-rates`): measured where a machine was at hand,
estimated by FLOP scaling otherwise, and each number says which.
"""

from __future__ import annotations

import functools
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sciml.core.layout import COEFF_COLUMNS, FIELD_COLUMNS, SPLITS
from sciml.core.tables import CELL
from sciml.sweeps.questions import Question
from sciml.sweeps.settings import SweepSettings

RATES_PATH = Path(__file__).with_name("step_rates.json")
GPU_DEVICE = "h100"  # the device the GPU rows of step_rates.json describe
# Parquet row: the two float32 fields plus index (int64), coefficients, psi and sparsity (float64).
SCALAR_BYTES = 8 * (1 + len(COEFF_COLUMNS) + 2)
# A model file: float32 weights plus hparams and normalization statistics (a few KiB).
MODEL_FILE_OVERHEAD = 64 * 1024


def example_bytes(resolution: int) -> int:
    """Bytes of one stored example (uncompressed Arrow; float fields barely compress)."""
    return len(FIELD_COLUMNS) * 4 * resolution**2 + SCALAR_BYTES


# -- model costs ----------------------------------------------------------------------


@dataclass(frozen=True)
class ModelCost:
    """Per-example costs of one model at one grid, counted (not timed) on the CPU."""

    n_params: int
    train_flops: float  # forward + backward, per example (torch FlopCounterMode)
    forward_flops: float
    activation_bytes: float  # tensors autograd saves for backward, per example

    def to_dict(self) -> dict[str, float]:
        return {"n_params": self.n_params, "train_flops": self.train_flops, "forward_flops": self.forward_flops,
                "activation_bytes": self.activation_bytes}


def count_model_cost(preset: str, resolution: int) -> ModelCost:
    """FLOPs and saved activations per example: batch 2 minus batch 1 (the DFT bases and
    weights autograd also saves do not grow with the batch)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from sciml.training.config import ModelConfig

    torch.manual_seed(0)
    model = ModelConfig.parse(preset).build()

    def one(batch: int) -> tuple[float, float, float]:
        x, y = torch.rand(batch, 7, resolution, resolution), torch.zeros(batch, 1, resolution, resolution)
        storages: dict[int, int] = {}

        def pack(t):
            storage = t.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()  # one tensor saved twice counts once
            return t

        with FlopCounterMode(display=False) as counter:
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                loss = torch.nn.functional.mse_loss(model(x), y)
            forward = counter.get_total_flops()
            loss.backward()
        model.zero_grad(set_to_none=True)
        return counter.get_total_flops(), forward, sum(storages.values())

    one_, two = one(1), one(2)
    train, forward, activations = (b - a for a, b in zip(one_, two))
    return ModelCost(sum(p.numel() for p in model.parameters()), train, forward, activations)


def load_rates(path: str | os.PathLike = RATES_PATH) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


@functools.lru_cache(maxsize=None)
def _counted(preset: str, resolution: int) -> ModelCost:
    return count_model_cost(preset, resolution)


def model_cost(rates: dict[str, Any], preset: str, resolution: int) -> ModelCost:
    """From the table when it has the pair, else counted now (seconds for the small models)."""
    entry = rates.get("models", {}).get(f"{preset}@{resolution}")
    if entry:
        return ModelCost(**{k: entry[k] for k in ("n_params", "train_flops", "forward_flops", "activation_bytes")})
    return _counted(preset, resolution)


def trial_memory_bytes(rates: dict[str, Any], preset: str, resolution: int, batch: int) -> float:
    """Peak memory of one training process: weights, gradients and Adam's two moments (fp32),
    saved activations times a transient factor, plus the CUDA context."""
    a = rates["assumptions"]
    cost = model_cost(rates, preset, resolution)
    return (16 * cost.n_params + a["activation_peak_factor"] * batch * cost.activation_bytes
            + a["fixed_memory_bytes"])


def check_gpu_memory(settings: SweepSettings, rates: dict[str, Any] | None = None) -> None:
    """Refuse (ValueError naming the field) a GPU share a trial's estimated memory cannot fit."""
    rates = rates or load_rates()
    workers = max(settings.workers_per_trial, 1)
    batch = max(1, max(settings.batch_size, settings.pretrain_batch_size) // workers)
    field = "gpu_share" if settings.gpu_share else "gpus_per_worker"
    for preset in settings.presets:
        share = settings.gpus_for(preset)
        if share <= 0:
            continue
        need = trial_memory_bytes(rates, preset, settings.resolution, batch)
        have = min(share, 1.0) * settings.gpu_memory_gb * 1024**3 if share <= 1 else settings.gpu_memory_gb * 1024**3
        if need > have:
            raise ValueError(
                f"{field}: {preset} at {settings.resolution}^2, batch {batch} needs about {need / 1024**3:.1f} GiB "
                f"(estimated, sciml/sweeps/step_rates.json) but a share of {share:g} of a "
                f"{settings.gpu_memory_gb:g} GiB GPU has {have / 1024**3:.1f} GiB")


# -- step times -----------------------------------------------------------------------


def step_time(rates: dict[str, Any], preset: str, resolution: int, device: str,
              batch: int) -> tuple[float, float, str]:
    """(seconds per optimizer step at `batch`, seconds per forward-only example, source).

    A table row for the exact (preset, resolution, device) is used as is; otherwise the
    device's measured row with the closest FLOPs per example is scaled by FLOPs.
    """
    rows = [r for r in rates["rates"] if r["device"] == device]
    exact = [r for r in rows if r["preset"] == preset and r["resolution"] == resolution]
    cost = model_cost(rates, preset, resolution)
    if exact:
        row, per_example, source = exact[0], exact[0]["per_example_s"], exact[0]["source"]
    else:
        measured = [r for r in rows if r["source"].startswith("measured")] or rows
        row = min(measured, key=lambda r: abs(math.log(r["train_flops"] / cost.train_flops)))
        per_example = row["per_example_s"] * cost.train_flops / row["train_flops"]
        source = f"estimated: from {row['preset']} at {row['resolution']}^2 by FLOP scaling"
    forward = per_example * cost.forward_flops / cost.train_flops
    return row["fixed_s"] + per_example * batch, forward, source


# -- what would run -------------------------------------------------------------------


@dataclass
class TrialCost:
    stage: str  # pretraining, downstream, zero-shot
    key: str
    preset: str
    steps: int
    train_examples: int  # examples through forward + backward
    eval_examples: int  # examples through forward only (validation and test)
    seconds: dict[str, float]  # device -> seconds of one trial alone


def _stage(recipe: str) -> str:
    return {"pretrain": "pretraining", "zeroshot": "zero-shot"}.get(recipe, "downstream")


def _finished_keys(experiment_dir: str) -> set[str]:
    """Trials of a Tune experiment that reported their final metrics (trial_key in result.json)."""
    done = set()
    if not os.path.isdir(experiment_dir):
        return done
    for entry in os.scandir(experiment_dir):
        result = os.path.join(entry.path, "result.json")
        if entry.is_dir() and os.path.isfile(result):
            with open(result) as f:
                if any('"trial_key"' in line for line in f):
                    done.add(entry.name)
    return done


def plan_sweep(question: Question, settings: SweepSettings, *, gpus: float = 0, cpus: float | None = None,
               rates: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything `--plan` prints, as one JSON-able dict. Reads the cache; writes nothing."""
    from sciml.data.manifest import is_complete, load_manifest
    from sciml.sweeps.datasets import dataset_requests
    from sciml.sweeps.pretrained import planned_cells, replaced_labels
    from sciml.sweeps.runner import SweepRunner, downstream_experiment, pretrain_experiment, pretrained_folder
    from sciml.sweeps.trials import TrialContext

    rates, s = rates or load_rates(), settings
    runner = SweepRunner(question, s, tracking=False)
    # --pretrained: registered models replace these pre-trainings (their trials, steps and data).
    registered, unresolved = planned_cells(question, s)
    # Datasets: the runner's own directory names; complete ones are reused, not generated.
    datasets, cached_dirs = [], {}
    for r in dataset_requests(question, s, replaced_labels(question, s, registered)):
        cached = is_complete(r.directory)
        counts = {"train": r.n_train, "val": s.n_val, "test": s.n_test}
        if cached:
            cached_dirs[r.name] = r.directory
        datasets.append({"name": r.name, "directory": r.directory, "cached": cached, "examples": counts,
                         "bytes": {k: v * example_bytes(s.resolution) for k, v in counts.items()}})

    # Pre-trained checkpoints: known only when all their data is cached (the key holds its hashes).
    pre_trials = [t for t in runner.pretraining_trials() if (t.pretrain, t.preset) not in registered]
    pretrainings = {p.label: p for t in question.tasks for p in t.pretrainings}
    folders: dict[tuple[str, str], str] = {}
    for t in pre_trials:
        names = [spec.name for spec in pretrainings[t.pretrain].specs]
        if all(n in cached_dirs for n in names):
            hashes = [load_manifest(cached_dirs[n])["content_hash"] for n in names]
            folders[t.pretrain, t.preset] = pretrained_folder(s, t.pretrain, t.preset, hashes)
    cached_models = {cell for cell, folder in folders.items() if os.path.exists(os.path.join(folder, "model.pt"))}
    missing = [t for t in pre_trials if (t.pretrain, t.preset) not in cached_models]
    finished: set[str] = set()
    exact = True
    if missing and all((t.pretrain, t.preset) in folders for t in missing):
        finished |= _finished_keys(os.path.join(runner._storage(), pretrain_experiment(missing, folders)))
    checkpoints = {cell: os.path.join(folders[cell], "model.pt") if cell in folders else f"<pre-trained {cell[0]} "
                   f"{cell[1]}>" for cell in {(t.pretrain, t.preset) for t in pre_trials}}
    checkpoints.update({cell: f"<registered {cell[0]} {cell[1]}>" for cell in registered})
    down_trials = runner.downstream_trials(checkpoints)
    if registered:
        exact = False  # the downstream experiment is named by the downloaded models' paths
    elif len(cached_models) == len(checkpoints):
        finished |= _finished_keys(os.path.join(runner._storage(), downstream_experiment(down_trials)))
    elif any(cell in cached_models for cell in checkpoints):
        exact = False  # part of the grid could have a half-run experiment under another name
    down_trials = down_trials + later_seed_placeholders(runner, down_trials, checkpoints)

    # Optimizer steps: the training loop's own schedule for each trial's config.
    context = TrialContext(question.key, s, {label: (None,) * len(p.specs) for label, p in pretrainings.items()}
                           | {t.name: (None,) for t in question.tasks}, {}, "", "", None, "", None)
    trials = [trial_cost(t, s, context, rates) for t in missing + down_trials if t.key not in finished]
    plan = _summarise(question, s, rates, datasets, pre_trials, cached_models, down_trials, finished, exact,
                      trials, gpus, cpus)
    plan["pretrained_registered"] = sorted(f"{a} {b}" for a, b in registered)
    plan["pretrained_unresolved"] = unresolved  # their cell needs the registry: still counted as pre-trained
    plan["edge_trials_upper_bound"] = edge_trials_upper_bound(s, down_trials)
    return plan


def trial_cost(t, s: SweepSettings, context, rates: dict[str, Any]) -> TrialCost:
    """One trial's optimizer steps, examples and seconds, from the training loop's own schedule.

    A race (`--scheduler race`) is exact too: its candidates stop at known rungs
    (RaceConfig.validations_run), whatever their errors."""
    from sciml.sweeps.trials import race_config, trial_config
    from sciml.training.loop import EpochSchedule

    world = max(s.workers_per_trial, 1)
    # run_trial makes the random-init zero-shot model file itself.
    cfg = trial_config(t, s, t.checkpoint or ("<random init>" if t.recipe == "zeroshot" else None))
    rows = context.dataset_keys(t).get("train", (None, None, 0))[2]
    schedule = EpochSchedule.plan(cfg, math.ceil(rows / world), world)
    race = race_config(t, s)
    reached = race.validations_run(schedule.validations) if race else [schedule.validations]
    steps = sum(schedule.epochs_at(v) for v in reached) * schedule.steps_per_epoch
    # Every run also validates its starting weights and tests its best ones.
    eval_examples = sum(v + 1 for v in reached) * s.n_val + len(reached) * s.n_test
    seconds = {}
    for device in ("cpu", GPU_DEVICE):
        step_s, forward_s, _ = step_time(rates, t.preset, s.resolution, device, schedule.batch_size)
        overhead = rates["assumptions"]["trial_overhead_s"][device]
        seconds[device] = steps * step_s + eval_examples * forward_s / world + overhead
    return TrialCost(_stage(t.recipe), t.key, t.preset, steps, steps * schedule.batch_size * world, eval_examples,
                     seconds)


def later_seed_placeholders(runner, down_trials, checkpoints) -> list:
    """--search-seeds first: the later seeds' trials, one per trained cell and seed. Their learning rate is
    chosen when the first seed has run; a trial's steps do not depend on it, so the cell's first stands in."""
    if runner.settings.search_seeds != "first":
        return []
    cells: dict[tuple, list[float]] = {}
    for t in down_trials:
        if t.recipe in ("scratch", "finetune"):
            cells.setdefault(tuple(getattr(t, name) for name in CELL), [t.lr if t.lr is not None else t.lrs[0]])
    return runner.edge_trials(cells, checkpoints, runner.later_seeds())


def edge_trials_upper_bound(settings: SweepSettings, down_trials) -> int:
    """Most trials the grid-edge rounds (extend_edges) can add: every fine-tune and scratch cell at an edge
    in every round, for every seed. A round adds one learning rate beyond the edge a cell's best sits on;
    a cell tried at a single rate sits on both edges and gets two in the first round (search.edge_extensions)."""
    s = settings
    if s.search != "grid" or not s.extend_edges:
        return 0
    cells: dict[tuple, int] = {}
    for t in down_trials:
        if t.recipe in ("finetune", "scratch"):
            cells[(t.task, t.pretrain, t.preset, t.recipe, t.n_train)] = len(s.recipe_lrs[t.recipe])
    per_cell = [(2 if n_lrs == 1 else 1) + (s.extend_edges - 1) for n_lrs in cells.values()]
    return sum(per_cell) * (1 if s.search_seeds == "first" else s.seeds)  # first: only the first seed extends


def _packed_seconds(rates, s: SweepSettings, preset: str, alone: float, steps: int, batch: int) -> float:
    """A trial sharing a GPU: its launch overhead overlaps the others' work, its compute does not."""
    share = s.gpus_for(preset)
    if share <= 0 or share >= 1:
        return alone
    step_s, _, _ = step_time(rates, preset, s.resolution, GPU_DEVICE, batch)
    compute = step_s - next(r["fixed_s"] for r in rates["rates"] if r["device"] == GPU_DEVICE)
    return max(alone, alone - steps * step_s + steps * compute / share)


def _summarise(question, s, rates, datasets, pre_trials, cached_models, down_trials, finished, exact, trials,
               gpus, cpus) -> dict[str, Any]:
    from sciml.sweeps.datasets import materialize_limit, streams

    world = max(s.workers_per_trial, 1)
    use_gpu = any(s.gpus_for(p) > 0 for p in s.presets)
    stages = ("pretraining", "downstream", "zero-shot")
    enumerated = {"pretraining": len(pre_trials),
                  "downstream": sum(t.recipe != "zeroshot" for t in down_trials),
                  "zero-shot": sum(t.recipe == "zeroshot" for t in down_trials)}
    to_run = {st: sum(t.stage == st for t in trials) for st in stages}
    steps_by_preset: dict[str, int] = {}
    for t in trials:
        steps_by_preset[t.preset] = steps_by_preset.get(t.preset, 0) + t.steps
    batch = {"pretraining": s.pretrain_batch_size, "downstream": s.batch_size, "zero-shot": s.batch_size}
    gpu_packed = gpu_whole = cpu_held = cpu_only = 0.0
    by_preset_gpu: dict[str, float] = {}
    stage_work: dict[str, dict[str, float]] = {st: {"gpu": 0.0, "cpu": 0.0, "longest": 0.0} for st in stages}
    for t in trials:
        share = s.gpus_for(t.preset)
        packed = _packed_seconds(rates, s, t.preset, t.seconds[GPU_DEVICE], t.steps,
                                 max(1, batch[t.stage] // world))
        gpu_packed += packed * share * world / 3600
        by_preset_gpu[t.preset] = by_preset_gpu.get(t.preset, 0.0) + packed * share * world / 3600
        gpu_whole += t.seconds[GPU_DEVICE] * max(1.0, math.ceil(share)) * world / 3600
        cpu_held += packed * s.cpus_per_worker * world / 3600
        cpu_only += t.seconds["cpu"] * world / 3600  # rates are per core: core-hours on CPUs alone
        work = stage_work[t.stage]
        if use_gpu:
            work["gpu"] += packed * share * world
            work["cpu"] += packed * s.cpus_per_worker * world
            work["longest"] = max(work["longest"], packed)
        else:
            # Threads in one trial: assume they scale perfectly (an optimistic bound).
            wall = t.seconds["cpu"] / s.cpus_per_worker
            work["cpu"] += wall * s.cpus_per_worker * world
            work["longest"] = max(work["longest"], wall)
    generated = [d for d in datasets if not d["cached"]]
    gen_examples = sum(sum(d["examples"].values()) for d in generated)
    gen_rate = rates["assumptions"]["datagen_examples_per_core_s_128"] * (128 / s.resolution) ** 2
    gen_core_hours = gen_examples / gen_rate / 3600
    cpus = cpus if cpus is not None else (max(gpus * rates["assumptions"]["cpus_per_gpu"], 1) if gpus else 8)
    wall = gen_examples / gen_rate / cpus
    for st in stages:  # stages run one after the other; inside one, trials pack the cluster
        w = stage_work[st]
        bounds = [w["longest"], w["cpu"] / cpus]
        if use_gpu:
            bounds.append(w["gpu"] / gpus if gpus else math.inf)
        if s.max_concurrent:
            bounds.append((w["gpu"] / max(min(s.gpus_for(p) for p in s.presets), 1e-9) if use_gpu else
                           w["cpu"] / s.cpus_per_worker) / s.max_concurrent / world)
        wall += max(bounds) if w["longest"] else 0.0
    n_params = {p: _n_params(rates, p, s.resolution) for p in s.presets}
    model_bytes = {p: 4 * n + MODEL_FILE_OVERHEAD for p, n in n_params.items()}
    new_pre = [t for t in trials if t.stage == "pretraining"]
    cells = {(t.key.split("_")[1], t.preset) for t in new_pre}
    # Each pre-training trial keeps its model in the trials folder; the best per cell is copied to the cache.
    checkpoint_bytes = sum(model_bytes[t.preset] for t in new_pre) + sum(model_bytes[p] for _, p in cells)
    # DDP trials keep Ray Train's last two resumable checkpoints (CheckpointConfig(num_to_keep=2) in
    # sciml/training/runner.py): weights and Adam's two moments, fp32, under <storage>/train_runs.
    train_state_bytes = (sum(2 * 3 * 4 * n_params[t.preset] for t in trials if t.steps)
                         if s.workers_per_trial > 0 else 0)
    return {
        "question": question.key, "profile": s.profile, "resolution": s.resolution,
        "datasets": datasets,
        "dataset_bytes_to_generate": sum(sum(d["bytes"].values()) for d in generated),
        # The data path the runner will take (sciml/sweeps/datasets.py, SCIML_MATERIALIZE_LIMIT_BYTES).
        "datasets_streamed": streams(s), "materialize_limit_bytes": materialize_limit(),
        "trials_enumerated": enumerated, "trials_to_run": to_run,
        "trials_finished_excluded": len(finished), "pretrained_cached": sorted(f"{a} {b}" for a, b in cached_models),
        "exact": exact,
        "optimizer_steps": {"total": sum(steps_by_preset.values()), "by_preset": steps_by_preset},
        "gpu_share": {p: s.gpus_for(p) for p in s.presets},
        "gpu_hours": {"packed": gpu_packed, "one_gpu_per_trial": gpu_whole, "packed_by_preset": by_preset_gpu}
        if use_gpu else None,
        "cpu_hours": {"held_by_gpu_trials": cpu_held if use_gpu else None, "cpu_only_core_hours": cpu_only,
                      "data_generation_core_hours": gen_core_hours},
        "storage_bytes": {"datasets": sum(sum(d["bytes"].values()) for d in generated),
                          "checkpoints": checkpoint_bytes, "ray_train_checkpoints": train_state_bytes,
                          "mlflow_artifacts": rates["assumptions"]["mlflow_artifacts_bytes_per_sweep"]},
        "cluster": {"gpus": gpus if use_gpu else 0, "cpus": cpus, "wall_hours": wall / 3600},
        "rates_source": sorted({step_time(rates, p, s.resolution, d, s.batch_size)[2] + f" [{p} {d}]"
                                for p in s.presets for d in ("cpu", GPU_DEVICE)}),
    }


def _n_params(rates, preset: str, resolution: int) -> int:
    return int(model_cost(rates, preset, resolution).n_params)


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return ""


def _hours(h: float) -> str:
    return f"{h:,.1f} h" if h >= 1 else f"{h * 60:.1f} min"


def format_plan(plan: dict[str, Any]) -> str:
    p = plan
    lines = [f"Plan for {p['question']}, profile {p['profile']} ({p['resolution']}^2); nothing was started or written."]
    lines.append("Datasets (examples train/val/test, bytes on disk):")
    for d in p["datasets"]:
        ex, by = d["examples"], sum(d["bytes"].values())
        lines.append(f"  {d['name']}: {ex['train']}/{ex['val']}/{ex['test']}, {_size(by)}"
                     + (" (cached: reused)" if d["cached"] else ""))
    lines.append(f"  to generate: {_size(p['dataset_bytes_to_generate'])}, "
                 f"{_hours(p['cpu_hours']['data_generation_core_hours'])} of CPU cores")
    lines.append(f"  trials {'stream' if p['datasets_streamed'] else 'get'} their data "
                 + ("through Ray Data" if p["datasets_streamed"] else "materialised up front")
                 + f" (SCIML_MATERIALIZE_LIMIT_BYTES {_size(p['materialize_limit_bytes'])})")
    lines.append("Trials (to run / in the grid):")
    for st in ("pretraining", "downstream", "zero-shot"):
        lines.append(f"  {st}: {p['trials_to_run'][st]} / {p['trials_enumerated'][st]}")
    if p["pretrained_cached"]:
        lines.append(f"  pre-trained checkpoints reused: {', '.join(p['pretrained_cached'])}")
    if p.get("pretrained_registered"):
        lines.append(f"  pre-training replaced by registered models (--pretrained), not counted: "
                     f"{', '.join(p['pretrained_registered'])}")
    if p.get("pretrained_unresolved"):
        lines.append(f"  --pretrained {', '.join(p['pretrained_unresolved'])}: its cell is known only from the "
                     f"registry; its pre-training is still counted")
    if p.get("edge_trials_upper_bound"):
        lines.append(f"  grid edges: up to {p['edge_trials_upper_bound']} more downstream trials if every cell sits "
                     f"at an edge (--extend-edges; not in the counts, steps or hours above)")
    if p["trials_finished_excluded"]:
        lines.append(f"  finished trials of a resumable experiment excluded: {p['trials_finished_excluded']}")
    if not p["exact"]:
        lines.append("  (an upper bound: finished trials of a partly cached grid are not counted out)")
    steps = p["optimizer_steps"]
    lines.append(f"Optimizer steps: {steps['total']:,} ("
                 + ", ".join(f"{k} {v:,}" for k, v in steps["by_preset"].items()) + ")")
    if p["gpu_hours"]:
        g = p["gpu_hours"]
        saved = 1 - g["packed"] / g["one_gpu_per_trial"] if g["one_gpu_per_trial"] else 0
        lines.append(f"GPU-hours (H100): {_hours(g['packed'])} with shares "
                     + ", ".join(f"{k} {v:g}" for k, v in p["gpu_share"].items())
                     + f"; {_hours(g['one_gpu_per_trial'])} at one GPU per trial ({saved:.0%} saved)")
        if len(g["packed_by_preset"]) > 1:
            lines.append("  by preset: " + ", ".join(f"{k} {_hours(v)}" for k, v in g["packed_by_preset"].items()))
        lines.append(f"CPU-hours held by the GPU trials: {_hours(p['cpu_hours']['held_by_gpu_trials'])}")
    lines.append(f"CPU core-hours on CPUs alone: {_hours(p['cpu_hours']['cpu_only_core_hours'])}")
    st = p["storage_bytes"]
    lines.append(f"Storage: datasets {_size(st['datasets'])}, pre-trained model files {_size(st['checkpoints'])}, "
                 f"MLflow artifacts about {_size(st['mlflow_artifacts'])}")
    if st["ray_train_checkpoints"]:
        lines.append(f"  plus Ray Train's resumable checkpoints (2 per DDP trial, weights + Adam state): "
                     f"{_size(st['ray_train_checkpoints'])} under the storage's train_runs (deletable after the sweep)")
    c = p["cluster"]
    shape = f"{c['gpus']:g} GPUs, {c['cpus']:g} CPUs" if c["gpus"] else f"{c['cpus']:g} CPUs"
    lines.append(f"Wall time on {shape}: about {_hours(c['wall_hours'])} (a lower bound: perfect packing)")
    lines.append("Rates (sciml/sweeps/step_rates.json; --plan-json gives each source): " + ", ".join(
        f"{src.rsplit('[', 1)[1].rstrip(']')} {src.split(':', 1)[0]}" for src in p["rates_source"]))
    return "\n".join(lines)
