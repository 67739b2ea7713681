"""Error metrics (SPEC section 7)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Training losses. SPEC 7 (the paper) trains with MSE on the normalized target; the per-example
# relative L2 (neuraloperator's default) weighs every example equally, which matters where |u|
# spans an order of magnitude across examples (SYS-2: docs/results.md, "The loss").
LOSSES = ("mse", "rel_l2")


def relative_l2(prediction: torch.Tensor, target: torch.Tensor, eps: float = 1e-12,
                dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Per-example ||prediction - target||_2 / ||target||_2 over all non-batch dims, in ``dtype``."""
    diff = (prediction - target).flatten(1).to(dtype)
    ref = target.flatten(1).to(dtype)
    return diff.norm(dim=1) / ref.norm(dim=1).clamp_min(eps)


def training_loss(kind: str, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The batch loss the optimizer minimizes: ``mse`` or the batch mean of ``relative_l2``."""
    if kind == "mse":
        return F.mse_loss(prediction, target)
    if kind == "rel_l2":  # in the training precision: the metric's float64 would slow every step
        return relative_l2(prediction, target, dtype=prediction.dtype).mean()
    raise ValueError(f"loss: must be one of {', '.join(LOSSES)}, got {kind!r}")
