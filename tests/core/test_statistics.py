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
