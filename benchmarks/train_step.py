"""Training throughput of our FNO against neuraloperator's FNO, same architecture.

One training step = forward + backward + Adam step on an MSE loss. Reports samples per
second per (preset, grid) and the ratio ours / neuraloperator.

neuraloperator (pip ``neuraloperator``) is imported from ``.bench_deps`` (an ignored folder
next to this repository's root) or the environment. With ``--install`` it is installed
there with ``pip install --no-deps --target .bench_deps neuraloperator tensorly
tensorly-torch opt-einsum`` (its three light imports; ``--no-deps`` so torch is never
replaced). Without it the neuraloperator column is skipped with a message.

Equivalent neuraloperator configuration (checked in neuralop 2.0.0's source):
- ``n_modes=(2m, 2m - 1)``: neuralop counts modes along y including negative
  frequencies (2m -> ky in [-m, m)) and keeps ``n_modes[-1] // 2 + 1`` rfft columns
  along x, so 2m - 1 gives our m columns (2m would give m + 1).
- ``lifting_channel_ratio=0``: a single linear lift 7 -> d (its default is a 2-layer MLP).
- ``projection_channel_ratio=2``: d -> 2d -> 1 with GELU, as ours.
- ``positional_embedding=None`` (default adds 2 grid channels), ``use_channel_mlp=False``
  (default adds an MLP per block), ``fno_skip="linear"``: each block is
  act(K x + W x) with the bias in K, no activation after the last: same parameter count.

Examples::

    python benchmarks/train_step.py --threads 2                  # CPU table
    python benchmarks/train_step.py --laptop --threads 1         # 32^2, d16 m8, batch 32
    python benchmarks/train_step.py --device cuda --compile --amp
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
DEPS = ROOT / ".bench_deps"
NEURALOP_PACKAGES = ["neuraloperator", "tensorly", "tensorly-torch", "opt-einsum"]
sys.path.insert(0, str(ROOT))

from sciml.models import PRESETS, build_fno, count_parameters  # noqa: E402


def import_neuralop(install: bool):
    """neuralop's FNO class, or None with a message on stderr."""
    if DEPS.is_dir():
        sys.path.insert(0, str(DEPS))
    try:
        from neuralop.models import FNO
        return FNO
    except ImportError as err:
        if not install:
            print(f"neuraloperator not importable ({err}); skipping its column "
                  "(use --install)", file=sys.stderr)
            return None
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(DEPS),
           *NEURALOP_PACKAGES]
    print("installing:", " ".join(cmd), file=sys.stderr)
    if subprocess.run(cmd).returncode != 0:
        print("neuraloperator install failed; skipping its column", file=sys.stderr)
        return None
    sys.path.insert(0, str(DEPS))
    from neuralop.models import FNO
    return FNO


def build_neuralop(cls, width: int, modes: int) -> nn.Module:
    return cls(
        n_modes=(2 * modes, 2 * modes - 1), in_channels=7, out_channels=1,
        hidden_channels=width, n_layers=4, lifting_channel_ratio=0, projection_channel_ratio=2,
        positional_embedding=None, use_channel_mlp=False, fno_skip="linear",
    )


def make_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, amp: bool,
              compile_mode: str | None) -> Callable[[], None]:
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    forward = torch.compile(model, mode=compile_mode) if compile_mode else model
    loss_fn = nn.MSELoss()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
            loss = loss_fn(forward(x).float(), y)
        loss.backward()
        opt.step()

    return step


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_steps(step: Callable[[], None], device: torch.device, steps: int) -> float:
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return time.perf_counter() - start


