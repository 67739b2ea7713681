"""The matmul spectral convolution against a straightforward rfft2 implementation."""

from __future__ import annotations

import pytest
import torch

from sciml.models.layers import SpectralConv2d


def reference_spectral_conv(layer: SpectralConv2d, x: torch.Tensor) -> torch.Tensor:
    """Li et al.'s formulation: full rfft2, mix the two kept corners, zero-padded irfft2."""
    m = layer.modes
    cdtype = torch.complex128 if x.dtype == torch.float64 else torch.complex64
    w = layer.complex_weight().to(cdtype)
    b, _, ny, nx = x.shape
    x_ft = torch.fft.rfft2(x)
    out_ft = torch.zeros(b, layer.out_channels, ny, nx // 2 + 1, dtype=cdtype)
    out_ft[:, :, :m, :m] = torch.einsum("bixy,ioxy->boxy", x_ft[:, :, :m, :m], w[0])
    out_ft[:, :, -m:, :m] = torch.einsum("bixy,ioxy->boxy", x_ft[:, :, -m:, :m], w[1])
    return torch.fft.irfft2(out_ft, s=(ny, nx))


CASES = [(16, 4), (17, 4), (16, 8), (17, 8), (15, 1), (12, 6)]  # even/odd n, m = n/2 edge


@pytest.mark.parametrize("n,m", CASES)
def test_matches_reference_float64(n, m):
    torch.manual_seed(n * 100 + m)
    layer = SpectralConv2d(3, 5, m).double()
    with torch.no_grad():  # signed weights exercise every sign in the real-block algebra
        layer.weight.uniform_(-1, 1)
    x = torch.randn(2, 3, n, n, dtype=torch.float64)
    expected = reference_spectral_conv(layer, x)
    torch.testing.assert_close(layer(x), expected, rtol=0, atol=1e-10 * expected.abs().max().item())


@pytest.mark.parametrize("n,m", CASES)
def test_matches_reference_float32(n, m):
    torch.manual_seed(n * 100 + m)
    layer = SpectralConv2d(4, 4, m)
    with torch.no_grad():
        layer.weight.uniform_(-1, 1)
    x = torch.randn(3, 4, n, n)
    expected = reference_spectral_conv(layer, x)
    torch.testing.assert_close(layer(x), expected, rtol=0, atol=1e-5 * expected.abs().max().item())


def test_rectangular_grid_and_add():
    torch.manual_seed(0)
    layer = SpectralConv2d(2, 3, 3).double()
    x = torch.randn(2, 2, 8, 11, dtype=torch.float64)
    add = torch.randn(2, 3, 8, 11, dtype=torch.float64, requires_grad=True)
    expected = reference_spectral_conv(layer, x) + add
    torch.testing.assert_close(layer(x, add=add), expected, rtol=0, atol=1e-12)
    # A non-leaf is accumulated into in place (the FNO's fresh W x + b).
    fresh = add * 1.0
    out = layer(x, add=fresh)
    assert out.data_ptr() == fresh.data_ptr()
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)
    out.sum().backward()
    torch.testing.assert_close(add.grad, torch.ones_like(add))


def test_complex_weight_layout():
    layer = SpectralConv2d(2, 3, 4)
    w = layer.complex_weight()
    assert w.shape == (2, 2, 3, 4, 4) and w.is_complex()
    # corner 1, ky 2, kx 3, in 1, out 0 sits at [kx, corner * m + ky, in, out (+ d_out if Im)].
    assert w[1, 1, 0, 2, 3].real == layer.weight[3, 1 * 4 + 2, 1, 0]
    assert w[1, 1, 0, 2, 3].imag == layer.weight[3, 1 * 4 + 2, 1, 3 + 0]


def test_gradient_matches_reference():
    torch.manual_seed(1)
    layer = SpectralConv2d(3, 3, 4).double()
    x = torch.randn(2, 3, 10, 10, dtype=torch.float64, requires_grad=True)
    (layer(x) ** 2).sum().backward()
    grad_w, grad_x = layer.weight.grad.clone(), x.grad.clone()
    layer.weight.grad, x.grad = None, None
    (reference_spectral_conv(layer, x) ** 2).sum().backward()
    torch.testing.assert_close(grad_w, layer.weight.grad, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(grad_x, x.grad, rtol=1e-9, atol=1e-12)
