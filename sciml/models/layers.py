"""FNO building blocks in channels-first layout ``(B, C, ny, nx)``.

The spectral convolution never forms the full spectrum: it keeps only ``2m`` rows and
``m`` columns of ``rfft2``, so the forward and inverse transforms are truncated DFTs
written as real matrix products (with ``m << n`` these beat full FFTs on CPU and are
plain GEMMs on GPU), and the per-mode channel mixing is one batched real matmul.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from sciml.core.checks import check_modes_fit

# (ny, nx, m, device, dtype) -> (fx, g, h, fi); see _make_bases. Small: O(n m) each.
_BASES: dict[tuple, tuple[Tensor, Tensor, Tensor, Tensor]] = {}


def _angles(freqs: Tensor, n: int) -> Tensor:
    """2 pi k j / n for every (k, j), reduced mod n in integers first for float64 accuracy."""
    j = torch.arange(n, dtype=torch.int64)
    return (torch.outer(freqs, j) % n).to(torch.float64) * (2 * math.pi / n)


def _make_bases(ny: int, nx: int, m: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Real matrices of the truncated forward and inverse DFT (float64).

    Layouts are chosen so that both y-steps are one large GEMM each (not a batch of
    tiny per-channel ones): the x-steps are batched over (batch, channel) and produce /
    consume the per-channel spectra transposed.

    fx (2m, nx): rows (kx, cos | sin); A = x @ fx^T, transposed per channel to (kx, s, y).
    g (2 ny, 4m): contracts (s, y) of A into [Re | Im] of rfft2 at rows ky in [0, m)
        and [ny - m, ny): columns (re/im, ky).
    h (8m, 2 ny): the y half of the inverse, fed the four real products of the mode
        mixing (Re x Re, Re x Im, Im x Re, Im x Im) so that combining them into the
        complex product costs nothing; output columns (s, y).
    fi (2m, nx): the x half of the inverse, rows (kx, cos | sin): irfft weights (1 for
        kx = 0, else 2; m <= n/2 keeps the Nyquist column out) and the 1 / (ny nx) scale.
    """
    kx = torch.arange(m)
    ky = torch.cat([torch.arange(m), torch.arange(ny - m, ny)])
    phi = _angles(kx, nx)  # (m, nx)
    fx = torch.stack([phi.cos(), phi.sin()], dim=1).reshape(2 * m, nx)

    theta = _angles(ky, ny).T  # (ny, 2m)
    cos, sin = theta.cos(), theta.sin()
    # Re = sum_y cos A_c - sin A_s, Im = -sum_y sin A_c + cos A_s; rows (s, y).
    g = torch.cat([torch.cat([cos, -sin], dim=1), torch.cat([-sin, -cos], dim=1)])

    # Y e^{i theta} e^{i phi}: E_c = sum_ky cos Yr - sin Yi, E_s = -sum_ky sin Yr + cos Yi.
    h_re = torch.cat([cos, -sin])  # (2 ny, 2m), acts on Yr
    h_im = torch.cat([-sin, -cos])  # acts on Yi
    # Yr = RR - II, Yi = RI + IR in the mixing's product order (RR, RI, IR, II).
    h = torch.cat([h_re, h_im, h_im, -h_re], dim=1).T.contiguous()

    weight = torch.full((m, 1), 2.0, dtype=torch.float64)
    weight[0] = 1.0
    fi = torch.stack([weight * phi.cos(), weight * phi.sin()], dim=1).reshape(2 * m, nx)
    return fx, g, h, fi / (ny * nx)


def dft_bases(ny: int, nx: int, m: int, device: torch.device, dtype: torch.dtype):
    """Cached truncated-DFT matrices for one grid, device and dtype."""
    if torch.compiler.is_compiling():
        # Build them inside the graph instead: filling the cache from a trace is a side
        # effect that forces a recompile and, under CUDA graphs, would keep graph-owned memory.
        return tuple(b.to(device=device, dtype=dtype) for b in _make_bases(ny, nx, m))
    key = (ny, nx, m, device, dtype)
    bases = _BASES.get(key)
    if bases is None:
        bases = tuple(b.to(device=device, dtype=dtype) for b in _make_bases(ny, nx, m))
        _BASES[key] = bases
    return bases


def check_resolution(ny: int, nx: int, modes: int) -> None:
    """The m <= n/2 rule (core.checks.check_modes_fit) on an input's grid, at run time."""
    check_modes_fit("modes", modes, min(ny, nx))