def inputs(batch: int, n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Random source plus constant coefficients broadcast over the grid (SPEC section 4)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.empty(batch, 7, n, n)
    x[:, 0] = torch.randn(batch, n, n, generator=gen)
    x[:, 1:] = torch.rand(batch, 6, 1, 1, generator=gen) * 0.05
    y = torch.randn(batch, 1, n, n, generator=gen)
    return x.to(device), y.to(device)


def bench_config(name: str, width: int, modes: int, n: int, args, neuralop_cls) -> dict:
    device = torch.device(args.device)
    x, y = inputs(args.batch, n, device)
    models = {"ours": build_fno(width=width, modes=modes).to(device)}
    if neuralop_cls is not None:
        models["neuralop"] = build_neuralop(neuralop_cls, width, modes).to(device)
    steps, errors = {}, {}
    for key, model in models.items():
        steps[key] = make_step(model, x, y, args.amp, args.compile)
        try:
            for _ in range(args.warmup):
                steps[key]()
        except Exception as err:  # e.g. no bf16 FFT in torch: report, keep the other column
            message = (str(err).splitlines() or [""])[0][:120]
            errors[key] = f"{type(err).__name__}: {message}"
            del steps[key]
    # Interleave repeats so drifting machine load hits both models alike; median of repeats.
    times: dict[str, list[float]] = {key: [] for key in steps}
    for _ in range(args.repeats):
        for key in steps:
            times[key].append(time_steps(steps[key], device, args.steps))
    row = {"config": name, "n": n, "width": width, "modes": modes,
           "params": count_parameters(models["ours"]), "errors": errors}
    for key in steps:
        row[key] = args.batch * args.steps / statistics.median(times[key])
    if "neuralop" in models:
        row["neuralop_params"] = count_parameters(models["neuralop"])
    return row


def tune_malloc() -> None:
    """Stop glibc from returning large freed blocks to the OS (Linux/glibc only).

    By default each step's activations above the mmap threshold (32 MiB at most) are
    fresh mmaps, and every page is faulted in again; in VMs that costs as much as the
    math. Same effect as MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ in the env.
    """
    import ctypes

    libc = ctypes.CDLL("libc.so.6")
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_mmap_threshold, 1 << 30)
    libc.mallopt(m_trim_threshold, (1 << 31) - 1)


RATES_FILE = ROOT / "sciml" / "sweeps" / "step_rates.json"
# (preset, grid) pairs whose FLOPs and saved activations the table lists (modes fit the grid).
TABLE_PRESETS = ("d8m4", "64K", "d16m8", "1M", "16M", "256M")
TABLE_GRIDS = (16, 32, 64, 128)
# H100 80GB, eager fp32, batch 32: measured by an earlier session (docs/benchmarks.md, "GPU").
H100_MEASURED = {("64K", 64): 6484.7, ("64K", 128): 6789.9, ("1M", 64): 5595.6, ("1M", 128): 4696.4}
H100_SOURCE = ("measured: H100 80GB (16-core Xeon host, torch 2.11.0+cu130), eager fp32, batch 32, "
               "2026-11, `benchmarks/train_step.py --device cuda --steps 20 --repeats 3 --warmup 5` "
               "(docs/benchmarks.md)")
ASSUMPTIONS = {
    # An H100 SXM peaks at 67 TFLOP/s in fp32 without tensor cores (the runs train in fp32,
    # TF32 off); 25 is about 40% of that, what large eager GEMMs sustain.
    "h100_fp32_flops_per_s": 25e12,
    # Smallest step time of the measured H100 rows minus their FLOPs: kernel-launch bound.
    "h100_fixed_step_s": None,
    "activation_peak_factor": 1.25,  # transient buffers over the saved tensors during backward
    "fixed_memory_bytes": 1024**3,  # CUDA context, cuBLAS workspace, allocator slack
    "trial_overhead_s": {"cpu": 10.0, "h100": 20.0},  # trial start, data load, model file
    "cpus_per_gpu": 4,
    "datagen_examples_per_core_s_128": 5379.0,  # slowest system, docs/benchmarks.md
    "mlflow_artifacts_bytes_per_sweep": 8 * 1024**2,  # tables, figures, report (runs: metrics only)
}


