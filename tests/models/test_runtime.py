"""The FNO under the runtimes training uses: DDP, torch.compile, bf16 autocast."""

from __future__ import annotations

import gc
import subprocess
import sys

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from sciml.models import build_fno


def inputs(batch: int = 2, n: int = 8) -> torch.Tensor:
    torch.manual_seed(0)
    x = torch.empty(batch, 7, n, n)
    x[:, 0] = torch.randn(batch, n, n)
    x[:, 1:] = torch.rand(batch, 6, 1, 1) + 0.1
    return x


def ddp_two_steps(store: str) -> None:
    """Two DDP steps of the FNO on a one-process gloo group; raises if a parameter gets no gradient."""
    dist.init_process_group("gloo", store=dist.FileStore(store, 1), rank=0, world_size=1)
    try:
        model = DistributedDataParallel(build_fno(width=4, modes=2), find_unused_parameters=False)
        opt = torch.optim.Adam(model.parameters())
        x = inputs()
        for _ in range(2):  # an unused parameter would fail in the second iteration
            opt.zero_grad()
            model(x).square().mean().backward()
            opt.step()
        assert all(p.grad is not None for p in model.parameters())
        # Drop DDP's Reducer while the group is still alive: freed after destroy_process_group(),
        # it joins the gloo threads while holding the GIL they may wait for (a deadlock).
        del model, opt
        gc.collect()
    finally:
        dist.destroy_process_group()


def test_ddp_without_unused_parameters(tmp_path):
    # In a fresh process: no process group or threads of other tests, and a hang ends at the timeout.
    done = subprocess.run([sys.executable, __file__, str(tmp_path / "store")], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert done.stdout.strip().endswith("ddp ok"), done.stdout[-2000:]


def test_compiles_as_one_graph_with_backward():
    torch._dynamo.reset()
    model = build_fno(width=4, modes=2)
    x = inputs()
    # aot_eager traces forward and backward like inductor, without its slow codegen.
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    out = compiled(x)
    torch.testing.assert_close(out, model(x))
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_bf16_autocast_keeps_spectral_part_in_float32():
    model = build_fno(width=8, modes=2)
    x = inputs()
    expected = model(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
        spectral = model.spectral[0](torch.randn(2, 8, 8, 8))
    assert spectral.dtype == torch.float32
    assert torch.isfinite(out).all()
    scale = expected.abs().max().item()
    torch.testing.assert_close(out.float(), expected, rtol=0.05, atol=0.05 * scale)


if __name__ == "__main__":  # the DDP test's child process
    ddp_two_steps(sys.argv[1])
    print("ddp ok")
