"""The Fourier neural operator of SPEC section 6 with the input normalization of section 5."""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from sciml.core.checks import check_number, check_numbers
from sciml.core.layout import IN_CHANNELS, N_COEFFS
from sciml.models.layers import Pointwise, SpectralConv2d, check_resolution
from sciml.models.presets import resolve, spectral_param_count


class FNO(nn.Module):
    """Lift IN_CHANNELS (7) -> d, ``layers`` blocks act(K_l x + W_l x), project d -> 2d -> 1 (SPEC section 6).

    GELU activations, none after the last block. ``forward`` takes raw physical inputs
    ``(B, 7, n, n)`` and normalizes them per instance with the buffers ``f_ref`` and
    ``c_ref`` (saved in ``state_dict``).
    """

    def __init__(
        self,
        width: int | None = None,
        modes: int | None = None,
        layers: int = 4,
        preset: str | None = None,
    ):
        super().__init__()
        preset, width, modes, layers = resolve(preset, width, modes, layers)
        self._hparams = {"preset": preset, "width": width, "modes": modes, "layers": layers}
        self.lift = Pointwise(IN_CHANNELS, width)
        self.spectral = nn.ModuleList(SpectralConv2d(width, width, modes) for _ in range(layers))
        self.pointwise = nn.ModuleList(Pointwise(width, width) for _ in range(layers))
        self.project_hidden = Pointwise(width, 2 * width)
        self.project_out = Pointwise(2 * width, 1)
        self.register_buffer("f_ref", torch.tensor(1.0))
        self.register_buffer("c_ref", torch.ones(N_COEFFS))

    @property
    def hparams(self) -> dict[str, Any]:
        """Keyword arguments of :func:`build_fno` that rebuild this architecture."""
        return dict(self._hparams)

    @property
    def modes(self) -> int:
        return self._hparams["modes"]

    @property
    def spectral_params(self) -> int:
        h = self._hparams
        return spectral_param_count(h["width"], h["modes"], h["layers"])

    def set_normalization(self, f_ref: float, c_ref: Sequence[float]) -> None:
        """Set the pre-training statistics (SPEC section 5); they travel with ``state_dict``."""
        f_ref = check_number("f_ref", float(f_ref), 0, low_open=True)
        values = [float(c) for c in c_ref]
        if len(values) != N_COEFFS:
            raise ValueError(f"c_ref: must have {N_COEFFS} entries (k11..omega), got {len(values)}")
        values = list(check_numbers("c_ref", values, 0, low_open=True))
        with torch.no_grad():
            self.f_ref.fill_(f_ref)
            self.c_ref.copy_(torch.tensor(values))

    def normalize(self, x: Tensor) -> Tensor:
        """Divide f and the coefficients by s_i = rms(f_i) / f_ref, then coefficient j by c_ref[j].

        An all-zero f has no scale: s_i = 1 there instead of dividing by zero.
        """
        if x.dim() != 4 or x.shape[1] != IN_CHANNELS:
            raise ValueError(f"x: must have shape (B, {IN_CHANNELS}, n, n), got {tuple(x.shape)}")
        rms = x[:, 0].square().mean(dim=(-2, -1)).sqrt()
        s = torch.where(rms > 0, rms / self.f_ref, torch.ones_like(rms))
        channel_ref = torch.cat([torch.ones_like(self.c_ref[:1]), self.c_ref]).to(x.dtype)
        scale = 1.0 / (s[:, None] * channel_ref)  # (B, 7)
        return x * scale[:, :, None, None]

    def forward(self, x: Tensor) -> Tensor:
        check_resolution(x.shape[-2], x.shape[-1], self.modes)
        h = self.lift(self.normalize(x))
        last = len(self.spectral) - 1
        for i, (spectral, pointwise) in enumerate(zip(self.spectral, self.pointwise)):
            h = spectral(h, add=pointwise(h))
            if i < last:
                h = F.gelu(h)
        return self.project_out(F.gelu(self.project_hidden(h)))


def build_fno(
    preset: str | None = None,
    width: int | None = None,
    modes: int | None = None,
    layers: int = 4,
) -> FNO:
    """An FNO from a preset name (``PRESETS``) or from ``width`` and ``modes``."""
    return FNO(width, modes, layers, preset=preset)


def count_parameters(model: nn.Module) -> int:
    """Trainable reals in ``model``; a complex parameter counts as two."""
    params = (p for p in model.parameters() if p.requires_grad)
    return sum(p.numel() * (2 if p.is_complex() else 1) for p in params)
