"""The error metric and the two training losses (SPEC 7 and issue 12)."""

import pytest
import torch

from sciml.training.metrics import relative_l2, training_loss


def _pair(seed=0):
    generator = torch.Generator().manual_seed(seed)
    target = torch.randn(6, 1, 8, 8, generator=generator)
    return target + 0.1 * torch.randn(6, 1, 8, 8, generator=generator), target


def test_the_relative_loss_is_the_batch_mean_of_the_metric():
    prediction, target = _pair()
    assert float(training_loss("rel_l2", prediction, target)) == pytest.approx(
        float(relative_l2(prediction, target).mean()), rel=1e-6)
    assert float(training_loss("mse", prediction, target)) == pytest.approx(
        float(((prediction - target) ** 2).mean()), rel=1e-6)


def test_only_the_relative_loss_weighs_every_example_alike_whatever_its_size():
    prediction, target = _pair()
    scale = torch.tensor([1.0, 1.0, 1.0, 10.0, 10.0, 10.0]).view(6, 1, 1, 1)  # |u| spans 10x, as in SYS-2
    for kind, expected in (("rel_l2", 1.0), ("mse", None)):
        p = (prediction * scale).requires_grad_()
        training_loss(kind, p, target * scale).backward()
        per_example = p.grad.flatten(1).norm(dim=1) * scale.flatten()  # gradient w.r.t. the unscaled error
        ratio = float(per_example[3:].mean() / per_example[:3].mean())
        if expected is None:
            assert ratio > 50  # MSE: the large examples dominate the step (100x in the squared error)
        else:
            assert ratio == pytest.approx(expected, rel=0.5)


def test_an_unknown_loss_is_refused():
    with pytest.raises(ValueError, match="loss: must be one of mse, rel_l2"):
        training_loss("l1", *_pair())
