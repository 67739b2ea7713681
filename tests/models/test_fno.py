"""FNO architecture, presets, resolution handling and input normalization."""

from __future__ import annotations

import io

import pytest
import torch

from sciml.core import layout
from sciml.models import PRESETS, FNO, build_fno, count_parameters, spectral_param_count
from sciml.models import fno as fno_module

SPEC_TABLE = {"64K": 65_536, "1M": 1_048_576, "16M": 16_777_216, "256M": 268_435_456}


def expected_total(d: int, m: int, layers: int = 4) -> int:
    lift = 7 * d + d
    blocks = layers * (d * d + d) + spectral_param_count(d, m, layers)
    projection = (d * 2 * d + 2 * d) + (2 * d + 1)
    return lift + blocks + projection


def test_presets_match_spec_table():
    assert set(PRESETS) == set(SPEC_TABLE)
    for name, (d, m) in PRESETS.items():
        assert spectral_param_count(d, m) == SPEC_TABLE[name] == 16 * d * d * m * m


@pytest.mark.parametrize("name", ["64K", "1M", "16M"])
def test_preset_model_parameter_counts(name):
    model = build_fno(name)
    d, m = PRESETS[name]
    assert model.spectral_params == SPEC_TABLE[name]
    assert sum(p.numel() for conv in model.spectral for p in conv.parameters()) == SPEC_TABLE[name]
    assert count_parameters(model) == expected_total(d, m)


def test_256m_counts_on_meta_device():
    # On the meta device nothing is allocated (the real model holds 1 GiB of weights).
    with torch.device("meta"):
        model = build_fno("256M")
    assert model.spectral_params == SPEC_TABLE["256M"]
    assert count_parameters(model) == expected_total(128, 32)


def test_count_parameters_counts_complex_as_two():
    layer = torch.nn.Linear(2, 2)
    layer.extra = torch.nn.Parameter(torch.zeros(3, dtype=torch.complex64))
    assert count_parameters(layer) == 6 + 6


def test_hparams_round_trip():
    for model in (build_fno("1M"), build_fno(width=8, modes=3, layers=2)):
        again = build_fno(**model.hparams)
        assert again.hparams == model.hparams
        assert [p.shape for p in again.parameters()] == [p.shape for p in model.parameters()]
    assert build_fno("64K").hparams == {"preset": "64K", "width": 16, "modes": 4, "layers": 4}
    assert build_fno(width=8, modes=3).hparams["preset"] is None


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"preset": "2M"}, "preset"),
        ({}, "width"),
        ({"width": 8}, "modes"),
        ({"width": 0, "modes": 2}, "width"),
        ({"width": 4, "modes": 0}, "modes"),
        ({"width": 4, "modes": 2.5}, "modes"),
        ({"width": 4, "modes": 2, "layers": 0}, "layers"),
        ({"preset": "1M", "width": 32}, "width"),
    ],
)
def test_invalid_config_names_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        build_fno(**kwargs)


def test_unknown_preset_lists_allowed():
    with pytest.raises(ValueError) as err:
        build_fno("huge")
    for name in PRESETS:
        assert name in str(err.value)


def test_shapes_at_two_resolutions_same_weights():
    torch.manual_seed(0)
    model = build_fno(width=8, modes=4)
    for n in (8, 32):
        out = model(torch.randn(3, 7, n, n))
        assert out.shape == (3, 1, n, n) and out.dtype == torch.float32
        assert torch.isfinite(out).all()


def test_resolution_below_2m_raises():
    model = build_fno("64K")
    model(torch.randn(1, 7, 8, 8))
    with pytest.raises(ValueError, match="must not exceed n/2"):
        model(torch.randn(1, 7, 7, 7))


def test_bad_channel_count_raises():
    with pytest.raises(ValueError, match="7"):
        build_fno("64K").normalize(torch.randn(1, 6, 8, 8))


def random_inputs(batch: int = 4, n: int = 16) -> torch.Tensor:
    x = torch.empty(batch, 7, n, n)
    x[:, 0] = torch.randn(batch, n, n)
    x[:, 1:] = torch.rand(batch, 6, 1, 1) + 0.1  # constant coefficients broadcast
    return x