def _accumulable(t: Tensor, dtype: torch.dtype) -> bool:
    return t.dtype == dtype and t.is_contiguous() and not (t.is_leaf and t.requires_grad)


class SpectralConv2d(nn.Module):
    """K(x) = irfft2(W . rfft2(x)) on modes [:m, :m] and [-m:, :m], plus an optional ``add``.

    ``add`` (B, D, ny, nx) is consumed: accumulated into in place and returned (the FNO
    passes its fresh W x + b), which saves writing another full-resolution tensor; a
    leaf that requires grad, a non-contiguous tensor or another dtype is copied instead.

    ``weight`` holds the complex weights of both corners as reals in the layout the
    mixing matmul consumes: ``(m, 2m, d_in, [Re | Im] d_out)``, modes ordered (kx, ky)
    with ky over [0, m) then [-m, 0). :meth:`complex_weight` gives the conventional
    ``(2 corners, d_in, d_out, m, m)`` complex view. Always computed in float32 or wider:
    under autocast the truncated DFT keeps the input's precision (reduced-precision
    DFTs lose accuracy).
    """

    def __init__(self, in_channels: int, out_channels: int, modes: int):
        super().__init__()
        self.in_channels, self.out_channels, self.modes = in_channels, out_channels, modes
        # Li et al.'s FNO init: uniform [0, 1/(d_in d_out)) for real and imaginary parts.
        scale = 1.0 / (in_channels * out_channels)
        self.weight = nn.Parameter(
            scale * torch.rand(modes, 2 * modes, in_channels, 2 * out_channels)
        )

    def complex_weight(self) -> Tensor:
        m, di, do = self.modes, self.in_channels, self.out_channels
        w = self.weight.reshape(m, 2, m, di, 2, do)  # (kx, corner, ky, in, re/im, out)
        return torch.complex(w[..., 0, :], w[..., 1, :]).permute(1, 3, 4, 2, 0)

    def forward(self, x: Tensor, add: Tensor | None = None) -> Tensor:
        b, c, ny, nx = x.shape
        m, d = self.modes, self.out_channels
        check_resolution(ny, nx, m)
        with torch.autocast(x.device.type, enabled=False):
            dtype = torch.promote_types(x.dtype, torch.float32)
            x = x.to(dtype)
            fx, g, h, fi = dft_bases(ny, nx, m, x.device, dtype)
            # Forward DFT: along x in one GEMM, transpose the (small) result, y in one GEMM.
            a = (x.reshape(-1, nx) @ fx.T).view(b * c, ny, 2 * m).transpose(1, 2)
            spec = a.reshape(b * c * m, 2 * ny) @ g  # (B, C, kx, re/im, ky)
            # Mixing: for each mode, [Re; Im] (2B, C) @ [Wr | Wi] (C, 2D).
            spec = spec.view(b, c, m, 2, 2 * m).permute(2, 4, 3, 0, 1).reshape(-1, 2 * b, c)
            weight = self.weight.to(dtype).view(-1, c, 2 * d)
            prod = torch.bmm(spec, weight)  # (modes, [Re | Im] B, [Re | Im] D)
            prod = prod.view(m, 2 * m, 2, b, 2, d).permute(3, 5, 0, 2, 4, 1)
            # Inverse: y in one GEMM (h also completes the complex product), then x.
            e = prod.reshape(b * d * m, 8 * m) @ h  # (B, D, kx, s, y)
            e = e.view(b * d, 2 * m, ny).transpose(1, 2)
            fi = fi.expand(b * d, -1, -1)
            if add is None:
                out = torch.bmm(e, fi)
            elif _accumulable(add, dtype):
                out = add.view(b * d, ny, nx).baddbmm_(e, fi)
            else:
                out = torch.baddbmm(add.to(dtype).reshape(b * d, ny, nx), e, fi)
        return out.view(b, d, ny, nx)


class Pointwise(nn.Linear):
    """A linear map over channels at every grid point, on ``(B, C, *spatial)`` tensors."""

    def forward(self, x: Tensor) -> Tensor:
        b, _, *spatial = x.shape
        flat = x.reshape(b, self.in_features, -1)
        out = torch.baddbmm(self.bias[:, None], self.weight.expand(b, -1, -1), flat)
        return out.view(b, self.out_features, *spatial)
