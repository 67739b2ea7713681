import numpy as np
import torch

from sciml.data.fields import FieldSet, assemble_inputs
from sciml.core.layout import CHANNELS, COEFF_COLUMNS


def _columns(rows=5, n=4, start=0):
    rng = np.random.default_rng(0)
    cols = {"index": np.arange(start, start + rows)[::-1].copy(),
            "source": rng.normal(size=(rows, n, n)).astype(np.float32),
            "solution": rng.normal(size=(rows, n, n)).astype(np.float32)}
    for j, c in enumerate(COEFF_COLUMNS):
        cols[c] = np.arange(rows, dtype=np.float64) * (j + 1)
    return cols


def test_fields_are_sorted_by_index_and_inputs_follow_the_channel_layout():
    cols = _columns()
    fields = FieldSet.from_batches([{k: v[:2] for k, v in cols.items()}, {k: v[2:] for k, v in cols.items()}])
    assert fields.index.tolist() == [0, 1, 2, 3, 4]
    x = fields.inputs()
    assert x.shape == (5, len(CHANNELS), 4, 4)
    # Row 0 (index 0) came last in the input; its source and broadcast k22 must follow it.
    np.testing.assert_array_equal(x[0, 0].numpy(), cols["source"][-1])
    assert torch.all(x[0, 2] == float(cols["k22"][-1]))
    assert fields.targets().shape == (5, 1, 4, 4)


def test_mixture_order_does_not_depend_on_block_order():
    a, b = _columns(3), _columns(3)
    a["origin"], b["origin"] = np.zeros(3, np.int64), np.ones(3, np.int64)
    first = FieldSet.from_batches([a, b])
    second = FieldSet.from_batches([b, a])
    assert torch.equal(first.source, second.source)


def test_assemble_inputs_broadcasts_constants():
    x = assemble_inputs(torch.zeros(2, 3, 3), torch.arange(12.0).reshape(2, 6))
    assert torch.all(x[1, 6] == 11.0) and torch.all(x[:, 0] == 0)


def test_example_statistics_follow_the_sorted_rows():
    cols = _columns()
    rms, abs_coeffs = FieldSet.from_columns(cols).example_statistics()
    expected = np.sqrt((cols["source"].astype(np.float64) ** 2).mean(axis=(1, 2)))[::-1]
    np.testing.assert_allclose(rms, expected, rtol=1e-6)
    np.testing.assert_allclose(abs_coeffs[:, 5], np.abs(cols["omega"][::-1]))