def test_normalization_scale_invariance():
    torch.manual_seed(0)
    model = build_fno(width=8, modes=4)
    model.set_normalization(0.3, [0.01, 0.02, 0.005, 0.5, 0.4, 5.0])
    x = random_inputs()
    big = x * 10.0  # (10 f, 10 K) and (f, K)
    torch.testing.assert_close(model.normalize(big), model.normalize(x), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(model(big), model(x), rtol=1e-5, atol=1e-6)


def test_normalization_values():
    model = build_fno(width=4, modes=2)
    c_ref = [1.0, 2.0, 4.0, 8.0, 0.5, 0.25]
    model.set_normalization(2.0, c_ref)
    x = random_inputs(batch=2)
    rms = x[:, 0].square().mean(dim=(1, 2)).sqrt()
    s = rms / 2.0
    out = model.normalize(x)
    torch.testing.assert_close(out[:, 0], x[:, 0] / s[:, None, None])
    for j, c in enumerate(c_ref):
        torch.testing.assert_close(out[:, 1 + j], x[:, 1 + j] / (s[:, None, None] * c))
    # The normalized source has rms f_ref.
    torch.testing.assert_close(out[:, 0].square().mean(dim=(1, 2)).sqrt(), torch.full((2,), 2.0))


def test_zero_source_is_finite():
    model = build_fno(width=4, modes=2)
    x = random_inputs(batch=2)
    x[0, 0] = 0.0
    normalized = model.normalize(x)
    assert torch.isfinite(normalized).all()
    torch.testing.assert_close(normalized[0, 1:], x[0, 1:])  # s = 1 for an all-zero f
    assert torch.isfinite(model(x)).all()


def test_normalization_buffers_travel_with_state_dict():
    model = build_fno(width=4, modes=2)
    model.set_normalization(0.7, [1, 2, 3, 4, 5, 6])
    state = model.state_dict()
    assert "f_ref" in state and "c_ref" in state
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    fresh = build_fno(**model.hparams)
    assert fresh.f_ref.item() == 1.0 and fresh.c_ref.tolist() == [1.0] * 6
    fresh.load_state_dict(torch.load(buffer))
    assert fresh.f_ref.item() == pytest.approx(0.7)
    assert fresh.c_ref.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    x = random_inputs(batch=2, n=8)
    torch.testing.assert_close(fresh(x), model(x))


@pytest.mark.parametrize(
    "f_ref,c_ref,field",
    [(0.0, [1] * 6, "f_ref"), (float("nan"), [1] * 6, "f_ref"), (1.0, [1] * 5, "c_ref"),
     (1.0, [1, 1, 1, 1, 1, 0], "c_ref")],
)
def test_set_normalization_validates(f_ref, c_ref, field):
    with pytest.raises(ValueError, match=field):
        build_fno(width=4, modes=2).set_normalization(f_ref, c_ref)


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    model = build_fno(width=6, modes=3, layers=3)
    x = random_inputs(batch=2, n=12)
    torch.nn.functional.mse_loss(model(x), torch.randn(2, 1, 12, 12)).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_spatially_varying_coefficients_matter():
    torch.manual_seed(0)
    model = build_fno(width=8, modes=4)
    x = random_inputs(batch=1)
    varied = x.clone()
    varied[:, 1] *= 1 + 0.5 * torch.rand(16, 16)
    assert not torch.allclose(model(x), model(varied))


def test_float64_model_matches_float32():
    torch.manual_seed(0)
    model = build_fno(width=8, modes=4)
    x = random_inputs(batch=2)
    out32 = model(x)
    out64 = model.double()(x.double())
    assert out64.dtype == torch.float64
    torch.testing.assert_close(out32.double(), out64, rtol=1e-4, atol=1e-5)


def test_is_an_fno_module():
    assert isinstance(build_fno("64K"), FNO)


def test_input_channels_follow_the_layout():
    assert fno_module.IN_CHANNELS == len(layout.CHANNELS) == 7 and layout.CHANNELS[0] == "f"
    assert build_fno(width=4, modes=2).lift.in_features == len(layout.CHANNELS)
    assert build_fno(width=4, modes=2).c_ref.shape == (len(layout.COEFF_COLUMNS),)
