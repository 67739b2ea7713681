"""SPEC 5 statistics: rms in float64 over float32 fields, medians, 1 for an all-zero coefficient."""

import numpy as np
import pytest

from sciml.core.layout import COEFF_COLUMNS
from sciml.core.statistics import example_statistics, field_rms, normalization


def test_rms_accumulates_in_float64_row_by_row():
    fields = np.random.default_rng(0).normal(size=(19, 8, 8)).astype(np.float32)
    expected = np.sqrt((fields.astype(np.float64) ** 2).mean(axis=(1, 2)))
    np.testing.assert_allclose(field_rms(fields), expected, rtol=1e-14)
    assert field_rms(np.zeros((0, 4, 4), np.float32)).shape == (0,)


def test_normalization_takes_medians_and_keeps_absent_terms_at_one():
    rng = np.random.default_rng(1)
    columns = {"source": rng.normal(size=(5, 8, 8)).astype(np.float32),
               **{c: rng.normal(size=5) if c != "omega" else np.zeros(5) for c in COEFF_COLUMNS}}
    rms, abs_coeffs = example_statistics(columns)
    assert abs_coeffs.shape == (5, len(COEFF_COLUMNS)) and (abs_coeffs >= 0).all()
    stats = normalization(rms, abs_coeffs)
    assert stats["f_ref"] == pytest.approx(np.median(field_rms(columns["source"])))
    assert stats["c_ref"][:-1] == pytest.approx(list(np.median(np.abs([columns[c] for c in COEFF_COLUMNS[:-1]]),
                                                               axis=1)))
    assert stats["c_ref"][-1] == 1.0 and stats["norm"] == "rms"
    with pytest.raises(ValueError, match="^normalization: "):
        normalization(np.empty(0), np.empty((0, len(COEFF_COLUMNS))))


def _statistics(name, rows=48, seed=3):
    from sciml.physics import SystemSpec, generate_examples

    columns = generate_examples(SystemSpec.parse(name), seed, "train", np.arange(rows), 16, source_rms=True)
    return example_statistics(columns, rms=columns["source_rms"])


def test_mixed_systems_put_every_coefficient_channel_near_unit_scale():
    # Q4's mixture: v1, v2 exist only in SYS-2, omega only in SYS-3, k12 not in SYS-3.
    parts = [_statistics(name) for name in ("SYS-1(1,5)", "SYS-2(0.2,1)", "SYS-3(1,10)")]
    rms, abs_coeffs = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    c_ref = np.array(normalization(rms, abs_coeffs)["c_ref"])
    for j, name in enumerate(COEFF_COLUMNS):
        present = abs_coeffs[:, j][abs_coeffs[:, j] != 0]
        assert present.size > 0
        scale = np.median(present / c_ref[j])  # the channel's typical magnitude as the model sees it
        assert 0.5 <= scale <= 2.0, (name, c_ref[j], scale)


def test_one_system_keeps_the_plain_median_and_absent_terms_at_one():
    rms, abs_coeffs = _statistics("SYS-2(0.2,1)")
    stats = normalization(rms, abs_coeffs)
    assert stats["c_ref"][:5] == list(np.median(abs_coeffs[:, :5], axis=0))  # bit for bit: manifests unchanged
    assert stats["c_ref"][5] == 1.0  # omega is absent from SYS-2