def write_rates(args) -> None:
    """Measure CPU step rates for the small entries, count FLOPs and activations for all, and
    write sciml/sweeps/step_rates.json (each rate says where it comes from)."""
    import datetime
    import json
    import platform

    from sciml.core.checks import check_modes_fit
    from sciml.core.files import write_text
    from sciml.sweeps.plan import count_model_cost
    from sciml.training.config import ModelConfig

    path = Path(args.rates_file)
    previous = json.loads(path.read_text()) if path.exists() else {}
    models = dict(previous.get("models", {}))  # pairs not recounted now keep their counts
    for preset in dict.fromkeys(tuple(args.table_presets) + tuple(args.presets)):
        for n in sorted(set(TABLE_GRIDS) | set(args.grids)):
            try:
                check_modes_fit("presets", ModelConfig.parse(preset).width_and_modes[1], n)
            except ValueError:
                continue
            models[f"{preset}@{n}"] = {"preset": preset, "resolution": n,
                                       **count_model_cost(preset, n).to_dict()}
            print(f"counted {preset} at {n}^2: {models[f'{preset}@{n}']['train_flops'] / 1e9:.3f} GFLOP/example",
                  flush=True)
    today = datetime.date.today().isoformat()
    on_gpu = args.device.startswith("cuda")
    if on_gpu:
        name = torch.cuda.get_device_name()
        device = "h100" if "H100" in name else name.lower().replace(" ", "-")  # the plan reads h100 rows
        machine = f"{name}, eager, {'bf16 autocast' if args.amp else 'fp32'}"
    else:
        device, machine = "cpu", (f"{platform.machine()} CPU, {torch.get_num_threads()} thread(s), "
                                  "this repository's 2-core CI/dev VM (shared)")
    source = f"measured: {machine}, batch {args.batch}, {today}, `{' '.join(['python'] + sys.argv)}`"
    # Rows measured before on other devices (or other pairs) stay; this run replaces its own.
    old = previous.get("rates", [])
    measured = {(r["preset"], r["resolution"], r["device"]): r for r in old if r["source"].startswith("measured")}
    for (preset, n), rate in H100_MEASURED.items():
        measured.setdefault((preset, n, "h100"), None)  # filled below from the recorded H100 rates
    flops = ASSUMPTIONS["h100_fp32_flops_per_s"]
    fixed = min(32 / rate - 32 * models[f"{p}@{n}"]["train_flops"] / flops for (p, n), rate in H100_MEASURED.items())
    for (preset, n), rate in H100_MEASURED.items():
        if measured[preset, n, "h100"] is None:
            measured[preset, n, "h100"] = {"preset": preset, "resolution": n, "device": "h100", "batch": 32,
                                           "fixed_s": fixed, "per_example_s": max(32 / rate - fixed, 0.0) / 32,
                                           "step_s": 32 / rate, "train_flops": models[f"{preset}@{n}"]["train_flops"],
                                           "source": H100_SOURCE}
    for preset in args.presets:
        for n in args.grids:
            width, modes = ModelConfig.parse(preset).width_and_modes
            row = bench_config(preset, width, modes, n, args, None)
            step = args.batch / row["ours"]
            # On a GPU a step has a launch-bound floor; the CPU's time grows with the batch alone.
            floor = min(fixed, step) if on_gpu else 0.0
            measured[preset, n, device] = {
                "preset": preset, "resolution": n, "device": device, "batch": args.batch, "fixed_s": floor,
                "per_example_s": (step - floor) / args.batch, "step_s": step,
                "train_flops": models[f"{preset}@{n}"]["train_flops"], "source": source}
            print(f"{device} {preset} {n}^2: {row['ours']:.1f} examples/s", flush=True)
    rates = list(measured.values())
    cpu_rows = [r for r in rates if r["device"] == "cpu"]
    assumptions = {**ASSUMPTIONS, "h100_fixed_step_s": fixed}
    for m in models.values():
        for dev in ("cpu", "h100"):
            if (m["preset"], m["resolution"], dev) in measured:
                continue
            if dev == "cpu":
                near = min(cpu_rows, key=lambda r: abs(r["train_flops"] / m["train_flops"] - 1))
                per = near["per_example_s"] * m["train_flops"] / near["train_flops"]
                floor, batch = 0.0, near["batch"]
                src = f"estimated: from cpu {near['preset']} at {near['resolution']}^2 by FLOP scaling"
            else:
                per, floor, batch = m["train_flops"] / flops, fixed, 32
                src = (f"estimated: {m['train_flops'] / 1e9:.3f} GFLOP/example (torch FlopCounterMode) at "
                       f"{flops / 1e12:g} TFLOP/s fp32 + {fixed * 1e3:.1f} ms launch overhead per step")
            rates.append({"preset": m["preset"], "resolution": m["resolution"], "device": dev, "batch": batch,
                          "fixed_s": floor, "per_example_s": per, "step_s": floor + per * batch,
                          "train_flops": m["train_flops"], "source": src})
    table = {
        "about": "Seconds per optimizer step = fixed_s + per_example_s x batch, per (preset, resolution, device); "
                 "models: FLOPs and autograd-saved activation bytes per example, counted on the CPU as batch 2 "
                 "minus batch 1 (not timed). Written by `benchmarks/train_step.py --write-rates`.",
        "assumptions": assumptions, "models": models, "rates": rates}
    write_text(path, json.dumps(table, indent=1) + "\n")
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--grids", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--presets", nargs="+", default=["64K", "1M"], help="presets or dWmM labels")
    parser.add_argument("--laptop", action="store_true",
                        help="only the laptop profile: 32^2, width 16, modes 8")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--compile", nargs="?", const="default", default=None,
                        metavar="MODE", help="torch.compile both models (optional mode, "
                        "e.g. reduce-overhead)")
    parser.add_argument("--tf32", action="store_true", help="allow TF32 matmuls on GPU")
    parser.add_argument("--tune-malloc", action="store_true",
                        help="glibc mallopt: keep freed memory (no mmap/trim); avoids the "
                        "page faults of re-allocating large activations every step")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast")
    parser.add_argument("--no-neuralop", action="store_true")
    parser.add_argument("--install", action="store_true",
                        help=f"pip install neuraloperator into {DEPS.name} if missing")
    parser.add_argument("--write-rates", action="store_true",
                        help=f"measure --presets x --grids on this CPU, count FLOPs and activations of every "
                        f"preset, write {RATES_FILE.relative_to(ROOT)}")
    parser.add_argument("--rates-file", default=str(RATES_FILE), help="the table --write-rates updates")
    parser.add_argument("--table-presets", nargs="+", default=list(TABLE_PRESETS),
                        help="presets whose FLOPs and activations --write-rates counts at 16^2-128^2")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.tune_malloc:
        tune_malloc()
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.manual_seed(0)
    if args.write_rates:
        write_rates(args)
        return
    neuralop_cls = None if args.no_neuralop else import_neuralop(args.install)

    if args.laptop:
        configs = [("laptop", 16, 8, 32)]
    else:
        configs = [(p, *PRESETS[p], n) for p in args.presets for n in args.grids]
    device_name = (torch.cuda.get_device_name() if args.device.startswith("cuda")
                   else f"cpu, {torch.get_num_threads()} threads")
    print(f"# train step, batch {args.batch}, {device_name}, torch {torch.__version__}, "
          f"compile={args.compile}, amp_bf16={args.amp}, tf32={args.tf32}, "
          f"tune_malloc={args.tune_malloc}")
    header = f"{'config':8} {'grid':>5} {'d':>4} {'m':>3} {'params':>9} {'ours/s':>9}"
    if neuralop_cls is not None:
        header += f" {'neuralop/s':>11} {'ratio':>6}"
    print(header)
    for name, width, modes, n in configs:
        row = bench_config(name, width, modes, n, args, neuralop_cls)
        line = (f"{name:8} {n:>5} {width:>4} {modes:>3} {row['params']:>9,} "
                f"{row.get('ours', float('nan')):>9.1f}")
        if "neuralop" in row:
            line += f" {row['neuralop']:>11.1f}"
        if "neuralop" in row and "ours" in row:
            line += f" {row['ours'] / row['neuralop']:>6.2f}"
        print(line, flush=True)
        for key, err in row["errors"].items():
            print(f"{key} failed: {err}", flush=True)


if __name__ == "__main__":
    main()
