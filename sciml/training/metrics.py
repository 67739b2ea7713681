"""Error metrics (SPEC section 7)."""

from __future__ import annotations

import torch


def relative_l2(prediction: torch.Tensor, target: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Per-example ||prediction - target||_2 / ||target||_2 over all non-batch dims."""
    diff = (prediction - target).flatten(1).double()
    ref = target.flatten(1).double()
    return diff.norm(dim=1) / ref.norm(dim=1).clamp_min(eps)
