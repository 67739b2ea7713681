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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--grids", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--presets", nargs="+", default=["64K", "1M"], choices=sorted(PRESETS))
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
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.tune_malloc:
        tune_malloc()
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.manual_seed(0)
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
